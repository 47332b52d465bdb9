"""From the review screen to a verified paper report, in a real browser (system
Chromium via Playwright) against a live server and a real Celery worker that
renders the report, on PostgreSQL + Redis:

* the review keyboard: number keys and letters typed into a comment box stay
  text (nothing is saved); a comment typed while a number-key save is on its
  way survives the swap, with the focus kept in the box;
* the pathologist without two-factor follows the sign-out page's link, sets up
  TOTP and comes back to the sign-out page; sets the name and credentials on
  the profile page and comes back again;
* reclassifies a cell in the cell gallery by its key;
* signs with an interpretation: the code just used is refused, a fresh one signs;
* the worker's PDF prints the interpretation, the reviewed cell differential,
  the comments and the signer's name and credentials; its QR code, decoded from the rendered page, opens a
  verify page (no login) with the same figures and no patient identifier.

Screenshots (review, sign-out, verify page, the report's first page) go to
test-artifacts/ to be looked at.
"""

from __future__ import annotations

import re
import shutil
import time
from urllib.parse import urlsplit

import pytest
from django.core.cache import cache
from django.test import override_settings

from reports.models import Report, ReportStatus
from review.models import Review, SignOut
from tests.browser.support import ARTIFACTS, BrowserTestCase
from tests.factories import add_cells, analysed_case
from tests.reports.pdftools import decode_qr, pdf_text, rasterise
from tests.review.helpers import TOLERANCE_1, totp_code

pytestmark = [pytest.mark.browser, pytest.mark.services, pytest.mark.slow]


def squash(text: str) -> str:
    return re.sub(r"\s+", " ", text)


