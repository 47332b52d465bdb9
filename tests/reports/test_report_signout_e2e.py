"""Done means: a case signed out through the sign-out page (a TOTP login, then a
fresh code with the signature, the real sign-out view) yields a final PDF that
prints the interpretation, the reviewers' comments and the signer's name and
credentials, and whose QR code, scanned from the rendered page, opens a verify
page with the same figures and no patient identifier. An amendment's PDF says
what changed.

Committed transactions (TransactionTestCase) so the sign-out's on-commit hook
runs for real; Celery runs the report task in-process (eager). The same task
on a real worker process is tests/reports/test_report_worker.py; the same flow
in a browser is tests/browser/test_sign_out_report.py."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from django.test import override_settings
from django.urls import reverse

from accounts.services import update_profile
from reports import rendering as report_rendering
from reports.models import Report, ReportStatus
from tests.base import BaseTransactionTestCase
from tests.factories import analysed_case, review_case
from tests.reports.pdftools import (
    decode_qr,
    eager_celery,
    pdf_text,
    rasterise,
    scratch_dir,
)
from tests.review.helpers import TOLERANCE_1, activate_totp, login_with_totp, post_amend, post_sign_out


def squash(text: str) -> str:
    return re.sub(r"\s+", " ", text)


@override_settings(**TOLERANCE_1)
class SignOutYieldsVerifiableReportTest(BaseTransactionTestCase):
    def test_sign_out_report_prints_the_diagnosis_and_its_qr_verifies_with_the_same_figures(self):
        built = analysed_case(self.lab, drawn=True, labels=["Pro", "Pre", "Benign"], blasts=[2, 1, 0])
        case = built.case
        review_case(built, self.pathologist, labels={2: "Pro"})
        override = built.analyses[2].reviews.get()
        override.comment = "Fine chromatin, scant cytoplasm: a Pro-B blast"
        override.save()
        update_profile(self.pathologist, first_name="Patricia", last_name="Okafor", credentials="MD, FRCPath")
        secret = activate_totp(self.pathologist)
        login_with_totp(self.client, self.pathologist, secret)

        with eager_celery():
            refused = post_sign_out(self.client, case, secret, offset=0)  # the login's code
            self.assertEqual(refused.status_code, 400)
            self.assertFalse(Report.objects.filter(case=case).exists())
            response = post_sign_out(self.client, case, secret, offset=1, diagnosis="consistent_with_b_all",
                                     subtype="pro_b", comment="Blasts replace the marrow; flow cytometry sent.")
        self.assertEqual(response.status_code, 302, response.content[:3000])

        report = Report.objects.get(case=case, status=ReportStatus.FINAL)
        self.assertEqual((report.version, report.signed_by_id), (1, self.pathologist.pk))
        text = squash(pdf_text(bytes(report.pdf)))
        self.assertIn("Consistent with B-ALL (Pro-B)", text)
        self.assertIn("Blasts replace the marrow; flow cytometry sent.", text)
        self.assertIn("Fine chromatin, scant cytoplasm: a Pro-B blast", text)
        self.assertIn("Patricia Okafor, MD, FRCPath", text)
        summary = case.sign_outs.get(version=1).summary
        blast_percent = f"{100 * summary['blast_fraction']:.1f}%"
        self.assertIn(f"Blast % {blast_percent}", text)

        with scratch_dir() as folder:
            scanned = decode_qr(rasterise(bytes(report.pdf), folder, dpi=150)[0])
        self.assertEqual(scanned, report_rendering.verify_url(report))

        self.client.logout()
        page = self.client.get(urlsplit(scanned).path)
        self.assertEqual(page.context["state"], "current")
        html = squash(page.content.decode())
        self.assertIn(case.accession_number, html)
        self.assertNotIn(case.patient_pseudonym, html)
        self.assertNotIn("Blasts replace the marrow", html)  # free text stays on the paper
        figures = page.context["figures"]
        self.assertEqual(figures.blast_percent, round(100 * summary["blast_fraction"], 1))
        self.assertIn(f"{blast_percent} (3 of {summary['blast_wbc']} white cells)", html)
        self.assertIn("Consistent with B-ALL (Pro-B)", html)
        self.assertIn("Patricia Okafor, MD, FRCPath", html)
        self.assertIn("Benign (hematogone) 1 · Pro-B ALL 2", html)  # the signed labels, as the PDF's table
        self.assertIn(f"White cells {summary['wbc']}", html)

    def test_an_amendment_report_lists_what_changed(self):
        built = analysed_case(self.lab, drawn=True, labels=["Pro", "Pre"], blasts=[2, 1])
        case = built.case
        review_case(built, self.pathologist)
        secret = activate_totp(self.pathologist)
        self.client.force_login(self.pathologist)
        with eager_celery():
            self.assertEqual(post_sign_out(self.client, case, secret, offset=-1, diagnosis="suspicious",
                                           further_studies="flow cytometry").status_code, 302)
            post_amend(self.client, case, secret, reason="image 2 is Pro-B", offset=0)
            self.client.post(reverse("review_image", args=[case.pk, built.images[1].pk]),
                             {"label": "Pro", "submission_token": "5b2e3c4d-1a2b-4c3d-8e9f-0a1b2c3d4e5f"})
            self.assertEqual(post_sign_out(self.client, case, secret, offset=1, diagnosis="consistent_with_b_all",
                                           subtype="pro_b").status_code, 302)
        first, second = Report.objects.get(case=case, version=1), Report.objects.get(case=case, version=2)
        self.assertEqual((first.status, second.status), (ReportStatus.SUPERSEDED, ReportStatus.FINAL))
        text = squash(pdf_text(bytes(second.pdf)))
        self.assertIn("Changes from version 1", text)
        self.assertIn("Diagnosis Suspicious for ALL, further studies advised: flow cytometry Consistent with B-ALL (Pro-B)", text)
        self.assertIn(f"Image #2 ({built.images[1].original_filename}): label Pre-B ALL Pro-B ALL", text)
        self.assertIn("Images: Pre-B ALL 1 0", text)
        self.assertNotIn("Changes from version", squash(pdf_text(bytes(first.pdf))))
