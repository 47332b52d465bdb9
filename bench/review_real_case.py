"""A real all4class case from the worklist to a signed report whose blast % was counted,
corrected and signed (issue 16), on real data, printing its figures as it goes. Not a CI test.

Usage::

    .venv/bin/python bench/review_real_case.py [--images 6] [--classes Pre,Benign] \
        [--cell-model CELLS.pt | --all4class-every 20] [--image-model IMAGE.pt] [--wbc-mask WBC.pt] \
        [--database-url postgres://postgres@127.0.0.1:5432/postgres] [--out artifacts/realcase]

What one run does, in a database, media folder and model folder of its own:

1. **Setup.** A temporary PostgreSQL database on the server of ``--database-url`` (or
   ``DATABASE_URL``), made and dropped as ``bench/gallery.py`` does; migrated.
2. **Models, registered the way the project does** (``manage.py register_model CKPT --activate``):
   the cell-type model ``--cell-model``, else one trained now with ``python -m ml train-cells
   --all4class-every N`` (real PBC, all4class train/val, C-NMC cells; minutes); the image model
   ``--image-model``, else the project's synthetic **demo** model, which ``manage.py bootstrap_demo``
   trains and registers (as ``bin/run`` does; every page and the PDF then say "demo model").
   ``bootstrap_demo`` also makes the lab and its pathologist. White cells: the learned mask
   ``--wbc-mask`` (the ``WBC_MASK_MODEL`` setting) or the colour rules of ``ml.segment``.
3. **The case.** ``--images`` real all4class fields of ``--classes`` (taken in turn, evenly
   spaced over the *test* part of the contiguous split, which no model here was trained on)
   uploaded as one case through the upload service (``diagnostics.services.upload.create_case``),
   then the pipeline in this process in the tasks' order (start_case, classify_chunk,
   segment_image, as ``tests/workers/helpers.py`` ``run_case_inline``). Prints the AI's
   per-image calls, the AI differential and blast %.
4. **The pathologist** logs in (password, then a TOTP code from a real allauth authenticator),
   opens the worklist, the case, its cell gallery; through the cell review service
   (``review.cells``) reclassifies every low-confidence cell to its second most probable class
   and every 5th of the other cells to another class (a blast to lymphocyte, else to blast),
   marks one cell an artefact, adds one missed cell; reviews every image (its all4class class);
   signs out on the sign-out page with an interpretation and a fresh TOTP code (the next
   30-second period: the login code counts once).
5. **The report.** ``reports.services.create_final_report`` (what the report task runs), its
   text by ``pdftotext -layout``; the PDF's blast %, reviewed and AI differential are compared
   with the case record's reviewed differential (``diagnostics.services.case_record``) and with
   what the scripted decisions imply; both printed side by side; exit status 1 if anything differs.

The scripted decisions exercise the path; they are not a pathologist's judgement, and the cell
model's blast calls are not validated (README, "Cell differential, blasts and scope").
The LAST line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import os
import platform
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.pipeline import _create_database, _drop_database

PASSWORD = "bench-real-case-" + secrets.token_hex(6)
TOTP_PERIOD = 30


def say(message: str = "") -> None:
    print(message, flush=True)


def sha12(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


# --------------------------------------------------------------------------- setup


def prepare(args, folder: Path) -> tuple[str | None, str | None]:
    server = args.database_url or os.environ.get("DATABASE_URL")
    if not server:
        raise SystemExit("give --database-url (or DATABASE_URL): the bench runs on a temporary PostgreSQL database")
    url, name = _create_database(server)
    values = {
        "DJANGO_SETTINGS_MODULE": "marrowfind.settings",
        "DATABASE_URL": url,
        "MARROWFIND_VAR_DIR": str(folder / "var"),
        "MEDIA_ROOT": str(folder / "media"),
        "MARROWFIND_MODEL_DIR": str(folder / "models"),
        "SECRET_KEY": secrets.token_urlsafe(48),
        "SECURE_HTTPS": "0",
        "STATIC_STORAGE": "plain",
        "LOG_LEVEL": "WARNING",
        "CELERY_BROKER_URL": "filesystem://",  # nothing listens: the bench runs every step itself
        "ALLOWED_HOSTS": "testserver,127.0.0.1,localhost",
        "MARROWFIND_DEMO_PASSWORD": PASSWORD,
        # No background torch.compile (the bench times no inference; its cache folder goes at exit).
        "INFERENCE_COMPILE": "off",
    }
    if args.wbc_mask:
        values["WBC_MASK_MODEL"] = str(Path(args.wbc_mask).resolve())
    else:
        os.environ.pop("WBC_MASK_MODEL", None)
    os.environ.update(values)
    return server, name


def train_cell_model(args, folder: Path) -> Path:
    out = folder / "models" / f"cells-every{args.all4class_every}.pt"
    out.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "ml", "train-cells", "--out", str(out), "--all4class-every",
               str(args.all4class_every), "--threads", str(args.threads), "--quiet"]
    say(f"cell model: training `python -m ml train-cells --all4class-every {args.all4class_every}` "
        f"(real PBC, all4class train/val, C-NMC cells) ...")
    started = time.perf_counter()
    done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"train-cells failed ({done.returncode}):\n{done.stderr[-3000:]}")
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    say(f"  trained in {seconds:.0f} s: pbc_accuracy {summary['pbc_accuracy']:.3f}, cnmc_blast_auc "
        f"{summary['cnmc_blast_auc']:.3f}, image_blast_auc {summary['image_blast_auc']:.3f}")
    args.cell_train_s = round(seconds, 1)
    return out


def register_models(args, cell_path: Path) -> dict:
    from django.core.management import call_command

    from diagnostics.models import ModelTask
    from diagnostics.services.models import active_model_version, is_demo_version

    def command(*argv) -> str:
        out = io.StringIO()
        call_command(*argv, stdout=out)
        return out.getvalue()

    say("registry: " + command("register_model", str(cell_path), "--activate", "--name", "real cell-type model")
        .strip().replace("\n", "\n          "))
    if args.image_model:
        say("registry: " + command("register_model", str(Path(args.image_model).resolve()), "--activate")
            .strip().replace("\n", "\n          "))
    started = time.perf_counter()
    lines = command("bootstrap_demo").strip().splitlines()
    say(f"bootstrap_demo ({time.perf_counter() - started:.0f} s): "
        + "; ".join(line.strip() for line in lines if "model" in line or line.startswith("lab")))
    image, cell = active_model_version(ModelTask.IMAGE), active_model_version(ModelTask.CELL)
    return {
        "image_model": f"{image.name} ({image.arch}, sha256 {image.sha256[:12]})",
        "image_model_demo": is_demo_version(image),
        "cell_model": f"{cell.name} ({cell.arch}, {len(cell.class_names)} classes, sha256 {cell.sha256[:12]})",
        "cell_model_demo": is_demo_version(cell),
    }


# --------------------------------------------------------------------------- the case


def choose_fields(n: int, classes: list[str]) -> list[tuple[str, str, Path]]:
    """``n`` all4class test-part fields, the classes in turn, evenly spaced within each class."""
    from ml.datapaths import shared_data_dir
    from ml.datasets import scan_imagefolder, split_dataset

    root = shared_data_dir() / "all4class"
    index = scan_imagefolder(root, verify=False)
    split = split_dataset(index, "contiguous", seed=0)
    test = list(split.test)
    per_class = {name: [s for s in test if s.label == name] for name in classes}
    wanted = {name: (n // len(classes)) + (1 if i < n % len(classes) else 0) for i, name in enumerate(classes)}
    picked = {}
    for name, samples in per_class.items():
        k = wanted[name]
        if len(samples) < k:
            raise SystemExit(f"only {len(samples)} {name} images in the all4class test part")
        step = len(samples) / k
        picked[name] = [samples[int(i * step + step / 2)] for i in range(k)]
    fields = []
    for i in range(max(wanted.values())):
        for name in classes:
            if i < len(picked[name]):
                s = picked[name][i]
                fields.append((s.label, s.relpath, Path(s.path)))
    return fields


def make_case(lab, user, fields) -> tuple[object, float]:
    from django.core.files.uploadedfile import SimpleUploadedFile

    from diagnostics import pipeline
    from diagnostics.services.upload import create_case

    files = [SimpleUploadedFile(path.name, path.read_bytes(), content_type="image/jpeg") for _, _, path in fields]
    result = create_case(lab=lab, user=user, files=files, fields={
        "accession_number": f"ALL4-{uuid.uuid4().hex[:6].upper()}", "patient_pseudonym": "all4class composite",
        "specimen": "peripheral_blood", "stain": "Wright-Giemsa",
        "clinical_note": "Composite of real all4class test-part fields (no patient ids in the data set).",
    })
    if result.rejected:
        raise SystemExit(f"the upload refused {len(result.rejected)} file(s): {result.rejected[0].as_dict()}")
    case = result.case
    started = time.perf_counter()
    pipeline.run_case_in_process(case.pk)
    seconds = time.perf_counter() - started
    case.refresh_from_db()
    if case.status != "awaiting_review":
        raise SystemExit(f"case {case.accession_number} is {case.status} after the pipeline")
    return case, seconds


def differential_line(diff) -> str:
    parts = [f"{name} {count}" for name, count in diff.counts.items() if count]
    return ", ".join(parts) or "none"


def percent_text(value) -> str:
    return "not determined" if value is None else f"{value:.1f}%"


# --------------------------------------------------------------------------- the pathologist


def activate_totp(user) -> str:
    """A real allauth TOTP authenticator for ``user`` (as an authenticator app is set up); returns its secret."""
    from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret

    secret = generate_totp_secret()
    TOTP.activate(user, secret)
    return secret


def totp_code(secret: str) -> str:
    """The code an authenticator app shows now, computed by allauth."""
    from allauth.mfa.totp.internal.auth import format_hotp_value, hotp_value

    return format_hotp_value(hotp_value(secret, int(time.time()) // TOTP_PERIOD))


def login(client, user, secret: str) -> None:
    """The real two-step allauth login: e-mail + password, then the TOTP code."""
    from django.urls import reverse

    response = client.post(reverse("account_login"), {"login": user.email, "password": PASSWORD})
    assert response.status_code == 302 and response["Location"] == reverse("mfa_authenticate"), response
    response = client.post(reverse("mfa_authenticate"), {"code": totp_code(secret)})
    assert response.status_code == 302, response.content[:500]


def get_page(client, path: str, must_contain: str = "") -> str:
    response = client.get(path)
    if response.status_code != 200:
        raise SystemExit(f"GET {path}: HTTP {response.status_code}")
    text = response.content.decode()
    if must_contain and must_contain not in text:
        raise SystemExit(f"GET {path}: {must_contain!r} is not on the page")
    return text


def plan_decisions(case) -> tuple[dict[str, list[tuple[int, int]]], dict[int, str]]:
    """Which cells get which class: low-confidence ones their second most probable class,
    every 5th of the others another class. Returns label -> [(cell id, version)] and cell id -> label."""
    from diagnostics.models import Cell
    from diagnostics.services.case_record import build_case_record

    record = build_case_record(case)
    probabilities = dict(Cell.objects.filter(pk__in=[c.cell_id for c in record.cells]).values_list("id", "probabilities"))
    plan: dict[str, list[tuple[int, int]]] = {}
    decided: dict[int, str] = {}
    confident = 0
    for cell in record.cells:
        if not cell.ai_label:
            continue
        if cell.low_confidence:
            ranked = sorted((probabilities.get(cell.cell_id) or {}).items(), key=lambda kv: -kv[1])
            others = [name for name, _ in ranked if name != cell.ai_label]
            label = others[0] if others else ("lymphocyte" if cell.ai_label == "blast" else "blast")
        else:
            confident += 1
            if confident % 5:
                continue
            label = "lymphocyte" if cell.ai_label == "blast" else "blast"
        plan.setdefault(label, []).append((cell.cell_id, cell.version))
        decided[cell.cell_id] = label
    return plan, decided


def free_point(record, image_id: int, width: int, height: int) -> tuple[float, float]:
    """A point of the image inside no detected cell's box (where the reviewer adds a missed cell)."""
    boxes = [c.bbox for c in record.cells if c.image_id == image_id]
    for fy in (0.5, 0.25, 0.75, 0.1, 0.9):
        for fx in (0.5, 0.25, 0.75, 0.1, 0.9):
            x, y = fx * width, fy * height
            if not any(x0 - 8 <= x <= x1 + 8 and y0 - 8 <= y <= y1 + 8 for x0, y0, x1, y1 in boxes):
                return x, y
    return width / 2, height / 2


