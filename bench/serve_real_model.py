"""A model trained on real data, served by the registry to running workers (not CI).

Usage::

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \
    .venv/bin/python bench/serve_real_model.py artifacts/bench/all4class/efficientnet_lite0.pt [--workers 2]

What it shows, with real processes (a temporary PostgreSQL database, a private Redis broker and
``celery worker`` processes, as in bench/pipeline.py):

1. The workers start while an *untrained demo* checkpoint is the active image model.
2. ``manage.py register_model CKPT --activate`` runs while they keep running (no restart).
3. The checkpoint's own held-out *test* split (stored in its card) is uploaded as one case
   (byte-identical copies left out: the upload refuses a file twice in one case).
4. Every Analysis must name the new model version; the script prints the accuracy of the labels
   the workers wrote against the true classes, and how many of them agree with ``ml.predict``
   run in this process on the same files (the platform must not change the model's answers).

The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pipeline as bench  # noqa: E402  (bench/pipeline.py: environment, workers, upload)


def test_split_files(card, data_root: Path | None) -> tuple[list[Path], list[str]]:
    """The files of the test split stored in the checkpoint's card, and their true classes."""
    from ml.datasets import Split, scan_dataset

    training = card.training or {}
    data = data_root or Path(training["data"]["root"])
    index = scan_dataset(data, training.get("layout", "imagefolder"), class_names=list(card.class_names))
    split = Split.from_dict(training["split"], index)
    return [s.path for s in split.test], [s.label for s in split.test]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--data", type=Path, default=None, help="data folder (default: the one in the card)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args(argv)
    # The fields bench/pipeline.py's environment and workers read.
    ns = argparse.Namespace(database_url=args.database_url, broker="auto", batch_size=args.batch_size, device="auto",
                            images=0, pool="solo", timeout=1800.0, arch="resnet18", input_size=224, checkpoint=None)
    from ml.checkpoint import load_checkpoint

    model, card = load_checkpoint(args.checkpoint)
    paths, truth = test_split_files(card, args.data)
    ns.images = len(paths)
    env = bench.prepare_environment(ns)
    try:
        import django

        django.setup()
        from django.core.management import call_command

        from diagnostics.models import Analysis, ModelVersion

        call_command("migrate", verbosity=0)
        for note in env.notes:
            bench.log(note)
        demo, _ = bench.register_model(ns)  # an untrained demo checkpoint, active first
        bench.log(f"active before: #{demo.pk} {demo.name} (demo={demo.is_demo})")
        lab, user = bench.make_lab_and_user()
        bench.purge_queues()
        images = [(p.name, p.read_bytes()) for p in paths]
        threads = bench.torch_threads_per_worker(args.workers, ns.device)
        with bench.worker_processes(args.workers, env.folder, "solo", threads) as workers:
            out = io.StringIO()
            call_command("register_model", str(args.checkpoint.resolve()), "--activate",
                         "--name", f"{card.arch} (real data)", stdout=out)
            bench.log("while the workers run: manage.py register_model --activate\n  " + out.getvalue().strip()
                      .replace("\n", "\n  "))
            version = ModelVersion.objects.get(is_active=True, task="image")
            started = time.perf_counter()
            upload = bench.upload_case(lab, user, images, "REAL-MODEL-1")
            case = upload.case
            refused = {r.filename: r.code for r in upload.rejected}
            if set(refused.values()) - {"duplicate"}:
                raise SystemExit(f"the upload refused files for other reasons: {refused}")
            bench.log(f"test split: {len(paths)} images; the upload refused {len(refused)} byte-identical "
                      "copies (code 'duplicate')")
            bench.wait_for_case(case, timeout=ns.timeout, workers=workers)
            wall = time.perf_counter() - started
        by_name = {}
        for name, label, model_pk in Analysis.objects.filter(image__case=case).values_list(
                "image__original_filename", "label", "model_version_id"):
            by_name[name] = (label, model_pk)
        served_by = {pk for _, pk in by_name.values()}
        kept = [(p, t) for p, t in zip(paths, truth) if p.name not in refused]
        paths, truth = [p for p, _ in kept], [t for _, t in kept]
        worker_labels = [by_name[p.name][0] for p in paths]
        accuracy = sum(a == b for a, b in zip(worker_labels, truth)) / len(truth)

        from ml.datasets import load_rgb
        from ml.predict import Predictor

        local = [p.label for p in Predictor(model, card, device="cpu").predict([load_rgb(p) for p in paths],
                                                                               with_cam=False)]
        agree = sum(a == b for a, b in zip(worker_labels, local))
        bench.log(f"case of {len(paths)} test-split images analysed in {wall:.1f} s by {args.workers} worker(s)")
        bench.log(f"analyses by model version(s) {sorted(served_by)} (active: #{version.pk}, demo={version.is_demo})")
        bench.log(f"accuracy of the workers' labels against the true classes: {accuracy:.4f}")
        bench.log(f"workers' labels equal to ml.predict in this process: {agree}/{len(paths)}")
        summary = {"checkpoint": str(args.checkpoint), "model_version": version.pk, "served_by": sorted(served_by),
                   "served_by_new_version_only": served_by == {version.pk}, "images": len(paths),
                   "wall_s": round(wall, 2), "worker_accuracy": accuracy, "agree_with_ml_predict": agree,
                   "is_demo": version.is_demo}
        print(json.dumps(summary), flush=True)
        return 0 if served_by == {version.pk} and agree == len(paths) else 1
    finally:
        bench.cleanup(env, args.keep)


if __name__ == "__main__":
    sys.exit(main())
