"""Finding labelled images on disk, splitting them honestly, and feeding them to PyTorch.

Two layouts are understood:

* ``imagefolder``: ``root/<class>/<image>`` (the Taleqani 4-class set, the synthetic demo set,
  ``pbc_subset``). Images carry no patient id, but the file numbers of neighbouring images tend to
  come from one slide, so the default split keeps *contiguous blocks of file numbers* together.
* ``cnmc``: C-NMC single-cell files named ``UID_<patient>_<image>_<cell>_{all,hem}.<ext>``
  anywhere under ``root``. The default split is *by patient*, so one patient's cells never
  straddle train and test.

Splits are saved as lists of paths relative to the data root (``Split.to_dict``), so the exact
split travels inside the checkpoint card and ``evaluate`` can re-use its test list elsewhere.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ml.errors import DatasetError, ImageLoadError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".tif", ".tiff"})
LAYOUTS = ("imagefolder", "cnmc")
SPLIT_METHODS = ("auto", "contiguous", "random", "patient", "kfold")
# Order of the C-NMC classes: index 1 = leukemic, matching BINARY_NAMES ("normal", "ALL").
CNMC_CLASSES: tuple[str, str] = ("hem", "all")

_CNMC_NAME = re.compile(r"^UID_(?P<patient>[^_]+)_.*_(?P<label>all|hem)$", re.IGNORECASE)
_NUMBER = re.compile(r"(\d+)")


@dataclass(frozen=True)
class Sample:
    """One labelled image file.

    ``group`` is the patient id where the file name carries one (C-NMC); ``number`` is the last
    run of digits in the file name, which orders Taleqani images by acquisition.
    """

    path: Path
    label: str
    relpath: str
    group: str | None = None
    number: int | None = None


@dataclass
class DatasetIndex:
    """All usable samples under a data root, plus the files that had to be skipped (and why)."""

    root: Path
    layout: str
    class_names: list[str]
    samples: list[Sample]
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        counter = Counter(s.label for s in self.samples)
        return {name: counter.get(name, 0) for name in self.class_names}

    def summary(self) -> dict:
        """JSON-friendly description for the checkpoint card (no file lists)."""
        return {
            "root": str(self.root),
            "layout": self.layout,
            "class_names": list(self.class_names),
            "counts": self.counts(),
            "n_images": len(self.samples),
            "n_skipped": len(self.skipped),
            "skipped": [f"{path}: {reason}" for path, reason in self.skipped[:50]],
            "has_patient_ids": any(s.group is not None for s in self.samples),
        }


@dataclass
class Split:
    """Train / validation / test samples, and how they were chosen."""

    method: str
    train: list[Sample]
    val: list[Sample]
    test: list[Sample]
    seed: int = 0

    def part(self, name: str) -> list[Sample]:
        if name not in ("train", "val", "test"):
            raise ValueError(f"unknown split part {name!r}")
        return getattr(self, name)

    def to_dict(self) -> dict:
        """File lists relative to the data root: what the checkpoint card stores."""
        return {
            "method": self.method,
            "seed": self.seed,
            "train": [s.relpath for s in self.train],
            "val": [s.relpath for s in self.val],
            "test": [s.relpath for s in self.test],
        }

    @classmethod
    def from_dict(cls, data: dict, index: DatasetIndex) -> Split:
        """Rebuild a stored split against a (re-scanned) index; unknown files raise DatasetError."""
        by_rel = {s.relpath: s for s in index.samples}
        parts: dict[str, list[Sample]] = {}
        for name in ("train", "val", "test"):
            rels = data.get(name, [])
            missing = [rel for rel in rels if rel not in by_rel]
            if missing:
                raise DatasetError(
                    f"{len(missing)} file(s) of the stored {name} split are not in {index.root} "
                    f"(first: {missing[0]}); is --data the folder the model was trained on?"
                )
            parts[name] = [by_rel[rel] for rel in rels]
        return cls(method=data.get("method", "stored"), seed=int(data.get("seed", 0)), **parts)


# --------------------------------------------------------------------------- scanning

def _file_number(stem: str) -> int | None:
    runs = _NUMBER.findall(stem)
    return int(runs[-1]) if runs else None


def _verify(path: Path) -> str | None:
    """None when the image decodes, else the human-readable reason it does not."""
    from ml.imageio import inspect_image

    try:
        inspect_image(path)
    except ImageLoadError as exc:
        return exc.reason
    except OSError as exc:  # permissions and the like
        return str(exc)
    return None


def take_per_class(samples: list[Sample], limit_per_class: int | None) -> list[Sample]:
    """Keep the first N per class *in file-number order*, so a limited set stays contiguous."""
    if limit_per_class is None:
        return samples
    kept: list[Sample] = []
    per_class: dict[str, int] = defaultdict(int)
    for sample in samples:
        if per_class[sample.label] < limit_per_class:
            kept.append(sample)
            per_class[sample.label] += 1
    return kept


def _sort_key(sample: Sample) -> tuple:
    return (sample.label, sample.number if sample.number is not None else -1, sample.relpath)


def _check_classes(root: Path, class_names: list[str], samples: list[Sample], skipped: list) -> None:
    counts = Counter(s.label for s in samples)
    empty = [name for name in class_names if counts.get(name, 0) == 0]
    if empty:
        unreadable = f" ({len(skipped)} unreadable file(s) skipped)" if skipped else ""
        raise DatasetError(
            f"class folder(s) with no usable images under {root}: {', '.join(empty)}{unreadable}"
        )
    if len(class_names) < 2:
        raise DatasetError(
            f"only one class found under {root} ({class_names[0] if class_names else 'none'}); "
            "a classifier needs at least two"
        )


def scan_imagefolder(
    root: str | Path,
    *,
    class_names: Sequence[str] | None = None,
    limit_per_class: int | None = None,
    verify: bool = True,
) -> DatasetIndex:
    """Index ``root/<class>/<image>``.

    Class names are the sub-folder names (sorted) unless given. Hidden folders are ignored.
    With ``verify`` every image is decoded once; unreadable files are skipped and listed in
    ``DatasetIndex.skipped`` instead of failing the whole run half-way through an epoch.
    Raises DatasetError for a missing root, an empty class or fewer than two classes.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"data folder not found: {root}")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if class_names is None:
        class_names = [p.name for p in folders]
        if not class_names:
            raise DatasetError(
                f"no class sub-folders in {root}; the imagefolder layout is <root>/<class>/<image>"
            )
    else:
        class_names = list(class_names)
        absent = [name for name in class_names if not (root / name).is_dir()]
        if absent:
            raise DatasetError(f"class folder(s) missing under {root}: {', '.join(absent)}")
    samples: list[Sample] = []
    skipped: list[tuple[str, str]] = []
    for name in class_names:
        files = sorted(
            p for p in (root / name).rglob("*") if p.is_file() and not p.name.startswith(".")
        )
        for path in files:
            rel = path.relative_to(root).as_posix()
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                skipped.append((rel, f"not an image file extension ({path.suffix or 'none'})"))
                continue
            samples.append(Sample(path=path, label=name, relpath=rel, number=_file_number(path.stem)))
    samples.sort(key=_sort_key)
    samples = take_per_class(samples, limit_per_class)
    if verify:
        samples, skipped = _drop_unreadable(samples, skipped)
    _check_classes(root, class_names, samples, skipped)
    return DatasetIndex(root=root, layout="imagefolder", class_names=class_names, samples=samples,
                        skipped=skipped)