def expected_differential(record, decided: dict[int, str]) -> dict[str, int]:
    """The reviewed differential the decisions imply, counted here without the case record's rule."""
    from ml.labels import CELL_TYPES

    counts = dict.fromkeys(CELL_TYPES, 0)
    for cell in record.cells:
        label = decided.get(cell.cell_id)
        if label is None and cell.ai_label and not cell.low_confidence:
            label = cell.ai_label
        if label in counts:
            counts[label] += 1
    return counts


def wait_for_next_totp_period() -> float:
    remaining = TOTP_PERIOD - (time.time() % TOTP_PERIOD) + 0.5
    time.sleep(remaining)
    return remaining


# --------------------------------------------------------------------------- the PDF


def pdf_figures(text: str) -> dict:
    """Blast %, the differential table (class -> reviewed count, %, AI count) and the source line."""
    from ml.labels import CELL_TYPE_DISPLAY

    flat = re.sub(r"[ \t]+", " ", text)
    blast = re.search(r"Blast % (not determined|([\d.]+)%)", flat)
    rows = {}
    for label, name in CELL_TYPE_DISPLAY.items():
        first_word = re.escape(name.split(" (")[0])
        found = re.search(rf"^\s*{first_word}[^\n\d]*?\s(\d+)\s+(—|[\d.]+%)\s+(\d+)\s*$", text, re.MULTILINE)
        if found:
            rows[label] = {"count": int(found.group(1)),
                           "percent": None if found.group(2) == "—" else float(found.group(2).rstrip("%")),
                           "ai": int(found.group(3))}
    return {
        "blast_percent": None if blast is None or blast.group(2) is None else float(blast.group(2)),
        "blast_found": blast is not None,
        "rows": rows,
        "reviewed_source": "The blast % is the reviewed cells' count." in flat.replace("\n", " "),
        "demo": "demo model" in flat.lower(),
        "blasts_line": (re.search(r"Blasts (\d+) of (\d+) white cells", flat).groups()
                        if re.search(r"Blasts (\d+) of (\d+) white cells", flat) else None),
    }


