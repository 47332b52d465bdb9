"""Pipeline throughput: a case from the upload call to "awaiting review",
through the real broker and real worker processes, against a naive serial path.

Usage::

    .venv/bin/python bench/pipeline.py --images 100 [--workers 1,2] [--no-naive] \
        [--checkpoint CKPT.pt] [--arch resnet18] [--input-size 224] [--batch-size 16] \
        [--database-url postgres://postgres@127.0.0.1:5432/postgres] [--broker auto|filesystem|redis://...] \
        [--pool solo] [--device cpu|cuda|auto]

What one run does, in order, all in a database of its own:

1. **Setup.** With ``--database-url`` (or ``DATABASE_URL``) a temporary
   PostgreSQL database ``mf_bench_<pid>_<hex>`` is created on that server and
   dropped at the end; without one, the embedded SQLite file in a temporary
   folder. The broker: by default a private ``redis-server`` on a free port
   (``--broker auto``; nobody else's worker can take the benchmark's tasks),
   the embedded file-system broker where Redis is not installed, or a URL.
   Media and models live in the temporary folder too. The schema is migrated
   and one image model is registered: ``--checkpoint``, or an untrained
   checkpoint of ``--arch`` at ``--input-size`` (speed does not depend on the
   weights' values; say so when quoting the figures).
2. **Images.** ``--images`` real CBC smears (JPEG 640x480) from
   ``shared_data_dir()/cbc`` (sorted, Training then Validation then Testing),
   seeded synthetic smears (ml.synthetic, 480x640) where the data is absent.
3. **Naive serial path** (unless ``--no-naive``): in this process, after the
   model is loaded once, the upload call and then, one image at a time, the
   same functions the tasks run (``diagnostics.pipeline.classify_chunk([id])``
   then ``segment_image``), until the case is "awaiting review".
4. **Workers.** For each count in ``--workers``: that many worker processes
   (``celery -A marrowfind worker -Q gpu,cpu -P solo``; model warm before the
   clock starts, as in production), torch threads = cores / workers, then the
   upload call of a new case with the same images, timed until the case is
   "awaiting review". Per-stage seconds come from the ``Analysis.timings`` and
   ``TaskRun`` rows the workers wrote; the peak resident memory of each worker
   from ``/proc/<pid>/status`` (VmHWM).
5. **Report** (when reports.services is present): one draft PDF of
   the last case, timed on its own (not part of the wall time).

The human-readable table comes first; the LAST line is one JSON object with
``images``, ``wall_s`` (the run with the most workers), ``images_per_min``,
``naive_wall_s`` and ``speedup`` (naive / workers), plus the details.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import json
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

STAGES = ("decode", "classify_cam", "segmentation", "overlays", "db")
STAGE_NAMES = {
    "decode": "decode",
    "classify_cam": "classify + CAM",
    "segmentation": "segmentation",
    "overlays": "overlays",
    "db": "database writes",
}
QUEUES = ("gpu", "cpu")
RSS_LIMIT_MB = 3 * 1024


def log(message: str) -> None:
    print(message, flush=True)


# --------------------------------------------------------------------------- environment


@dataclass
class BenchEnv:
    folder: Path
    database_url: str | None = None  # None: embedded SQLite
    server_url: str | None = None  # the PostgreSQL server's maintenance URL (to drop the database)
    database_name: str | None = None
    broker_url: str = "filesystem://"
    redis: subprocess.Popen | None = None
    notes: list[str] = field(default_factory=list)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_private_redis(folder: Path) -> tuple[subprocess.Popen, str]:
    import redis

    port = _free_port()
    process = subprocess.Popen(
        [shutil.which("redis-server"), "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(folder)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    client = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=1)
    deadline = time.monotonic() + 15
    while True:
        try:
            client.ping()
            return process, f"redis://127.0.0.1:{port}/0"
        except redis.ConnectionError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("could not start redis-server for the benchmark") from None
            time.sleep(0.1)


def _create_database(server_url: str) -> tuple[str, str]:
    """Create an empty database on the server of ``server_url``; returns (its URL, its name)."""
    import psycopg

    name = f"mf_bench_{os.getpid()}_{secrets.token_hex(3)}"
    parts = urlsplit(server_url)
    maintenance = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(maintenance, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return urlunsplit(parts._replace(path=f"/{name}")), name


def _drop_database(server_url: str, name: str) -> None:
    import psycopg

    maintenance = urlunsplit(urlsplit(server_url)._replace(path="/postgres"))
    with psycopg.connect(maintenance, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def prepare_environment(args: argparse.Namespace) -> BenchEnv:
    """Everything Django reads from the environment, set before django.setup()."""
    env = BenchEnv(folder=Path(tempfile.mkdtemp(prefix="mf-bench-")))
    server = args.database_url or os.environ.get("DATABASE_URL")
    if server:
        env.server_url = server
        env.database_url, env.database_name = _create_database(server)
        env.notes.append(f"database: PostgreSQL, temporary database {env.database_name}")
    else:
        env.notes.append("database: embedded SQLite (no DATABASE_URL)")
    broker = args.broker
    if broker == "auto":
        broker = "redis-private" if shutil.which("redis-server") else "filesystem"
    if broker == "redis-private":
        env.redis, env.broker_url = _start_private_redis(env.folder)
        env.notes.append(f"broker: private redis-server ({env.broker_url})")
    elif broker == "filesystem":
        env.broker_url = "filesystem://"
        env.notes.append("broker: embedded file system")
    else:
        env.broker_url = broker
        env.notes.append(f"broker: {broker} (shared: make sure no other worker listens on it)")
    values = {
        "DJANGO_SETTINGS_MODULE": "marrowfind.settings",
        "MARROWFIND_VAR_DIR": str(env.folder / "var"),
        "MEDIA_ROOT": str(env.folder / "media"),
        "MARROWFIND_MODEL_DIR": str(env.folder / "models"),
        "CELERY_BROKER_URL": env.broker_url,
        "SECRET_KEY": secrets.token_urlsafe(48),
        "SECURE_HTTPS": "0",
        "STATIC_STORAGE": "plain",
        "WORKER_BATCH_SIZE": str(args.batch_size),
        "INFERENCE_DEVICE": args.device,
        "INFERENCE_COMPILE": args.compile,
        "COMPILE_CACHE_DIR": str(env.folder / "compile-cache"),  # shared by every run: a restart hits it
        "LOG_LEVEL": "WARNING",
        "MAX_FILES_PER_BATCH": str(max(500, args.images)),
    }
    if env.database_url:
        values["DATABASE_URL"] = env.database_url
    else:
        os.environ.pop("DATABASE_URL", None)
    os.environ.update(values)
    return env


def cleanup(env: BenchEnv, keep: bool) -> None:
    with contextlib.suppress(Exception):
        from django.db import connections

        connections.close_all()
    if env.database_name and env.server_url and not keep:
        try:
            _drop_database(env.server_url, env.database_name)
        except Exception as exc:  # noqa: BLE001  (report it; the figures are already printed)
            log(f"could not drop {env.database_name}: {exc}")
    if env.redis is not None and env.redis.poll() is None:
        env.redis.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            env.redis.wait(timeout=10)
    if not keep:
        shutil.rmtree(env.folder, ignore_errors=True)


# --------------------------------------------------------------------------- data and model


def load_images(count: int) -> tuple[list[tuple[str, bytes]], str]:
    """(filename, bytes) of ``count`` CBC images, synthetic ones where the data runs out or is absent."""
    from ml.datapaths import shared_data_dir

    root = shared_data_dir() / "cbc"
    files: list[str] = []
    for split in ("Training", "Validation", "Testing"):
        files += sorted(glob.glob(str(root / split / "Images" / "*.jpg")))
    chosen = [(Path(path).name, Path(path).read_bytes()) for path in files[:count]]
    real = len(chosen)
    if real < count:
        import io

        from PIL import Image

        from ml.synthetic import make_smear

        for seed in range(count - real):
            smear = make_smear(10_000 + seed, size=(480, 640))
            buffer = io.BytesIO()
            Image.fromarray(smear.image).save(buffer, format="JPEG", quality=92)
            chosen.append((f"synthetic-{seed:04d}.jpg", buffer.getvalue()))
    source = f"{real} real CBC (640x480 JPEG, {root})" if real else "none real"
    if real < count:
        source += f" + {count - real} synthetic smears (480x640)"
    return chosen, source


def register_model(args: argparse.Namespace):
    from diagnostics.services.models import register_checkpoint

    if args.checkpoint:
        version, _ = register_checkpoint(Path(args.checkpoint), name="bench model", activate=True)
        return version, f"checkpoint {args.checkpoint}"
    import torch

    from ml.checkpoint import ModelCard, save_checkpoint
    from ml.labels import SUBTYPE_BINARY_MAP, SUBTYPES
    from ml.models import build_model

    torch.manual_seed(0)
    model = build_model(args.arch, SUBTYPES, binary_map=dict(SUBTYPE_BINARY_MAP), weights=None)
    card = ModelCard.for_model(model, task="image", demo=True, input_size=args.input_size,
                               training={"note": "untrained, for bench/pipeline.py: speed only"})
    path = Path(os.environ["MARROWFIND_MODEL_DIR"]) / f"bench-{args.arch}-{args.input_size}.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(path, model, card)
    version, _ = register_checkpoint(path, name="bench model (untrained)", activate=True, is_demo=True)
    return version, f"untrained {args.arch} at {args.input_size} px (speed does not depend on the weights)"


def make_lab_and_user():
    from django.contrib.auth import get_user_model

    from diagnostics.models import Lab, Membership, Role

    lab = Lab.objects.create(name="Benchmark lab", slug=f"bench-{uuid.uuid4().hex[:6]}")
    user = get_user_model().objects.create_user(username=f"bench-{uuid.uuid4().hex[:6]}", email="bench@example.org")
    Membership.objects.create(user=user, lab=lab, role=Role.PATHOLOGIST)
    return lab, user


def upload_case(lab, user, images: list[tuple[str, bytes]], accession: str):
    """The upload service's own call (checks, duplicate refusal, queueing); returns its UploadResult."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    from diagnostics.services.upload import create_case

    files = [SimpleUploadedFile(name, data, content_type="image/jpeg") for name, data in images]
    return create_case(
        lab=lab, user=user, files=files,
        fields={"accession_number": accession, "patient_pseudonym": "P-BENCH", "specimen": "peripheral_blood",
                "stain": "Wright-Giemsa", "clinical_note": ""},
    )


