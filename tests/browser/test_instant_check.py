"""The instant check in a real browser: one image up, and the page (polling
with htmx) shows the label, the Grad-CAM and the counts, served by a real
worker on the priority queue."""

from __future__ import annotations

import time

import pytest

from tests.browser.support import BrowserTestCase
from tests.imagefactory import smear_png_bytes

pytestmark = [pytest.mark.browser, pytest.mark.services, pytest.mark.slow]


class InstantCheckBrowserTest(BrowserTestCase):
    def test_one_image_label_cam_and_counts(self):
        from tests.modelfixtures import register_test_model
        from tests.workerproc import run_worker

        register_test_model("image")
        image = self.tmp / "one.png"
        image.write_bytes(smear_png_bytes(seed=5, label="Pre", size=(128, 128)))
        with run_worker(queues=("priority",)) as worker:
            worker.wait_for_log("ready", timeout=60)
            page = self.new_page()
            self.login(page, self.technician)
            page.goto(self.url("/instant/"))
            page.set_input_files("#id_image", str(image))
            started = time.monotonic()
            page.click("#instant-form button[type=submit]")
            page.locator("#instant-label").wait_for(timeout=90_000)
            seconds = time.monotonic() - started
            self.screenshot(page, "instant-check")
            page.locator("#instant-cam").wait_for(state="visible")
            assert page.locator("#instant-cam").evaluate("img => img.complete && img.naturalWidth") == 128
            counts = page.locator("#instant-counts").inner_text()
            assert "WBC" in counts and "RBC" in counts
        print(f"instant check: result on the page {seconds:.1f} s after submit (warm worker, shared CPU)")