def _drop_unreadable(samples: list[Sample], skipped: list) -> tuple[list[Sample], list]:
    kept = []
    for sample in samples:
        reason = _verify(sample.path)
        if reason is None:
            kept.append(sample)
        else:
            skipped.append((sample.relpath, reason))
    return kept, skipped


def parse_cnmc_name(name: str) -> tuple[str, str] | None:
    """``UID_H12_32_6_hem.png`` -> (``"H12"``, ``"hem"``); None when the name does not match."""
    match = _CNMC_NAME.match(Path(name).stem)
    if match is None:
        return None
    return match.group("patient"), match.group("label").lower()


def scan_cnmc(
    root: str | Path, *, limit_per_class: int | None = None, verify: bool = True
) -> DatasetIndex:
    """Index C-NMC cells anywhere under ``root`` by their ``*_all`` / ``*_hem`` names.

    The patient id (``UID_<patient>_...``) becomes ``Sample.group`` so splits can keep each
    patient on one side. Image files whose names do not follow the pattern are skipped and listed.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"data folder not found: {root}")
    samples: list[Sample] = []
    skipped: list[tuple[str, str]] = []
    for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")):
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            continue  # labels.csv and friends live beside the images
        rel = path.relative_to(root).as_posix()
        parsed = parse_cnmc_name(path.name)
        if parsed is None:
            skipped.append((rel, "name does not follow UID_<patient>_..._{all,hem}"))
            continue
        patient, label = parsed
        samples.append(Sample(path=path, label=label, relpath=rel, group=patient,
                              number=_file_number(path.stem)))
    if not samples:
        raise DatasetError(f"no C-NMC images (UID_<patient>_..._all/_hem) found under {root}")
    samples.sort(key=lambda s: (s.label, s.group or "", s.relpath))
    samples = take_per_class(samples, limit_per_class)
    if verify:
        samples, skipped = _drop_unreadable(samples, skipped)
    _check_classes(root, list(CNMC_CLASSES), samples, skipped)
    return DatasetIndex(root=root, layout="cnmc", class_names=list(CNMC_CLASSES), samples=samples,
                        skipped=skipped)


def scan_dataset(
    root: str | Path,
    layout: str = "imagefolder",
    *,
    class_names: Sequence[str] | None = None,
    limit_per_class: int | None = None,
    verify: bool = True,
) -> DatasetIndex:
    """Dispatch on ``layout`` (``imagefolder`` or ``cnmc``)."""
    if layout == "imagefolder":
        return scan_imagefolder(root, class_names=class_names, limit_per_class=limit_per_class,
                                verify=verify)
    if layout == "cnmc":
        return scan_cnmc(root, limit_per_class=limit_per_class, verify=verify)
    raise DatasetError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}")


# --------------------------------------------------------------------------- splitting

def _n_for(fraction: float, n: int) -> int:
    """How many of n go to a held-out part: at least one when n allows (tiny smoke sets)."""
    if fraction <= 0:
        return 0
    return max(1, round(fraction * n)) if n >= 3 else 0


def split_contiguous(
    samples: Sequence[Sample], val_fraction: float, test_fraction: float, seed: int = 0
) -> tuple[list[Sample], list[Sample], list[Sample]]:
    """Per class: order by file number, then cut one contiguous run for test and one for val.

    The seed rotates where the cut starts (the order is treated as a circle), so different seeds
    give different held-out slides while each part stays one run of neighbouring numbers: only the
    (at most) four run boundaries can separate images of the same slide.
    """
    rng = np.random.default_rng(seed)
    train: list[Sample] = []
    val: list[Sample] = []
    test: list[Sample] = []
    for ordered in _classes_in_file_order(samples):
        n = len(ordered)
        offset = int(rng.integers(n)) if seed else 0
        rotated = ordered[offset:] + ordered[:offset]
        n_test, n_val = _n_for(test_fraction, n), _n_for(val_fraction, n)
        test += rotated[:n_test]
        val += rotated[n_test:n_test + n_val]
        train += rotated[n_test + n_val:]
    return train, val, test


def _classes_in_file_order(samples: Sequence[Sample]) -> list[list[Sample]]:
    """The samples of each class (classes sorted by name), ordered by file number."""
    by_class: dict[str, list[Sample]] = defaultdict(list)
    for sample in samples:
        by_class[sample.label].append(sample)
    return [
        sorted(by_class[label], key=lambda s: (s.number if s.number is not None else -1, s.relpath))
        for label in sorted(by_class)
    ]


def split_kfold(
    samples: Sequence[Sample], folds: int, fold: int, val_fraction: float = 0.15,
) -> tuple[list[Sample], list[Sample], list[Sample]]:
    """k-fold cross-validation over contiguous blocks of file numbers, per class.

    Each class, ordered by file number, is cut into ``folds`` contiguous blocks of (nearly) equal
    size; block ``fold`` is the test part, so every image is tested exactly once over the folds.
    Validation is the run of ``val_fraction`` of the class that follows the test block (wrapping
    round), training is the rest: every part stays one or two runs of neighbouring numbers.
    """
    if folds < 2 or not 0 <= fold < folds:
        raise DatasetError(f"--fold must be in 0..{folds - 1} for --folds {folds} (and --folds >= 2)")
    train: list[Sample] = []
    val: list[Sample] = []
    test: list[Sample] = []
    for ordered in _classes_in_file_order(samples):
        n = len(ordered)
        bounds = np.linspace(0, n, folds + 1).round().astype(int)
        start, stop = int(bounds[fold]), int(bounds[fold + 1])
        rotated = ordered[start:] + ordered[:start]  # test block first, then what follows it
        n_test = stop - start
        n_val = min(_n_for(val_fraction, n), max(0, n - n_test - 1))
        test += rotated[:n_test]
        val += rotated[n_test:n_test + n_val]
        train += rotated[n_test + n_val:]
    return train, val, test


def split_random(
    samples: Sequence[Sample], val_fraction: float, test_fraction: float, seed: int = 0
) -> tuple[list[Sample], list[Sample], list[Sample]]:
    """Stratified random split by image. Overstates accuracy where neighbours share a slide."""
    rng = np.random.default_rng(seed)
    train: list[Sample] = []
    val: list[Sample] = []
    test: list[Sample] = []
    by_class: dict[str, list[Sample]] = defaultdict(list)
    for sample in samples:
        by_class[sample.label].append(sample)
    for label in sorted(by_class):
        items = list(by_class[label])
        order = rng.permutation(len(items))
        items = [items[i] for i in order]
        n_test, n_val = _n_for(test_fraction, len(items)), _n_for(val_fraction, len(items))
        test += items[:n_test]
        val += items[n_test:n_test + n_val]
        train += items[n_test + n_val:]
    return train, val, test


def split_by_patient(
    samples: Sequence[Sample], val_fraction: float, test_fraction: float, seed: int = 0
) -> tuple[list[Sample], list[Sample], list[Sample]]:
    """Whole patients go to one part. Patients are shuffled per (majority) class and assigned
    to test, then val, until each part holds its share of that class's images; the rest train.
    """
    if any(s.group is None for s in samples):
        raise DatasetError("a patient split needs a patient id in every file name (use --layout cnmc)")
    rng = np.random.default_rng(seed)
    by_group: dict[str, list[Sample]] = defaultdict(list)
    for sample in samples:
        by_group[sample.group].append(sample)  # type: ignore[index]
    groups_of_class: dict[str, list[str]] = defaultdict(list)
    for group, members in sorted(by_group.items()):
        majority = Counter(s.label for s in members).most_common(1)[0][0]
        groups_of_class[majority].append(group)
    train: list[Sample] = []
    val: list[Sample] = []
    test: list[Sample] = []
    for label in sorted(groups_of_class):
        groups = list(groups_of_class[label])
        groups = [groups[i] for i in rng.permutation(len(groups))]
        n_images = sum(len(by_group[g]) for g in groups)
        targets = [("test", test_fraction * n_images), ("val", val_fraction * n_images)]
        parts = {"test": test, "val": val, "train": train}
        # Keep at least one patient for training.
        cursor = 0
        for part_name, target in targets:
            taken = 0
            while target > 0 and taken < target and cursor < len(groups) - 1:
                members = by_group[groups[cursor]]
                parts[part_name].extend(members)
                taken += len(members)
                cursor += 1
        for group in groups[cursor:]:
            train.extend(by_group[group])
    return train, val, test


def split_dataset(
    index: DatasetIndex,
    method: str = "auto",
    *,
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    seed: int = 0,
    folds: int | None = None,
    fold: int = 0,
) -> Split:
    """Split an index. ``auto`` = by patient where every sample has an id, else contiguous.

    With ``folds`` (or ``method="kfold"``) it is fold ``fold`` of a contiguous-block k-fold
    (:func:`split_kfold`); ``test_fraction`` is then 1/folds.
    """
    if folds is not None and method in ("auto", "contiguous", "kfold"):
        method = "kfold"
    if method not in SPLIT_METHODS:
        raise DatasetError(f"unknown split {method!r}; choose one of {', '.join(SPLIT_METHODS)}")
    if not 0 <= val_fraction < 1 or not 0 <= test_fraction < 1 or val_fraction + test_fraction >= 1:
        raise DatasetError("val and test fractions must be in [0, 1) and sum to less than 1")
    if method == "auto":
        method = "patient" if all(s.group is not None for s in index.samples) else "contiguous"
    if method == "kfold":
        if folds is None:
            raise DatasetError("a k-fold split needs --folds")
        train, val, test = split_kfold(index.samples, folds, fold, val_fraction)
    else:
        func: Callable = {"contiguous": split_contiguous, "random": split_random,
                          "patient": split_by_patient}[method]
        train, val, test = func(index.samples, val_fraction, test_fraction, seed)
    if not train:
        raise DatasetError("the split left no training images; use more data or smaller fractions")
    missing = [name for name in index.class_names if not any(s.label == name for s in train)]
    if missing:
        raise DatasetError(f"the split left class(es) without training images: {', '.join(missing)}")
    split = Split(method=method if method != "kfold" else f"kfold-{fold}-of-{folds}",
                  train=train, val=val, test=test, seed=seed)
    return split


# --------------------------------------------------------------------------- torch datasets

ImageItem = Path | np.ndarray


def load_rgb(item: ImageItem) -> np.ndarray:
    """H×W×3 uint8 RGB from a path (through ml.imageio) or an array already in memory."""
    if isinstance(item, np.ndarray):
        return item
    from ml.imageio import load_image

    return load_image(item)


class LabelledImages:
    """A map-style ``torch.utils.data.Dataset`` over paths and/or in-memory arrays.

    Items can mix files and arrays so GAN top-ups and cell crops go through the same pipeline.
    With ``cache`` the decoded uint8 images are kept after first use: the data sets here are a
    few hundred MB at most, and decoding again every epoch would cost more than the 2 CPU cores
    can spare.
    """

    def __init__(
        self,
        items: Sequence[ImageItem],
        labels: Sequence[int],
        transform: Callable | None = None,
        *,
        cache: bool = True,
    ):
        if len(items) != len(labels):
            raise ValueError("items and labels differ in length")
        self.items = list(items)
        self.labels = [int(x) for x in labels]
        self.transform = transform
        self.cache = cache
        self._cache: dict[int, np.ndarray] = {}
        # Optional f(index, uint8 image) -> uint8 image applied before the transform (e.g. the
        # background randomiser of ml.background), so cached decoded images stay untouched.
        self.remix: Callable[[int, np.ndarray], np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.items)

    def image(self, i: int) -> np.ndarray:
        if i in self._cache:
            return self._cache[i]
        image = load_rgb(self.items[i])
        if self.cache:
            self._cache[i] = image
        return image

    def __getitem__(self, i: int):
        image = self.image(i)
        if self.remix is not None:
            image = self.remix(i, image)
        if not image.flags.writeable:  # torch.from_numpy warns on read-only buffers
            image = image.copy()
        if self.transform is not None:
            image = self.transform(image)
        return image, self.labels[i]


def samples_to_dataset(
    samples: Sequence[Sample], class_names: Sequence[str], transform: Callable | None = None,
    *, cache: bool = True,
) -> LabelledImages:
    lookup = {name: i for i, name in enumerate(class_names)}
    return LabelledImages([s.path for s in samples], [lookup[s.label] for s in samples], transform,
                          cache=cache)