# --------------------------------------------------------------------------- main


def run(args, folder: Path) -> int:
    import django

    django.setup()
    from django.conf import settings
    from django.core.cache import cache
    from django.core.management import call_command
    from django.test import Client
    from django.urls import reverse

    from diagnostics.models import Lab, ModelVersion
    from diagnostics.services.case_record import build_case_record
    from ml.labels import CELL_TYPE_DISPLAY, CELL_TYPES
    from reports import services as reports
    from review import cells as cells_service
    from review import services as review_service
    from review.models import SignOut

    figures: dict = {"machine": f"{platform.machine()}, {os.cpu_count()} cores", "database": "PostgreSQL (temporary)"}
    call_command("migrate", verbosity=0)
    call_command("createcachetable", verbosity=0)  # allauth's one-time codes and rate limits (as bin/run)
    cache.clear()

    # --- models ---------------------------------------------------------------------
    args.cell_train_s = None
    cell_path = Path(args.cell_model).resolve() if args.cell_model else train_cell_model(args, folder)
    figures["cell_model_trained_s"] = args.cell_train_s
    figures.update(register_models(args, cell_path))
    wbc = (f"learned mask {settings.WBC_MASK_MODEL} (sha256 {sha12(settings.WBC_MASK_MODEL)}, WBC_MASK_MODEL)"
           if settings.WBC_MASK_MODEL else "colour rules (ml.segment; WBC_MASK_MODEL unset)")
    figures["white_cells"] = wbc
    say(f"image model: {figures['image_model']}"
        + (" [DEMO model, synthetic smears: not for diagnosis]" if figures["image_model_demo"] else " [real]"))
    say(f"cell model:  {figures['cell_model']}" + (" [demo]" if figures["cell_model_demo"] else " [real data]"))
    cell_version = ModelVersion.objects.get(task="cell", is_active=True)
    validation = (cell_version.card or {}).get("validation", {})
    if validation:
        say(f"             held-out: pbc_accuracy {validation.get('pbc_accuracy', 0):.3f}, cnmc_blast_auc "
            f"{validation.get('cnmc_blast_auc', 0):.3f}, image_blast_auc {validation.get('image_blast_auc', 0):.3f}")
    say(f"white cells: {wbc}")

    lab = Lab.objects.get(slug="demo")
    from django.contrib.auth import get_user_model

    pathologist = get_user_model().objects.get(username="demo-pathologist")
    technician = get_user_model().objects.get(username="demo-technician")

    # --- the case -------------------------------------------------------------------
    fields = choose_fields(args.images, args.classes)
    case, pipeline_s = make_case(lab, technician, fields)
    figures["pipeline_s"] = round(pipeline_s, 2)
    record = build_case_record(case)
    say("")
    say(f"case {case.accession_number}: {len(fields)} real all4class test-part fields uploaded by the technician, "
        f"pipeline in this process {pipeline_s:.1f} s")
    rows = {row.image_id: row for row in record.images}
    truth = {}
    for image in case.images.order_by("position"):
        label, relpath, _ = next(f for f in fields if Path(f[1]).name == image.original_filename)
        truth[image.pk] = label
        row = rows[image.pk]
        n = sum(1 for c in record.cells if c.image_id == image.pk)
        low = sum(1 for c in record.cells if c.image_id == image.pk and c.low_confidence)
        calls = {}
        for c in record.cells:
            if c.image_id == image.pk and c.ai_label:
                calls[c.ai_label] = calls.get(c.ai_label, 0) + 1
        say(f"  #{image.position} {relpath:<28} {image.width}x{image.height}  AI image label {row.ai_label:<6} "
            f"| {n:>2} white cells ({low} low-confidence): "
            + ", ".join(f"{k} {v}" for k, v in sorted(calls.items(), key=lambda kv: -kv[1])))
    ai = record.ai_differential
    say(f"AI differential ({ai.nucleated} nucleated white cells, {ai.unidentified} unclassified): {differential_line(ai)}")
    say(f"AI blast %: {percent_text(record.blast_percent)} ({record.blasts} of {record.blast_wbc} white cells; "
        f"blast estimate validated: {record.blast_validated}); of the nucleated cells the cell model classified: "
        f"{percent_text(None if ai.blast_fraction is None else 100 * ai.blast_fraction)}")
    figures.update({
        "images": len(fields), "cells": len(record.cells), "low_confidence_cells": sum(c.low_confidence for c in record.cells),
        "ai_blast_percent": record.blast_percent, "ai_differential": {k: v for k, v in ai.counts.items() if v},
    })

    # --- the pathologist --------------------------------------------------------------
    secret = activate_totp(pathologist)
    client = Client()
    login(client, pathologist, secret)
    get_page(client, reverse("worklist"), case.accession_number)
    get_page(client, reverse("case_review", args=[case.pk]), case.accession_number)
    started = time.perf_counter()
    gallery = get_page(client, reverse("case_cells", args=[case.pk]))
    gallery_s = time.perf_counter() - started
    shown = len(re.findall(r'<figure class="cg-cell[^"]*" id="cell-\d+"', gallery))
    say("")
    say(f"pathologist: logged in (password + TOTP), worklist and case page 200, cell gallery {gallery_s:.2f} s "
        f"with {shown} cell crops")
    if shown != len(record.cells):
        raise SystemExit(f"the gallery shows {shown} cells, the case has {len(record.cells)}")

    plan, decided = plan_decisions(case)
    for label, changes in plan.items():
        cells_service.reclassify_cells(case=case, reviewer=pathologist, changes=changes, label=label,
                                       submission_token=uuid.uuid4())
    reclassified = len(decided)
    low_changed = sum(1 for c in record.cells if c.cell_id in decided and c.low_confidence)
    record = build_case_record(case)
    artefact = next(c for c in record.cells if c.cell_id not in decided and c.ai_label and not c.low_confidence)
    cells_service.reclassify_cells(case=case, reviewer=pathologist, changes=[(artefact.cell_id, artefact.version)],
                                   label="artefact", submission_token=uuid.uuid4())
    decided[artefact.cell_id] = "artefact"
    first = case.images.order_by("position").first()
    x, y = free_point(record, first.pk, first.width, first.height)
    added = cells_service.add_cell(case=case, reviewer=pathologist, image_id=first.pk, x=x, y=y, label="blast",
                                   submission_token=uuid.uuid4())
    added_id = added.reviews[0].cell_id
    decided[added_id] = "blast"
    say(f"cells: {reclassified} reclassified ({low_changed} low-confidence -> their second most probable class, "
        f"{reclassified - low_changed} confident (every 5th) -> another class), cell {artefact.index} of image "
        f"#{artefact.position} marked artefact, 1 missed cell added on image #{first.position} at "
        f"({x:.0f}, {y:.0f}) as blast")
    # The page after the changes: the gallery and its differential partial.
    get_page(client, reverse("case_cells", args=[case.pk]))
    get_page(client, reverse("case_cells_differential", args=[case.pk]))

    for item in review_service.review_items(case):
        label = truth[item.image.pk]
        if label not in item.analysis.model_version.class_names:
            label = item.analysis.label
        review_service.record_review(image=item.image, reviewer=pathologist, label=label,
                                     submission_token=uuid.uuid4(), comment="")
    agreed = sum(1 for item in review_service.review_items(case) if item.latest_review.agrees_with_ai)
    say(f"images: all {len(fields)} reviewed (each given its all4class class; the AI image label agreed on {agreed})")

    record = build_case_record(case)
    reviewed = record.reviewed_differential
    expected_counts = expected_differential(record, decided)
    say(f"reviewed differential ({reviewed.nucleated} nucleated, {reviewed.unidentified} unidentified): "
        f"{differential_line(reviewed)}")
    say(f"reviewed blast %: {percent_text(record.blast_percent)} ({record.blasts} of {record.blast_wbc}; source "
        f"{record.blast_source}); agreement with the AI: {record.agreement.percent_unchanged}% unchanged, "
        f"kappa {record.agreement.kappa}")

    signout_page = get_page(client, reverse("case_sign_out", args=[case.pk]))
    if 'name="code"' not in signout_page:
        raise SystemExit("the sign-out page shows no code field")
    waited = wait_for_next_totp_period()
    data = {  # what the sign-out page posts
        "diagnosis": args.diagnosis,
        "diagnosis_subtype": "pre_b" if args.diagnosis == "consistent_with_b_all" else "",
        "further_studies": "Flow cytometric immunophenotyping" if args.diagnosis == "suspicious" else "",
        "diagnosis_comment": "Scripted review of a composite of real all4class fields (bench/review_real_case.py).",
        "confirm": "on",
        "code": totp_code(secret),
    }
    response = client.post(reverse("case_sign_out", args=[case.pk]), data)
    if response.status_code != 302:
        raise SystemExit(f"sign-out refused (HTTP {response.status_code}): "
                         f"{re.sub(r'<[^>]+>', ' ', response.content.decode())[-1500:]}")
    sign_out = SignOut.objects.get(case=case, version=1)
    say(f"signed out: version {sign_out.version}, '{sign_out.get_diagnosis_display()}', fresh TOTP code "
        f"(waited {waited:.0f} s for the next period: the login code counts once)")

    # --- the report ---------------------------------------------------------------------
    started = time.perf_counter()
    report = reports.create_final_report(case.pk, pathologist.pk, sign_out.version)
    render_s = time.perf_counter() - started
    out_dir = Path(args.out).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    pdf_path = out_dir / f"{case.accession_number}-v{sign_out.version}.pdf"
    pdf_path.write_bytes(bytes(report.pdf))
    text = subprocess.run(["pdftotext", "-layout", str(pdf_path), "-"], capture_output=True, text=True,
                          check=True).stdout
    (out_dir / f"{case.accession_number}-v{sign_out.version}.txt").write_text(text)
    found = pdf_figures(text)

    record = build_case_record(case)
    reviewed, ai = record.reviewed_differential, record.ai_differential
    say("")
    say(f"final report: {pdf_path} ({len(report.pdf) // 1024} KiB, rendered in {render_s:.1f} s, "
        f"status {report.status}, demo {report.demo})")
    say("  (service: the case record's reviewed differential; PDF: the final report's text; expected: the "
        "scripted decisions over the AI calls; '-': no row, the PDF lists the classes with cells)")
    say(f"  {'class':<32}{'service':>9}{'%':>8}{'PDF':>7}{'%':>8}{'expected':>10}{'AI svc':>8}{'AI PDF':>8}")
    mismatches = []
    for label in CELL_TYPES:
        want, got = reviewed.counts.get(label, 0), found["rows"].get(label)
        pct = reviewed.percent(label)
        got_count = got["count"] if got else None
        got_pct = got["percent"] if got else None
        got_ai = got["ai"] if got else None
        # The PDF lists the classes with cells (reviewed or AI); a class with none is no row.
        if got is None:
            ok = want == 0 and ai.counts.get(label, 0) == 0 and expected_counts[label] == 0
        else:
            ok = got_count == want and got_pct == pct and got_ai == ai.counts.get(label, 0) \
                and expected_counts[label] == want
        if not ok:
            mismatches.append(label)
        say(f"  {CELL_TYPE_DISPLAY[label]:<32}{want:>9}{percent_text(pct) if pct is not None else '—':>8}"
            f"{'-' if got_count is None else got_count:>7}{'—' if got_pct is None else f'{got_pct:.1f}%':>8}"
            f"{expected_counts[label]:>10}{ai.counts.get(label, 0):>8}{'-' if got_ai is None else got_ai:>8}"
            f"{'' if ok else '   <- differs'}")
    blast_ok = found["blast_percent"] == record.blast_percent == sign_out.summary.get("blast_percent")
    say(f"  {'Blast %':<32}{percent_text(record.blast_percent):>9}{'':>8}{percent_text(found['blast_percent']):>15}"
        f"   signed snapshot {percent_text(sign_out.summary.get('blast_percent'))}{'' if blast_ok else '   <- differs'}")
    if not blast_ok:
        mismatches.append("blast_percent")
    counted = tuple(int(v) for v in found["blasts_line"]) if found["blasts_line"] else None
    counted_ok = counted == (record.blasts, record.blast_wbc)
    say(f"  {'Blasts of white cells':<32}{f'{record.blasts} of {record.blast_wbc}':>9}{'':>8}"
        f"{'not found' if counted is None else f'{counted[0]} of {counted[1]}':>15}{'' if counted_ok else '   <- differs'}")
    if not counted_ok:
        mismatches.append("blasts of white cells")
    if not found["reviewed_source"]:
        mismatches.append("reviewed-source line")
    say(f"  PDF says the blast % is the reviewed cells' count: {found['reviewed_source']}; "
        f"PDF says demo model: {found['demo']}")
    figures.update({
        "cells_reclassified": reclassified, "low_confidence_reclassified": low_changed, "artefacts_marked": 1,
        "cells_added": 1, "reviewed_blast_percent": record.blast_percent,
        "reviewed_differential": {k: v for k, v in reviewed.counts.items() if v},
        "pdf_blast_percent": found["blast_percent"], "pdf_rows_matched": len(CELL_TYPES) - len(
            [m for m in mismatches if m in CELL_TYPES]),
        "agreement_percent_unchanged": record.agreement.percent_unchanged, "agreement_kappa": record.agreement.kappa,
        "report_render_s": round(render_s, 2), "gallery_page_s": round(gallery_s, 3), "pdf": str(pdf_path),
        "pdf_says_demo": found["demo"], "match": not mismatches,
    })
    if mismatches:
        say(f"MISMATCH between the PDF and the reviewed differential: {', '.join(mismatches)}")
    else:
        say("OK: the PDF's blast % and differential equal the reviewed differential the service computed.")
    print(json.dumps(figures))
    return 1 if mismatches else 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=6)
    parser.add_argument("--classes", default="Pre,Benign", help="all4class classes, taken in turn (default Pre,Benign)")
    parser.add_argument("--cell-model", help="a checkpoint from `python -m ml train-cells` (default: train one now)")
    parser.add_argument("--all4class-every", type=int, default=20, help="train-cells: every Nth all4class train/val image")
    parser.add_argument("--threads", type=int, default=1, help="train-cells torch threads")
    parser.add_argument("--image-model", help="a registered-able image checkpoint (default: the synthetic demo model)")
    parser.add_argument("--wbc-mask", help="a learned white-cell mask checkpoint (WBC_MASK_MODEL; default colour rules)")
    parser.add_argument("--diagnosis", default="suspicious",
                        choices=["no_evidence_of_all", "consistent_with_b_all", "suspicious", "insufficient"])
    parser.add_argument("--database-url", help="PostgreSQL server for a temporary database (default $DATABASE_URL)")
    parser.add_argument("--out", default=str(REPO_ROOT / "artifacts" / "realcase"), help="where the PDF and its text go")
    args = parser.parse_args(argv)
    args.classes = [c.strip() for c in args.classes.split(",") if c.strip()]
    if shutil.which("pdftotext") is None:
        raise SystemExit("pdftotext (Debian package poppler-utils) is needed")
    folder = Path(tempfile.mkdtemp(prefix="mf-bench-realcase-"))
    server, db_name = prepare(args, folder)
    try:
        return run(args, folder)
    finally:
        with contextlib.suppress(Exception):
            from django.db import connections

            connections.close_all()
        if server and db_name:
            _drop_database(server, db_name)
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
