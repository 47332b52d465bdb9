"""The whole lab workflow in a real browser (system Chromium via Playwright)
against a live server and a real Celery worker on PostgreSQL + Redis:

technician logs in, uploads a case and watches its progress; the pathologist
logs in, turns on two-factor from the secret on the page, reviews every image
(keyboard confirm, an override with a comment), signs out with a TOTP code and
downloads the final PDF report. Screenshots of the case page, the worklist
and the review screen go to test-artifacts/ to be looked at.
"""

from __future__ import annotations

import re
import time

import pytest
from django.core.cache import cache
from django.test import override_settings

from diagnostics.models import Case, CaseStatus
from review.models import Review, SignOut
from tests.browser.support import ARTIFACTS, BrowserTestCase
from tests.imagefactory import smear_png_bytes
from tests.review.helpers import TOLERANCE_1, totp_code

pytestmark = [pytest.mark.browser, pytest.mark.services, pytest.mark.slow]


@override_settings(**TOLERANCE_1)  # the activation code is spent: the signature takes the next period's
class ReviewWorkflowBrowserTest(BrowserTestCase):
    def test_upload_review_override_sign_out_with_totp_and_download_report(self):
        from tests.modelfixtures import register_test_model
        from tests.workerproc import run_worker, wait_for_case_status

        cache.clear()
        register_test_model("image")
        files = []
        for n, label in enumerate(("Benign", "Pre", "Pro")):
            path = self.tmp / f"smear-{n + 1}.png"
            path.write_bytes(smear_png_bytes(seed=40 + n, label=label, size=(128, 128)))
            files.append(str(path))

        with run_worker(queues=("priority", "gpu", "cpu")) as worker:
            # --- technician: upload and watch the progress -----------------------
            tech = self.new_page()
            self.login(tech, self.technician)
            tech.goto(self.url("/cases/new/"))
            tech.fill("#id_accession_number", "BM-E2E-001")
            tech.fill("#id_patient_pseudonym", "PSEUDO-77")
            tech.select_option("#id_specimen", "bone_marrow_aspirate")
            tech.set_input_files("#id_files", files)
            tech.click("button[type=submit]")
            tech.wait_for_url(re.compile(r"/cases/\d+/$"))
            case_id = int(re.search(r"/cases/(\d+)/$", tech.url).group(1))
            # The case page polls with htmx and reloads itself when the run ends.
            wait_for_case_status(Case.objects.get(pk=case_id), {CaseStatus.AWAITING_REVIEW}, timeout=240, worker=worker)
            tech.locator("h1 .badge", has_text="Awaiting review").wait_for(timeout=30_000)
            self.screenshot(tech, "case-page")

            # --- pathologist: two-factor on, worklist, review ---------------------
            doc = self.new_page()
            self.login(doc, self.pathologist)
            doc.goto(self.url("/accounts/2fa/totp/activate/"))
            if "/reauthenticate/" in doc.url:  # allauth asks for the password again first
                doc.fill("input[name=password]", self.password)
                doc.click("button[type=submit]")
                doc.wait_for_url(re.compile(r"/2fa/totp/activate/"))
            secret = doc.input_value("#authenticator_secret")
            self.screenshot(doc, "totp-activate")
            doc.fill("input[name=code]", totp_code(secret))
            doc.click("form button[type=submit]")
            doc.wait_for_url(lambda url: "/activate/" not in url)

            doc.goto(self.url("/"))
            row = doc.locator(f"tr[data-case='{case_id}']")
            row.wait_for()
            self.screenshot(doc, "worklist")
            row.get_by_role("link", name="BM-E2E-001").click()
            doc.wait_for_url(re.compile(rf"/cases/{case_id}/review/$"))
            cards = doc.locator(".rv-card")
            assert cards.count() == 3
            self.screenshot(doc, "review-before")

            # Card 1: override with a comment by mouse (pick a class other than the AI's).
            first = cards.nth(0)
            ai_label = first.get_attribute("data-ai-label")
            other = next(name for name in ("Benign", "Early", "Pre", "Pro") if name != ai_label)
            first.locator(f"input[name=label][value={other}]").check()
            first.locator("textarea[name=comment]").fill("override in the browser test")
            first.locator("[data-role=save]").click()
            doc.locator(f"#{first.get_attribute('id')}.is-reviewed").wait_for()

            # Toggle the CAM view of card 2, then confirm cards 2 and 3 with the keyboard.
            second = cards.nth(1)
            second.locator("button[data-view=cam]").click()
            assert "/overlays/" in second.locator(".rv-view img").get_attribute("src")
            for index in (1, 2):
                card_id = cards.nth(index).get_attribute("id")
                cards.nth(index).click(position={"x": 5, "y": 5})
                doc.keyboard.press("c")
                doc.locator(f"#{card_id}.is-reviewed").wait_for()
            assert Review.objects.filter(image__case_id=case_id).count() == 3
            override = Review.objects.get(image__case_id=case_id, agrees_with_ai=False)
            assert (override.label, override.comment) == (other, "override in the browser test")

            # --- sign out with an interpretation and a fresh TOTP code ----------------
            doc.goto(self.url(f"/cases/{case_id}/sign-out/"))
            assert doc.locator("#sign-out-checks li.no").count() == 0
            doc.check("input[name=diagnosis][value=suspicious]")
            doc.fill("#id_further_studies", "Flow cytometric immunophenotyping")
            doc.check("#id_confirm")
            doc.fill("#id_code", totp_code(secret, offset=1))
            self.screenshot(doc, "sign-out")
            doc.click("#sign-out-button")
            doc.wait_for_url(re.compile(rf"/cases/{case_id}/review/$"))
            doc.get_by_text("signed out").first.wait_for()
            signed = SignOut.objects.get(case_id=case_id)
            assert (signed.version, signed.diagnosis) == (1, "suspicious")
            self.screenshot(doc, "review-signed-out")

            # --- the final report, made by the worker, downloaded ------------------
            deadline = time.monotonic() + 120
            link = doc.locator("a[href*='/download/']")
            while True:
                doc.goto(self.url(f"/cases/{case_id}/reports/"))
                if link.count():
                    break
                assert time.monotonic() < deadline, f"no report to download:\n{worker.log()[-3000:]}"
                time.sleep(1.0)
            self.screenshot(doc, "reports")
            # The download in this browser session (same cookies as the page).
            response = doc.context.request.get(self.url(link.first.get_attribute("href")))
            assert response.ok, response.status
            assert response.body().startswith(b"%PDF"), response.body()[:40]

        assert Case.objects.get(pk=case_id).status == CaseStatus.SIGNED_OUT
        assert ARTIFACTS.joinpath("worklist.png").exists()