@override_settings(**TOLERANCE_1)  # the live server runs in this process: the activation code, then a fresh one
class SignOutReportBrowserTest(BrowserTestCase):
    def test_keyboard_review_then_step_up_sign_out_and_a_verified_paper_report(self):
        from tests.workerproc import run_worker

        cache.clear()
        built = analysed_case(self.lab, drawn=True, labels=["Pro", "Pre", "Benign"], blasts=[4, 1, 0],
                           patient_pseudonym="PSEUDO-9031", accession_number="BM-BROWSER-016")
        case = built.case
        img1, img2, img3 = built.images
        cells = add_cells(built.analyses[1], ["blast"] * 3 + ["lymphocyte"] * 3)

        doc = self.new_page()
        self.login(doc, self.pathologist)  # password only: no authenticator yet

        # --- the review keyboard ---------------------------------------------------
        doc.goto(self.url(f"/cases/{case.pk}/review/"))
        card1, card2, card3 = (doc.locator(f"#image-{i.pk}") for i in (img1, img2, img3))
        card1.click(position={"x": 5, "y": 5})
        doc.keyboard.press("m")  # into the comment box
        typed = "1 blast-like, 2 nucleoli; confirm pattern"  # digits and shortcut letters, all text here
        doc.keyboard.type(typed)
        assert card1.locator("textarea[name=comment]").input_value() == typed
        assert not Review.objects.exists(), "a shortcut fired while typing"
        doc.keyboard.press("Escape")
        doc.keyboard.press("4")  # the 4th class, Pro, with the comment
        doc.locator(f"#image-{img1.pk}.is-reviewed").wait_for()
        first = Review.objects.get(image=img1)
        assert (first.label, first.comment) == ("Pro", typed)

        # A number-key save of image 2 is held on the wire while the reviewer starts its comment.
        held = []
        doc.route(f"**/cases/{case.pk}/images/{img2.pk}/review/", lambda route: held.append(route))
        card2.click(position={"x": 5, "y": 5})
        doc.keyboard.press("3")  # Pre
        box2 = card2.locator("textarea[name=comment]")
        box2.click()
        doc.keyboard.type("typed while saving")
        deadline = time.monotonic() + 10
        while not held and time.monotonic() < deadline:
            doc.wait_for_timeout(50)
        assert held, "the number key sent no review"
        held[0].continue_()
        doc.locator(f"#image-{img2.pk}.is-reviewed").wait_for()
        doc.unroute(f"**/cases/{case.pk}/images/{img2.pk}/review/")
        assert Review.objects.get(image=img2).label == "Pre"
        swapped_box = doc.locator(f"#image-{img2.pk} textarea[name=comment]")
        assert swapped_box.input_value() == "typed while saving"
        assert doc.evaluate(f"document.activeElement === document.querySelector('#image-{img2.pk} textarea[name=comment]')")
        doc.keyboard.type(" (kept)")  # still typing, still text
        doc.locator(f"#image-{img2.pk} [data-role=save]").click()
        doc.locator(f"#image-{img2.pk} .rv-current", has_text="(kept)").wait_for()
        assert Review.objects.filter(image=img2).latest("created_at").comment == "typed while saving (kept)"

        card3.click(position={"x": 5, "y": 5})
        doc.keyboard.press("c")
        doc.locator(f"#image-{img3.pk}.is-reviewed").wait_for()
        in_view = doc.evaluate("(() => { const c = document.querySelector('.rv-card.focused'); if (!c) return false;"
                               " const r = c.getBoundingClientRect(); return r.bottom > 0 && r.top < innerHeight; })()")
        assert in_view, "after saving, the focused card is off screen"
        assert Review.objects.filter(image__case=case).count() == 4
        self.screenshot(doc, "review-keyboard")

        # --- the cell gallery: one lymphocyte is a blast (by key), so 4 of 6 cells are blasts ----
        doc.goto(self.url(f"/cases/{case.pk}/cells/"))
        doc.click(f"#cell-{cells[3].pk}")
        doc.keyboard.press("1")
        doc.locator(f"#cells-blast #cell-{cells[3].pk}").wait_for()

        # --- two-factor set-up from the sign-out page, and back ----------------------
        sign_out_url = f"/cases/{case.pk}/sign-out/"
        doc.goto(self.url(sign_out_url))
        doc.click("#activate-totp-link")
        if "/reauthenticate/" in doc.url:  # allauth asks for the password again first
            doc.fill("input[name=password]", self.password)
            doc.click("button[type=submit]")
            doc.wait_for_url(re.compile(r"/2fa/totp/activate/"))
        secret = doc.input_value("#authenticator_secret")
        doc.fill("input[name=code]", totp_code(secret))
        doc.click("form button[type=submit]")
        doc.wait_for_url(re.compile(rf"{sign_out_url}$"))
        doc.get_by_text("Two-factor authentication is on.").wait_for()

        doc.click("#edit-profile-link")
        doc.fill("#id_first_name", "Patricia")
        doc.fill("#id_last_name", "Okafor")
        doc.fill("#id_credentials", "MD, FRCPath")
        doc.click("#profile-form button[type=submit]")
        doc.wait_for_url(re.compile(rf"{sign_out_url}$"))
        assert "Patricia Okafor, MD, FRCPath" in doc.inner_text("#signer-line")

        # --- the signature: the interpretation and a fresh code ------------------------
        def fill_signature(code: str) -> None:
            doc.check("input[name=diagnosis][value=consistent_with_b_all]")
            doc.select_option("#id_diagnosis_subtype", "pro_b")
            doc.fill("#id_diagnosis_comment", "Blasts replace the marrow; flow cytometry sent.")
            doc.check("#id_confirm")
            doc.fill("#id_code", code)

        fill_signature(totp_code(secret))  # the code that just activated two-factor
        doc.click("#sign-out-button")
        doc.locator("#code-errors").wait_for()
        assert "already used" in doc.inner_text("#code-errors")
        assert not SignOut.objects.exists()
        fill_signature(totp_code(secret, offset=1))
        self.screenshot(doc, "sign-out-diagnosis")
        with run_worker(queues=("cpu",), env={"MARROWFIND_WARM_UP": "0"}) as worker:
            doc.click("#sign-out-button")
            doc.wait_for_url(re.compile(rf"/cases/{case.pk}/review/$"))
            doc.get_by_text("signed out").first.wait_for()
            signed = SignOut.objects.get(case=case)
            assert (signed.diagnosis, signed.diagnosis_subtype) == ("consistent_with_b_all", "pro_b")
            deadline = time.monotonic() + 120
            while not Report.objects.filter(case=case, status=ReportStatus.FINAL).exists():
                assert time.monotonic() < deadline, f"no final report:\n{worker.log()[-3000:]}"
                time.sleep(0.5)
        report = Report.objects.get(case=case, status=ReportStatus.FINAL)

        # --- the PDF, downloaded in the pathologist's session --------------------------
        doc.goto(self.url(f"/cases/{case.pk}/reports/"))
        self.screenshot(doc, "reports")
        response = doc.context.request.get(self.url(f"/reports/{report.pk}/download/"))
        assert response.ok, response.status
        pdf = response.body()
        text = squash(pdf_text(pdf))
        for expected in ("Consistent with B-ALL (Pro-B)", "Blasts replace the marrow; flow cytometry sent.",
                         f"Reviewer's comment on image 1: “{typed}”", "typed while saving (kept)",
                         "Signed out by Patricia Okafor, MD, FRCPath"):
            assert expected in text, expected
        summary = signed.summary
        assert summary["blast_source"] == "reviewed"
        percent = f"{100 * summary['blast_fraction']:.1f}%"
        assert percent == "66.7%"
        assert f"Blast % {percent}" in text
        # the PDF's differential is the reviewed one: reviewed count, % of nucleated, the AI's count
        for expected in ("Cell differential (reviewed cells) Reviewed % of nucleated AI",
                         "Blast 4 66.7% 3", "Lymphocyte 2 33.3% 3"):
            assert expected in text, expected
        for label, ai, final in (("Benign (hematogone)", 1, 1), ("Pre-B ALL", 1, 1), ("Pro-B ALL", 1, 1)):
            assert f"{label} {ai} {final}" in text, label

        pages = rasterise(pdf, self.tmp, dpi=150)
        shutil.copy(pages[0], ARTIFACTS / "report-page-1.png")
        scanned = decode_qr(pages[0])
        assert urlsplit(scanned).path == f"/verify/{report.pk}/{report.content_sha256[:16]}", scanned

        # --- the verify page the QR opens, without a login ----------------------------
        holder = self.new_page()
        holder.goto(self.url(urlsplit(scanned).path))
        result = holder.locator("#verify-result")
        assert result.get_attribute("data-state") == "current"
        assert holder.inner_text("[data-testid=verify-diagnosis]") == "Consistent with B-ALL (Pro-B)"
        assert holder.inner_text("[data-testid=verify-signer]") == "Patricia Okafor, MD, FRCPath"
        assert holder.inner_text("[data-testid=verify-blast-percent]").startswith(percent)
        assert holder.inner_text("[data-testid=verify-per-class]") == "Benign (hematogone) 1 · Pre-B ALL 1 · Pro-B ALL 1"
        assert f"White cells {summary['wbc']}" in holder.inner_text("[data-testid=verify-cells]")
        page_html = holder.content()
        assert case.accession_number in page_html
        for hidden in ("PSEUDO-9031", "Blasts replace the marrow", typed):
            assert hidden not in page_html, hidden
        self.screenshot(holder, "verify-page")
        assert ARTIFACTS.joinpath("report-page-1.png").stat().st_size > 10_000
