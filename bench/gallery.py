"""Load time of a case's cell gallery (a benchmark that prints its figures, not a timed test).

Usage::

    .venv/bin/python bench/gallery.py [--cells 200] [--images 10] [--repeat 5] \
        [--database-url postgres://postgres@127.0.0.1:5432/postgres] [--no-browser]

What one run does, in a database and media folder of its own:

1. **Setup.** With ``--database-url`` (or ``DATABASE_URL``) a temporary PostgreSQL
   database is created on that server and dropped at the end (else embedded SQLite).
2. **A case** of ``--images`` synthetic smears (ml.synthetic, 480×640 PNG) holding
   ``--cells`` white cells in all, one ``Cell`` row per white cell of the smears'
   ground truth (its real box), as the pipeline would write them; a tenth of them
   low-confidence (the Unidentified group) and a few already reclassified.
3. **Server side** (Django test client, in this process): the gallery page cold (its
   crops are cut from the originals on this first load), then warm (median of
   ``--repeat``), the differential partial, and every crop fetched from the crop
   route one after another (the page itself carries them inline up to
   ``review.cells.INLINE_CROPS_MAX`` cells).
4. **Browser** (unless ``--no-browser``; the system Chromium via Playwright against a
   live server thread): from navigation to the ``load`` event with every crop loaded
   (a viewport tall enough that no crop is lazy), median of ``--repeat``; and with a
   normal 1360×900 viewport (the crops below the fold load lazily).

The LAST line is one JSON object with the figures (seconds).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.pipeline import _create_database, _drop_database

CHROMIUM = "/usr/bin/chromium"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def prepare(args) -> tuple[Path, str | None, str | None]:
    folder = Path(tempfile.mkdtemp(prefix="mf-bench-gallery-"))
    server = args.database_url or os.environ.get("DATABASE_URL")
    url = name = None
    if server:
        url, name = _create_database(server)
    values = {
        "DJANGO_SETTINGS_MODULE": "marrowfind.settings",
        "MARROWFIND_VAR_DIR": str(folder / "var"),
        "MEDIA_ROOT": str(folder / "media"),
        "SECRET_KEY": secrets.token_urlsafe(48),
        "SECURE_HTTPS": "0",
        "STATIC_STORAGE": "plain",
        "LOG_LEVEL": "WARNING",
        "CELERY_BROKER_URL": "filesystem://",
        "ALLOWED_HOSTS": "testserver,127.0.0.1,localhost",
    }
    if url:
        values["DATABASE_URL"] = url
    else:
        os.environ.pop("DATABASE_URL", None)
    os.environ.update(values)
    return folder, server, name


def make_case(n_cells: int, n_images: int):
    """A lab, a pathologist and an awaiting-review case with ``n_cells`` white cells."""
    import hashlib
    import uuid

    import numpy as np
    from django.contrib.auth import get_user_model
    from django.core.files.base import ContentFile
    from PIL import Image

    from diagnostics.models import (
        Analysis,
        Batch,
        Case,
        CaseStatus,
        Cell,
        ImageStatus,
        Lab,
        Membership,
        ModelVersion,
        Role,
        SlideImage,
        Specimen,
    )
    from ml.synthetic import make_smear
    from review import cells as cells_service

    lab = Lab.objects.create(name="Bench lab", slug="bench")
    user = get_user_model().objects.create_user("bench", "bench@example.org", "bench-password-123")
    Membership.objects.create(user=user, lab=lab, role=Role.PATHOLOGIST)
    version = ModelVersion.objects.create(
        name="bench", arch="resnet18", class_names=["Benign", "Early", "Pre", "Pro"], checkpoint_path="-",
        sha256=hashlib.sha256(b"bench").hexdigest(), is_demo=True,
    )
    case = Case.objects.create(lab=lab, accession_number="BENCH-1", patient_pseudonym="P1",
                               specimen=Specimen.BONE_MARROW, status=CaseStatus.AWAITING_REVIEW)
    batch = Batch.objects.create(case=case, uploaded_by=user)
    per_image = [n_cells // n_images + (1 if i < n_cells % n_images else 0) for i in range(n_images)]
    others = ("lymphocyte", "neutrophil", "monocyte", "lymphocyte", "eosinophil", "neutrophil")
    n = 0
    cells = []
    for position, wanted in enumerate(per_image, start=1):
        smear = make_smear(position, label="Pre" if position % 3 == 0 else "Benign", size=(480, 640), n_wbc=wanted)
        buffer = io.BytesIO()
        Image.fromarray(smear.image).save(buffer, format="PNG")
        data = buffer.getvalue()
        image = SlideImage.objects.create(
            case=case, batch=batch, position=position, file=ContentFile(data, name=f"smear-{position}.png"),
            original_filename=f"smear-{position}.png", sha256=hashlib.sha256(data).hexdigest(), width=640, height=480,
            status=ImageStatus.DONE,
        )
        analysis = Analysis.objects.create(image=image, model_version=version, label="Benign",
                                           probabilities={"Benign": 0.9}, confidence=0.9, cell_counts={"wbc": wanted})
        wbc = sorted(i for i, kind in smear.kinds.items() if kind == "wbc")
        rows = []
        for index, instance in enumerate(wbc[:wanted], start=1):
            ys, xs = np.nonzero(smear.cell_labels == instance)
            n += 1
            label = "blast" if instance in smear.blast_ids else others[n % len(others)]
            low = n % 10 == 0
            rows.append(Cell(analysis=analysis, index=index, kind="wbc",
                             bbox=[int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1],
                             ai_label=label, probabilities={label: 0.5 if low else 0.9},
                             confidence=0.5 if low else 0.9, low_confidence=low))
        cells += Cell.objects.bulk_create(rows)
    # A few decisions already, as on a page half reviewed.
    for cell in cells[:10]:
        cells_service.reclassify_cells(case=case, reviewer=user, changes=[(cell.pk, 0)], label="lymphocyte",
                                       submission_token=uuid.uuid4())
    return case, user, len(cells)


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def server_side(case, user, repeat: int) -> dict:
    from django.test import Client
    from django.urls import reverse

    client = Client()
    client.force_login(user)
    url = reverse("case_cells", args=[case.pk])

    def get(path):
        response = client.get(path)
        assert response.status_code == 200, (path, response.status_code)
        return response

    cold = timed(lambda: get(url))
    warm = [timed(lambda: get(url)) for _ in range(repeat)]
    differential = [timed(lambda: get(reverse("case_cells_differential", args=[case.pk]))) for _ in range(repeat)]
    page = get(url).content.decode()
    import re

    inline = page.count('src="data:image/jpeg;base64,')
    crops = [reverse("cell_crop", args=[case.pk, int(i)]) for i in re.findall(r'<figure class="cg-cell[^"]*" id="cell-(\d+)"', page)]

    def fetch_all():
        for path in crops:
            response = get(path)
            b"".join(response.streaming_content)

    crops_s = timed(fetch_all)
    return {"page_cold_s": round(cold, 3), "page_warm_s": round(statistics.median(warm), 3),
            "differential_s": round(statistics.median(differential), 3), "crops": len(crops), "inline_crops": inline,
            "all_crops_serial_s": round(crops_s, 3), "page_bytes": len(page)}


def browser_side(case, user, repeat: int) -> dict:
    from django.conf import settings
    from django.contrib.staticfiles.handlers import StaticFilesHandler
    from django.test import Client
    from django.test.testcases import LiveServerThread
    from playwright.sync_api import sync_playwright

    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    thread = LiveServerThread("127.0.0.1", StaticFilesHandler, port=0)
    thread.daemon = True
    thread.start()
    thread.is_ready.wait()
    if thread.error:
        raise thread.error
    base = f"http://127.0.0.1:{thread.port}"
    client = Client()
    client.force_login(user)
    session = client.cookies[settings.SESSION_COOKIE_NAME].value
    url = f"{base}/cases/{case.pk}/cells/"
    results = {}
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                        args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
            for name, height in (("browser_all_crops_s", 12000), ("browser_first_view_s", 900)):
                times = []
                for _ in range(repeat):
                    context = browser.new_context(viewport={"width": 1360, "height": height})
                    context.add_cookies([{"name": settings.SESSION_COOKIE_NAME, "value": session, "url": base}])
                    page = context.new_page()
                    start = time.perf_counter()
                    page.goto(url, wait_until="load")
                    if height > 900:
                        page.wait_for_function("() => Array.from(document.querySelectorAll('.cg-cell img'))"
                                               ".every(i => i.complete && i.naturalWidth > 0)")
                    times.append(time.perf_counter() - start)
                    if height > 900:
                        loaded = page.evaluate("document.querySelectorAll('.cg-cell img').length")
                        results["browser_crops_loaded"] = loaded
                    context.close()
                results[name] = round(statistics.median(times), 3)
            browser.close()
    finally:
        thread.terminate()
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cells", type=int, default=200)
    parser.add_argument("--images", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--database-url", help="PostgreSQL server for a temporary database (default $DATABASE_URL)")
    parser.add_argument("--no-browser", action="store_true")
    args = parser.parse_args(argv)
    folder, server, db_name = prepare(args)
    try:
        import django

        django.setup()
        from django.core.management import call_command
        from django.db import connection

        call_command("migrate", verbosity=0)
        case, user, n = make_case(args.cells, args.images)
        figures = {"cells": n, "images": args.images, "database": connection.vendor,
                   "machine": f"{platform.machine()}, {os.cpu_count()} cores"}
        figures.update(server_side(case, user, args.repeat))
        if not args.no_browser and Path(CHROMIUM).exists():
            figures.update(browser_side(case, user, args.repeat))
        log(f"cell gallery, {n} cells on {args.images} images ({figures['database']}, {figures['machine']}):")
        log(f"  page, first load (crops cut from the originals): {figures['page_cold_s']:.3f} s")
        log(f"  page, warm (median of {args.repeat}):                 {figures['page_warm_s']:.3f} s "
            f"({figures['page_bytes'] // 1024} KiB of HTML)")
        log(f"  differential partial (htmx):                    {figures['differential_s']:.3f} s")
        log(f"  crops carried in the page:                      {figures['inline_crops']} of {figures['crops']}")
        log(f"  {figures['crops']} crops from the crop route, one by one:  {figures['all_crops_serial_s']:.3f} s")
        if "browser_all_crops_s" in figures:
            log(f"  Chromium, navigation to every crop loaded:      {figures['browser_all_crops_s']:.3f} s")
            log(f"  Chromium, navigation to load (1360x900 view):   {figures['browser_first_view_s']:.3f} s")
        print(json.dumps(figures))
    finally:
        with contextlib.suppress(Exception):
            from django.db import connections

            connections.close_all()
        if server and db_name:
            _drop_database(server, db_name)
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
