"""The full-resolution viewer and the exclusion of an image, in a real browser (system
Chromium via Playwright) against a live server on PostgreSQL + Redis:

* viewer: a real worker analyses a real blood-smear image (CBC, else a synthetic
  smear) and makes its Deep Zoom tiles; the pathologist opens the viewer, zooms in,
  moves the Grad-CAM opacity slider, sees the cell outlines, and the page breaks no
  rule of the Content-Security-Policy; every tile is answered ``no-store``.
* exclusion: an image the scope check flagged has its exclusion pre-filled; one
  click excludes it and the case figures leave it out.

Screenshots go to test-artifacts/ (viewer.png, viewer-zoomed.png, review-exclusion.png).
"""

from __future__ import annotations

import time

import pytest

from diagnostics.models import Analysis, CaseStatus, Cell
from diagnostics.services.case_record import case_figures
from ml.datapaths import shared_data_dir
from review.models import Review
from tests.browser.support import BrowserTestCase
from tests.factories import analysed_case, uploaded_case
from tests.imagefactory import smear_png_bytes

pytestmark = [pytest.mark.browser, pytest.mark.services, pytest.mark.slow]


def _blood_smear() -> tuple[bytes, str]:
    """A real 640×480 CBC blood-smear photograph when the data set is here, else a synthetic smear."""
    folder = shared_data_dir() / "cbc" / "Testing" / "Images"
    images = sorted(folder.glob("*.jpg")) if folder.is_dir() else []
    if images:
        return images[0].read_bytes(), images[0].name
    return smear_png_bytes(seed=11, size=(480, 640)), "smear.png"


def _watch_csp(page) -> list[str]:
    """Every Content-Security-Policy violation the page reports (console and event)."""
    violations: list[str] = []
    page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
    page.add_init_script(
        "document.addEventListener('securitypolicyviolation', e => console.error("
        "'Content Security Policy violation: ' + e.violatedDirective + ' ' + e.blockedURI));"
    )
    return violations


