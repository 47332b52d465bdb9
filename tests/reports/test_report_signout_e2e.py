"""Done means: a case signed out through the review screen (password + TOTP,
the real sign-out view) yields a final PDF whose QR code, scanned from the
rendered page, verifies on the site as authentic and current.

Committed transactions (TransactionTestCase) so the sign-out's on-commit hook
runs for real; Celery runs the report task in-process (eager). The same task
on a real worker process is tests/reports/test_report_worker.py."""

from __future__ import annotations

from urllib.parse import urlsplit

from django.urls import reverse

from reports import rendering as report_rendering
from reports.models import Report, ReportStatus
from tests.base import BaseTransactionTestCase
from tests.reports.builders import build_case, review
from tests.reports.pdftools import (
    decode_qr,
    eager_celery,
    pdf_text,
    rasterise,
    scratch_dir,
)
from tests.review.helpers import activate_totp, login_with_totp


class SignOutYieldsVerifiableReportTest(BaseTransactionTestCase):
    def test_sign_out_report_qr_verifies(self):
        built = build_case(self.lab, labels=["Pro", "Pre", "Benign"], blasts=[2, 1, 0])
        case = built.case
        review(built, self.pathologist)
        login_with_totp(self.client, self.pathologist, activate_totp(self.pathologist))

        with eager_celery():
            response = self.client.post(reverse("case_sign_out", args=[case.pk]), {"confirm": "on"})
        self.assertEqual(response.status_code, 302, response.content[:3000])

        report = Report.objects.get(case=case, status=ReportStatus.FINAL)
        self.assertEqual((report.version, report.signed_by_id), (1, self.pathologist.pk))
        self.assertIn(self.pathologist.email, pdf_text(bytes(report.pdf)))

        with scratch_dir() as folder:
            scanned = decode_qr(rasterise(bytes(report.pdf), folder, dpi=150)[0])
        self.assertEqual(scanned, report_rendering.verify_url(report))

        self.client.logout()
        page = self.client.get(urlsplit(scanned).path)
        self.assertEqual(page.context["state"], "current")
        self.assertContains(page, case.accession_number)
