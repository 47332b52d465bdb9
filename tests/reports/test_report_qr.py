"""The QR code printed on a report, decoded from the rendered page image,
is the report's verification URL, and that URL says "authentic and current"."""

from __future__ import annotations

from urllib.parse import urlsplit

from django.conf import settings

from reports import rendering as report_rendering
from reports import services as reports
from tests.base import BaseTestCase
from tests.factories import analysed_case, record_sign_out, review_case
from tests.reports.pdftools import decode_qr, rasterise, scratch_dir


class ReportQrCodeTest(BaseTestCase):
    def test_qr_on_the_page_opens_the_verification_of_this_report(self):
        built = analysed_case(self.lab, drawn=True, labels=["Pro", "Pre", "Benign"], blasts=[2, 1, 0])
        review_case(built, self.pathologist)
        record_sign_out(built, self.pathologist)
        report = reports.create_final_report(built.case.pk, self.pathologist.pk, 1)

        with scratch_dir() as folder:
            pages = rasterise(bytes(report.pdf), folder, dpi=150)
            self.assertEqual(len(pages), 1)
            scanned = decode_qr(pages[0])

        self.assertEqual(scanned, report_rendering.verify_url(report))
        self.assertEqual(scanned, f"{settings.SITE_URL}/verify/{report.pk}/{report.content_sha256[:16]}")

        self.client.logout()  # the verification page needs no login
        response = self.client.get(urlsplit(scanned).path)
        self.assertEqual(response.status_code, 200)
        self.assertEqual(response.context["state"], "current")
        self.assertContains(response, "Authentic and current")
        self.assertContains(response, built.case.accession_number)
        self.assertNotContains(response, built.case.patient_pseudonym)