def upload(lab, user, images: list[tuple[str, bytes]], accession: str):
    """Upload every image as one case; any refused file ends the benchmark (its figures would be off)."""
    result = upload_case(lab, user, images, accession)
    if result.rejected:
        raise SystemExit(f"the upload refused {len(result.rejected)} file(s): {result.rejected[0].as_dict()}")
    return result.case


def purge_queues() -> None:
    from marrowfind.celery import app

    with app.connection_for_write() as connection:
        channel = connection.default_channel
        for queue in (*QUEUES, "priority"):
            with contextlib.suppress(Exception):
                channel.queue_purge(queue)


# --------------------------------------------------------------------------- measuring


@dataclass
class RunResult:
    label: str
    wall_s: float
    images: int
    done: int
    failed: int
    stage_totals: dict[str, float]
    stage_means: dict[str, float]
    stage_p95: dict[str, float]
    tasks: dict[str, dict[str, float]] = field(default_factory=dict)
    peak_rss_mb: list[float] = field(default_factory=list)
    torch_threads: int | None = None
    case_id: int | None = None

    @property
    def images_per_min(self) -> float:
        return 60.0 * self.images / self.wall_s if self.wall_s else 0.0


def case_figures(case) -> tuple[dict[str, float], dict[str, float], dict[str, float]]:
    """Per-stage totals (seconds summed over images), means and p95 from Analysis.timings."""
    from diagnostics.models import Analysis
    from monitoring.timings import percentile_cont

    values: dict[str, list[float]] = defaultdict(list)
    for timings in Analysis.objects.filter(image__case=case).values_list("timings", flat=True):
        for stage in STAGES:
            values[stage].append(float((timings or {}).get(stage, 0.0)))
    totals = {stage: round(sum(v), 3) for stage, v in values.items()}
    means = {stage: round(statistics.fmean(v), 4) for stage, v in values.items() if v}
    p95 = {stage: round(percentile_cont(v, 0.95) or 0.0, 4) for stage, v in values.items()}
    return totals, means, p95


