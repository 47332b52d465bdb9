"""The cell gallery in a real browser (system Chromium via Playwright, live server on
PostgreSQL): reclassify by keyboard (one cell, then a multi-selection) and by drag and
drop, mark an artefact, add a missed cell by clicking on its image, see the differential
follow, check that a shortcut does nothing while a form field has focus, and that a page
left open behind a newer decision is refused (409) and says so. A screenshot of the
gallery goes to test-artifacts/cell-gallery.png.

The cells are a synthetic smear's real white cells (ground-truth boxes, ml.synthetic)
with test AI labels; the pipeline that writes Cell rows has its own tests.
"""

from __future__ import annotations

import pytest

from diagnostics.models import Cell
from diagnostics.services.case_record import build_case_record
from review.models import CellReview
from tests.browser.support import ARTIFACTS, BrowserTestCase
from tests.factories import smear_case

pytestmark = [pytest.mark.browser, pytest.mark.services]


class CellGalleryBrowserTest(BrowserTestCase):
    def test_keyboard_drag_artefact_add_and_stale_page(self):
        case, images, cells = smear_case(self.lab, n_images=2, wbc_per_image=8, low_every=5, size=(360, 360),
                                              subtype=("Benign", "Pre"))
        by_label = {}
        for cell in cells:
            if not cell.low_confidence:
                by_label.setdefault(cell.ai_label, []).append(cell)
        page = self.new_page()
        self.login(page, self.pathologist)
        url = self.url(f"/cases/{case.pk}/cells/")
        page.goto(url)
        assert page.locator("#cell-gallery .cg-cell").count() == len(cells)
        blast_percent = page.locator("#reviewed-blast-percent")

        def expect_percent():
            fraction = build_case_record(case).reviewed_differential.blast_fraction
            text = "n/d" if fraction is None else f"{round(100 * fraction, 1)}%"
            page.wait_for_function(
                "t => document.getElementById('reviewed-blast-percent').textContent.trim() === t", arg=text)
            return text

        def decision(cell):
            return CellReview.objects.filter(cell=cell).order_by("-version").first()

        # --- keyboard: one cell, "1" = blast ----------------------------------------------
        lymph = by_label["lymphocyte"][0]
        page.click(f"#cell-{lymph.pk}")
        page.keyboard.press("1")
        page.locator(f"#cells-blast #cell-{lymph.pk}").wait_for()
        assert (decision(lymph).from_label, decision(lymph).label) == ("lymphocyte", "blast")
        expect_percent()

        # --- keyboard: a multi-selection (Ctrl-click), "4" = neutrophil --------------------
        a, b = by_label["monocyte"][0], by_label["lymphocyte"][1]
        page.click(f"#cell-{a.pk}")
        page.click(f"#cell-{b.pk}", modifiers=["Control"])
        assert page.locator("#cell-gallery .cg-cell.selected").count() == 2
        page.keyboard.press("4")
        page.locator(f"#cells-neutrophil #cell-{a.pk}").wait_for()
        page.locator(f"#cells-neutrophil #cell-{b.pk}").wait_for()
        assert decision(a).submission_token == decision(b).submission_token
        # The reviewer's place is kept: the focus moved to a neighbour, not to the top of the page.
        assert page.locator("#cell-gallery .cg-cell.focused").count() == 1

        # --- drag and drop onto "monocyte" -------------------------------------------------
        neutro = by_label["neutrophil"][0]
        page.drag_and_drop(f"#cell-{neutro.pk}", "#cells-monocyte")
        page.locator(f"#cells-monocyte #cell-{neutro.pk}").wait_for()
        assert decision(neutro).label == "monocyte"

        # --- artefact / not a cell ("x") ---------------------------------------------------
        low = next(c for c in cells if c.low_confidence)
        assert page.locator(f"#cells-Unidentified #cell-{low.pk}").count() == 1
        page.click(f"#cell-{low.pk}")
        page.keyboard.press("x")
        page.locator(f"#cells-artefact #cell-{low.pk}").wait_for()
        assert page.locator(f"#marker-{low.pk}").get_attribute("class") == "mk lbl-artefact"
        expect_percent()

        # --- a shortcut never fires while a form field has focus ---------------------------
        before = CellReview.objects.count()
        stage = page.locator(f"#image-{images[1].pk} svg")
        stage.scroll_into_view_if_needed()
        box = stage.bounding_box()
        # A spot on no cell's box (a click on a box selects that cell instead).
        boxes = [c.bbox for c in cells if c.analysis.image_id == images[1].pk]
        spot = next((x, y) for y in range(20, 340, 10) for x in range(20, 340, 10)
                    if not any(b[0] - 12 <= x <= b[2] + 12 and b[1] - 12 <= y <= b[3] + 12 for b in boxes))
        click_at = (box["x"] + box["width"] * spot[0] / 360, box["y"] + box["height"] * spot[1] / 360)
        page.mouse.click(*click_at)
        form = page.locator("#add-cell-form")
        form.wait_for(state="visible")
        assert page.evaluate("document.activeElement.id") == "add-cell-label"
        page.keyboard.press("1")
        page.keyboard.press("x")
        page.wait_for_timeout(300)  # give a wrongly fired request time to land
        assert CellReview.objects.count() == before
        page.keyboard.press("Escape")
        form.wait_for(state="hidden")

        # --- add a missed cell by clicking on the image -------------------------------------
        page.mouse.click(*click_at)
        form.wait_for(state="visible")
        page.select_option("#add-cell-label", "blast")
        page.click("#add-cell-form button[type=submit]")
        added = page.locator("#cells-blast .cg-cell.is-added")
        added.wait_for()
        new_cell = Cell.objects.get(analysis__image=images[1], ai_label="")
        assert added.get_attribute("id") == f"cell-{new_cell.pk}"
        review = decision(new_cell)
        assert (review.action, review.label, review.reviewer) == ("added", "blast", self.pathologist)
        x0, y0, x1, y1 = new_cell.bbox
        assert x0 <= spot[0] <= x1 and y0 <= spot[1] <= y1  # the box is around the click
        page.locator(f"#marker-{new_cell.pk}").wait_for(state="attached")
        percent = expect_percent()
        assert page.locator("#cells-blast [data-count]").inner_text() == str(len(by_label["blast"]) + 2)

        # --- a stale page: another page changes a cell first --------------------------------
        other = self.new_page()
        self.login(other, self.pathologist)
        other.goto(url)
        target = by_label["eosinophil"][0] if "eosinophil" in by_label else by_label["lymphocyte"][2]
        other.click(f"#cell-{target.pk}")
        other.keyboard.press("5")
        other.locator(f"#cells-monocyte #cell-{target.pk}").wait_for()
        page.click(f"#cell-{target.pk}")
        page.keyboard.press("3")
        page.locator("#cell-status.error").wait_for()
        assert "changed on another page" in page.locator("#cell-status").inner_text()
        assert decision(target).label == "monocyte"

        page.reload()
        page.locator(f"#cells-monocyte #cell-{target.pk}").wait_for()
        assert blast_percent.inner_text().strip() == percent
        path = self.screenshot(page, "cell-gallery")
        assert path == ARTIFACTS / "cell-gallery.png" and path.stat().st_size > 10_000