def _until(page, expression: str, timeout: float = 30.0) -> None:
    """Wait until ``expression`` is true in the page. Polled from here with ``evaluate``:
    Playwright's own ``wait_for_function`` polls with eval, which this site's CSP refuses."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        assert time.monotonic() < deadline, f"timed out waiting for {expression}"
        page.wait_for_timeout(100)


class ViewerBrowserTest(BrowserTestCase):
    def test_viewer_zooms_on_the_tiles_and_fades_the_grad_cam_layer(self):
        from marrowfind import dispatch
        from tests.modelfixtures import register_test_model
        from tests.workerproc import run_worker, wait_for_case_status

        register_test_model("image")
        register_test_model("cell")
        data, name = _blood_smear()
        case = uploaded_case(self.lab, files=[data], filenames=[name])
        with run_worker(queues=("gpu", "cpu")) as worker:
            dispatch.send(dispatch.PROCESS_CASE, case.pk)  # what the upload sends, by name through the seam
            wait_for_case_status(case, {CaseStatus.AWAITING_REVIEW}, timeout=240, worker=worker)
            deadline = time.monotonic() + 120
            analysis = Analysis.objects.get(image__case=case)
            while not analysis.tiles and time.monotonic() < deadline:
                time.sleep(0.3)
                analysis.refresh_from_db()
        self.assertEqual(set(analysis.tiles.get("layers", {})), {"original", "cam", "segmentation"}, analysis.tiles)
        levels = analysis.tiles["layers"]["original"]["levels"]
        image = case.images.get()

        page = self.new_page()
        violations = _watch_csp(page)
        tile_answers: list[tuple[str, int, str]] = []
        page.on("response", lambda r: tile_answers.append((r.url, r.status, r.headers.get("cache-control", "")))
                if "/tiles/" in r.url else None)
        self.login(page, self.pathologist)
        page.goto(self.url(f"/cases/{case.pk}/review/"))
        page.locator(f"#image-{image.pk} [data-role=viewer]").click()
        page.wait_for_url(f"**/cases/{case.pk}/images/{image.pk}/viewer/")
        osd = page.locator("#osd")
        _until(page, "document.getElementById('osd').dataset.ready === 'true'")
        _until(page, f"Number(document.getElementById('osd').dataset.deepestLevel) === {levels - 1}")
        # The cell outlines are on by default: one shape per Cell row of the analysis.
        cells = Cell.objects.filter(analysis=analysis).count()
        self.assertGreater(cells, 0)
        self.assertEqual(page.locator("svg.osd-cells rect, svg.osd-cells polygon").count(), cells)
        page.wait_for_timeout(600)  # the opening animation
        self.screenshot(page, "viewer")

        # Zoom in with the mouse wheel over the image: the view magnifies the original's own pixels.
        home_zoom = float(osd.get_attribute("data-image-zoom"))
        box = osd.bounding_box()
        page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.5)
        for _ in range(5):  # OpenSeadragon zooms 1.2× a wheel step
            page.mouse.wheel(0, -240)
            page.wait_for_timeout(80)
        _until(page, f"Number(document.getElementById('osd').dataset.imageZoom) > {home_zoom * 2}", timeout=15)

        # Grad-CAM: move its opacity slider; the layer appears and its tiles are fetched.
        slider = page.locator("fieldset[data-layer=cam] input[data-role=opacity]")
        slider.fill("80")
        _until(page, "document.getElementById('osd').dataset.opacityCam === '0.80'")
        self.assertTrue(page.locator("fieldset[data-layer=cam] input[data-role=show]").is_checked())
        _until(page, "performance.getEntriesByType('resource').some(e => e.name.includes('/tiles/cam_files/'))")
        page.locator("fieldset[data-layer=cells] input[data-role=opacity]").fill("40")
        _until(page, "document.getElementById('osd').dataset.opacityCells === '0.40'")
        page.wait_for_timeout(800)
        self.assertEqual(page.locator("fieldset[data-layer=cam] output").inner_text(), "80%")
        self.screenshot(page, "viewer-zoomed")

        self.assertTrue(any("/tiles/cam_files/" in url for url, _, _ in tile_answers))
        self.assertTrue(all(status == 200 for _, status, _ in tile_answers), tile_answers)
        self.assertTrue(all("no-store" in cache for _, _, cache in tile_answers), tile_answers)
        self.assertEqual(violations, [])

        # Another lab's pathologist: the same tile URL is a 404.
        outsider = self.new_page()
        self.login(outsider, self.outsider)
        answer = outsider.request.get(tile_answers[0][0])
        self.assertEqual(answer.status, 404)


class ExclusionBrowserTest(BrowserTestCase):
    def test_exclude_an_image_the_scope_check_flagged(self):
        case, images = analysed_case(self.lab, n_images=2, labels=["Pro", "Benign"])
        Analysis.objects.filter(image=images[0]).update(
            in_scope=False, scope_code="tissue_section",
            scope_reason="This looks like a tissue section (H&E), not a smear.",
            cell_counts={"wbc": 40, "rbc": 10, "platelet": 0},
        )
        page = self.new_page()
        violations = _watch_csp(page)
        self.login(page, self.pathologist)
        page.goto(self.url(f"/cases/{case.pk}/review/"))
        card = page.locator(f"#image-{images[0].pk}")
        self.assertIn("out of scope", card.locator("[data-role=scope-flag]").inner_text())
        self.assertEqual(card.locator("select[name=exclusion]").input_value(), "tissue_section")
        card.locator("[data-role=exclude]").click()
        page.locator(f"#image-{images[0].pk} [data-role=exclusion]").wait_for()
        self.assertEqual(page.locator(f"#image-{images[0].pk} [data-role=exclusion]").inner_text(), "Tissue section")

        review = Review.objects.get(image=images[0])
        self.assertEqual((review.label, review.exclusion, review.reviewer), ("", "tissue_section", self.pathologist))
        figures = case_figures(case)
        self.assertEqual((figures["excluded"], figures["wbc"]), (1, 10))  # image 2's factory count only
        page.reload()
        self.assertEqual(page.locator("#group-excluded .rv-card").count(), 1)
        self.screenshot(page, "review-exclusion")
        self.assertEqual(violations, [])