def task_figures(case) -> dict[str, dict[str, float]]:
    from diagnostics.models import TaskRun

    found: dict[str, list[float]] = defaultdict(list)
    for name, timings in TaskRun.objects.filter(case=case).values_list("task_name", "timings"):
        found[name].append(float((timings or {}).get("task", 0.0)))
    return {name: {"runs": len(v), "total_s": round(sum(v), 3), "mean_s": round(statistics.fmean(v), 4)}
            for name, v in sorted(found.items())}


def wait_for_case(case, timeout: float, workers: list[WorkerProc] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while True:
        case.refresh_from_db(fields=["status"])
        if case.status in ("awaiting_review", "failed"):
            return
        for worker in workers or []:
            if worker.process.poll() is not None:
                raise SystemExit(f"worker {worker.name} died:\n{worker.log()[-3000:]}")
        if time.monotonic() > deadline:
            raise SystemExit(f"case {case.pk} still {case.status} after {timeout:.0f} s")
        time.sleep(0.1)


def peak_rss_mb(pid: int) -> float:
    """Peak resident set (VmHWM) of a process plus the largest of its children (prefork)."""
    def hwm(p: int) -> float:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
        except OSError:
            pass
        return 0.0

    children = []
    for stat in glob.glob("/proc/[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = Path(stat).read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                children.append(int(stat.split("/")[2]))
    return round(hwm(pid) + max((hwm(c) for c in children), default=0.0), 1)


# --------------------------------------------------------------------------- the analysis alone


def run_analysis_only(images) -> dict[str, float]:
    """``ml.analysis.analyse_image`` (the unit the pipeline and the instant check run)
    on every image in this process with the warm active models: no database, no
    broker. Seconds in all and per image; the floor the pipeline adds its overhead to."""
    from diagnostics import model_cache
    from ml.analysis import analyse_image

    active = model_cache.active_models()
    started = time.perf_counter()
    for name, data in images:
        analyse_image(data, active.models, filename=name)
    seconds = time.perf_counter() - started
    return {"wall_s": round(seconds, 3), "per_image_s": round(seconds / max(len(images), 1), 4)}


# --------------------------------------------------------------------------- the naive path


def run_naive(lab, user, images, accession: str) -> RunResult:
    """Upload, then the pipeline's own functions, one image at a time, in this process."""
    import torch

    from diagnostics import model_cache, pipeline
    from diagnostics.models import ImageStatus, ModelTask

    loaded = time.perf_counter()
    _, predictor = model_cache.get(ModelTask.IMAGE)  # loaded once, before the clock, like a warm worker
    predictor.warm_up()  # and compiled, when INFERENCE_COMPILE says so
    model_cache.get(ModelTask.CELL)
    log(f"naive: model loaded in {time.perf_counter() - loaded:.2f} s (not timed); torch threads {torch.get_num_threads()}")
    started = time.perf_counter()
    case = upload(lab, user, images, accession)
    pipeline.start_case(case.pk)
    for image_id in case.images.filter(status=ImageStatus.QUEUED).order_by("position").values_list("pk", flat=True):
        analysed: list[int] = []
        pipeline.classify_chunk([image_id], on_analysed=analysed.append)
        for analysis_id in analysed:
            pipeline.segment_image(analysis_id)
    case.refresh_from_db()
    wall = time.perf_counter() - started
    purge_queues()  # the upload's process_case message: nobody must run it later
    return _result("naive serial (in-process)", case, wall, torch_threads=torch.get_num_threads())


def _result(label: str, case, wall: float, **extra) -> RunResult:
    from diagnostics.models import ImageStatus

    totals, means, p95 = case_figures(case)
    counts = dict.fromkeys((ImageStatus.DONE, ImageStatus.FAILED), 0)
    for status in case.images.values_list("status", flat=True):
        counts[status] = counts.get(status, 0) + 1
    if case.status != "awaiting_review":
        raise SystemExit(f"{label}: case ended {case.status}, {counts}")
    return RunResult(label=label, wall_s=round(wall, 3), images=case.images.count(), done=counts[ImageStatus.DONE],
                     failed=counts[ImageStatus.FAILED], stage_totals=totals, stage_means=means, stage_p95=p95,
                     tasks=task_figures(case), case_id=case.pk, **extra)


# --------------------------------------------------------------------------- worker processes


@dataclass
class WorkerProc:
    name: str
    process: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@contextlib.contextmanager
def worker_processes(count: int, folder: Path, pool: str, threads: int) -> Iterator[list[WorkerProc]]:
    env = dict(os.environ)
    env.update({"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), "PYTHONUNBUFFERED": "1",
                "LOG_LEVEL": "INFO"})
    workers = []
    try:
        for index in range(count):
            name = f"bench{index + 1}-{uuid.uuid4().hex[:4]}@%h"
            log_path = folder / f"worker-{count}-{index + 1}.log"
            with open(log_path, "wb") as out:
                process = subprocess.Popen(
                    [sys.executable, "-m", "celery", "-A", "marrowfind", "worker", "-Q", ",".join(QUEUES),
                     "-P", pool, "-c", "1", "-n", name, "--without-gossip", "--without-mingle",
                     "--without-heartbeat", "-l", "INFO"],
                    cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
            workers.append(WorkerProc(name=name, process=process, log_path=log_path))
        deadline = time.monotonic() + 300
        for worker in workers:
            while " ready." not in worker.log():
                if worker.process.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"worker {worker.name} did not start:\n{worker.log()[-3000:]}")
                time.sleep(0.2)
        # The compiler runs in the background after "ready" (batches would run eager meanwhile):
        # wait for it, so the timed run measures the path production settles on.
        compile_deadline = time.monotonic() + 1800
        compile_started = time.perf_counter()
        for worker in workers:
            while compiles_here() and not any(mark in worker.log() for mark in COMPILE_DONE_MARKS):
                if worker.process.poll() is not None or time.monotonic() > compile_deadline:
                    raise SystemExit(f"worker {worker.name} did not finish compiling:\n{worker.log()[-3000:]}")
                time.sleep(0.5)
        if compiles_here():
            lines = [line for worker in workers for line in worker.log().splitlines() if COMPILE_DONE_MARKS[0] in line
                     or COMPILE_DONE_MARKS[1] in line]
            log(f"{count} worker(s): compiling done {time.perf_counter() - compile_started:.1f} s after ready "
                f"(not timed): {' | '.join(line.split(': ', 1)[-1] for line in lines)}")
        yield workers
    finally:
        for worker in workers:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(worker.process.pid, signal.SIGTERM)
        for worker in workers:
            try:
                worker.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(worker.process.pid, signal.SIGKILL)
                worker.process.wait(timeout=30)


COMPILE_DONE_MARKS = ("torch.compile ready", "torch.compile of ")  # ml.predict's log lines (ready / failed)


def compiles_here() -> bool:
    """Whether the workers' Predictor compiles (INFERENCE_COMPILE on this device)."""

    from ml.compiled import should_compile
    from ml.device import select_device

    device = os.environ.get("INFERENCE_DEVICE", "auto")
    return should_compile(os.environ.get("INFERENCE_COMPILE", "off"), select_device(None if device == "auto" else device))


def torch_threads_per_worker(count: int, device: str) -> int:
    """CPU cores shared out among ``count`` workers (one thread each when the GPU does the work)."""
    return max(1, (os.cpu_count() or 1) // count) if device != "cuda" else 1


def run_workers(count: int, lab, user, images, accession: str, args, env: BenchEnv) -> RunResult:
    threads = torch_threads_per_worker(count, args.device)
    started_workers = time.perf_counter()
    with worker_processes(count, env.folder, args.pool, threads) as workers:
        log(f"{count} worker(s): ready in {time.perf_counter() - started_workers:.1f} s (model warm; not timed), "
            f"torch threads per worker {threads}")
        started = time.perf_counter()
        case = upload(lab, user, images, accession)
        wait_for_case(case, timeout=args.timeout, workers=workers)
        wall = time.perf_counter() - started
        rss = [peak_rss_mb(worker.process.pid) for worker in workers]
    case.refresh_from_db()
    return _result(f"{count} worker(s), {args.pool} pool", case, wall, peak_rss_mb=rss, torch_threads=threads)


def time_report(case, user) -> float | None:
    from reports.services import create_draft_report

    started = time.perf_counter()
    try:
        create_draft_report(case, user)
    except Exception as exc:  # noqa: BLE001  (the report area may not be finished; the pipeline figures stand alone)
        log(f"report: draft rendering failed ({exc.__class__.__name__}: {exc})")
        return None
    return round(time.perf_counter() - started, 3)


# --------------------------------------------------------------------------- printing


def print_table(results: list[RunResult]) -> None:
    header = f"{'run':<30}{'wall s':>9}{'img/min':>9}{'done':>6}{'failed':>7}  peak RSS per worker"
    log("")
    log(header)
    log("-" * len(header))
    for r in results:
        rss = ", ".join(f"{m:.0f} MB" for m in r.peak_rss_mb) or "(this process)"
        log(f"{r.label:<30}{r.wall_s:>9.2f}{r.images_per_min:>9.1f}{r.done:>6}{r.failed:>7}  {rss}")
    log("")
    log("per-stage seconds (from Analysis.timings; sum over images / mean per image / p95 per image):")
    stage_header = f"{'run':<30}" + "".join(f"{STAGE_NAMES[s]:>22}" for s in STAGES)
    log(stage_header)
    for r in results:
        cells = "".join(
            f"{r.stage_totals.get(s, 0):>8.2f}/{r.stage_means.get(s, 0):.3f}/{r.stage_p95.get(s, 0):.3f}".rjust(22)
            for s in STAGES
        )
        log(f"{r.label:<30}{cells}")
    log("")
    for r in results:
        if r.tasks:
            text = ", ".join(f"{name} {t['runs']}x mean {t['mean_s']:.3f} s" for name, t in r.tasks.items())
            log(f"tasks, {r.label}: {text}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts to compare (default 1,2)")
    parser.add_argument("--naive", action=argparse.BooleanOptionalAction, default=True,
                        help="run the naive serial path for comparison (default on)")
    parser.add_argument("--checkpoint", help="a registered-format checkpoint to use instead of an untrained one")
    parser.add_argument("--arch", default="resnet18")
    parser.add_argument("--input-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=16, help="WORKER_BATCH_SIZE (images per classify_chunk)")
    parser.add_argument("--database-url", help="PostgreSQL server for a temporary database (default $DATABASE_URL)")
    parser.add_argument("--broker", default="auto", help="auto | redis-private | filesystem | a broker URL")
    parser.add_argument("--pool", default="solo", choices=["solo", "prefork", "threads"])
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--compile", default="auto", choices=["auto", "on", "off"],
                        help="INFERENCE_COMPILE for the workers; compiling is waited for before the clock starts")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds to wait for one case")
    parser.add_argument("--keep", action="store_true", help="keep the temporary database and folder")
    args = parser.parse_args(argv)
    counts = [int(part) for part in args.workers.split(",") if part.strip()]
    if args.images < 1 or not counts or min(counts) < 1:
        parser.error("--images and every --workers count must be at least 1")

    env = prepare_environment(args)
    try:
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        for note in env.notes:
            log(note)
        _version, model_note = register_model(args)
        log(f"model: {model_note}; batch size {args.batch_size}; device {args.device}")
        images, source = load_images(args.images)
        log(f"images: {args.images} ({source})")
        lab, user = make_lab_and_user()
        purge_queues()

        results: list[RunResult] = []
        naive = run_naive(lab, user, images, "BENCH-NAIVE") if args.naive else None
        analysis_only = run_analysis_only(images) if args.naive else None
        if analysis_only:
            log(f"analyse_image alone (no database, no broker): {analysis_only['wall_s']:.2f} s, "
                f"{analysis_only['per_image_s']:.3f} s per image")
        if naive:
            results.append(naive)
        for count in counts:
            results.append(run_workers(count, lab, user, images, f"BENCH-W{count}", args, env))
        from diagnostics.models import Case

        report_s = time_report(Case.objects.get(pk=results[-1].case_id), user)

        print_table(results)
        if report_s is not None:
            log(f"report generation (one draft PDF of the {args.images}-image case, not in the wall time): {report_s:.2f} s")
        best = results[-1]
        peak = max((m for r in results for m in r.peak_rss_mb), default=0.0)
        log(f"peak RSS of any worker: {peak:.0f} MB ({'under' if peak < RSS_LIMIT_MB else 'OVER'} the 3 GB budget)")
        speedup = round(naive.wall_s / best.wall_s, 2) if naive else None
        if naive:
            log(f"speedup, naive serial / {best.label}: {speedup}x")
        summary: dict[str, Any] = {
            "images": args.images,
            "wall_s": best.wall_s,
            "images_per_min": round(best.images_per_min, 1),
            "naive_wall_s": naive.wall_s if naive else None,
            "analyse_image_s": analysis_only,
            "speedup": speedup,
            "workers": {str(c): {"wall_s": r.wall_s, "images_per_min": round(r.images_per_min, 1),
                                 "peak_rss_mb": r.peak_rss_mb, "torch_threads": r.torch_threads}
                        for c, r in zip(counts, results[-len(counts):])},
            "stage_mean_s": best.stage_means,
            "report_s": report_s,
            "peak_rss_mb": peak,
            "data": source,
            "model": model_note,
            "batch_size": args.batch_size,
            "pool": args.pool,
            "cpus": os.cpu_count(),
            "database": "postgresql" if env.database_url else "sqlite",
            "broker": env.broker_url.split("://", 1)[0],
        }
        print(json.dumps(summary), flush=True)
        return 0
    finally:
        cleanup(env, args.keep)


if __name__ == "__main__":
    sys.exit(main())
