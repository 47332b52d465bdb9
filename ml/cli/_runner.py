"""The per-file loop shared by ``python -m ml predict`` and ``python -m ml segment``.

Both commands promise the same output contract: one JSON line per input file on
stdout, in input order; a file that fails gives a ``{"file", "code", "error"}``
line plus a one-line ``error: <file>: <reason>`` message on stderr and the run
goes on; a progress bar on stderr for long runs; exit code 1 when any file
failed. Keeping that contract in one place stops the two commands drifting
apart; each command only says how to turn a chunk of files into records.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Show the progress bar from this many files on (short runs stay quiet).
PROGRESS_MIN_IMAGES = 8


@dataclass(frozen=True)
class FileFailure:
    """One file that could not be processed: the JSON ``code``/``error`` and the stderr text.

    ``message`` is what the human reads on stderr when it should say more than
    the machine-readable ``error`` (e.g. "segmentation failed: ..."); it
    defaults to ``error``.
    """

    code: str
    error: str
    message: str | None = None


#: Turns a chunk of files into one outcome per file, in the same order: a record
#: (the JSON fields after ``"file"``) or a :class:`FileFailure`.
ChunkProcessor = Callable[[Sequence[Path]], Iterable["dict[str, Any] | FileFailure"]]


def emit(record: Mapping[str, Any]) -> None:
    """Write one JSON line and flush, so a consumer piping the output sees each file as it is done."""
    sys.stdout.write(json.dumps(record) + "\n")
    sys.stdout.flush()


def load_or_failure(path: Path) -> tuple[Any, FileFailure | None]:
    """The image, or ``None`` and why it could not be read (never raises for a bad file)."""
    from ml.errors import ImageLoadError
    from ml.imageio import load_image

    try:
        return load_image(path), None
    except ImageLoadError as exc:
        return None, FileFailure(exc.code, exc.reason)
    except FileNotFoundError:
        return None, FileFailure("not_found", "file not found")
    except IsADirectoryError:
        return None, FileFailure("not_a_file", "is a directory")
    except OSError as exc:
        return None, FileFailure("unreadable", f"cannot read the file ({exc.strerror or exc})")


def numbered_output_path(out_dir: Path, source: Path, suffix: str, taken: set[Path]) -> Path:
    """``<out_dir>/<stem>_<suffix>.png``, numbered (``-2``, ``-3``...) when two inputs share a stem."""
    candidate = out_dir / f"{source.stem}_{suffix}.png"
    number = 2
    while candidate in taken:
        candidate = out_dir / f"{source.stem}_{suffix}-{number}.png"
        number += 1
    taken.add(candidate)
    return candidate


def run_over_files(
    files: Sequence[Path],
    process_chunk: ChunkProcessor,
    *,
    chunk_size: int = 1,
    quiet: bool = False,
    common: Mapping[str, Any] | None = None,
) -> int:
    """Feed ``files`` to ``process_chunk`` in chunks, print the JSON lines, return the exit code.

    ``common`` fields (e.g. the model hash) are appended to every line, failed
    ones included, so each line stands on its own.
    """
    from tqdm import tqdm

    extra = dict(common or {})
    failures = 0
    show_progress = not quiet and len(files) >= PROGRESS_MIN_IMAGES
    with tqdm(total=len(files), unit="img", file=sys.stderr, disable=not show_progress, dynamic_ncols=True) as bar:
        for start in range(0, len(files), chunk_size):
            chunk = files[start : start + chunk_size]
            for path, outcome in zip(chunk, process_chunk(chunk), strict=True):
                if isinstance(outcome, FileFailure):
                    failures += 1
                    tqdm.write(f"error: {path}: {outcome.message or outcome.error}", file=sys.stderr)
                    emit({"file": str(path), "code": outcome.code, "error": outcome.error, **extra})
                else:
                    emit({"file": str(path), **outcome, **extra})
            bar.update(len(chunk))
    if failures:
        print(f"{failures} of {len(files)} images failed", file=sys.stderr)
    return 1 if failures else 0
