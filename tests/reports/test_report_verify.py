"""The public verification page: by QR code and by uploading the PDF. An exact
copy verifies; one changed byte does not; wrong codes and unknown ids are
"unknown"; uploads are limited in size and rate; no patient data is shown."""

from __future__ import annotations

from urllib.parse import urlsplit

from django.core.cache import cache
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from reports import rendering as report_rendering
from reports import services as reports
from reports import views as report_views
from tests.base import BaseTestCase
from tests.factories import analysed_case, record_sign_out, review_case


class VerifyReportTest(BaseTestCase):
    @classmethod
    def setUpTestData(cls) -> None:
        super().setUpTestData()
        from diagnostics.models import Role
        from tests.factories import LabFactory, MembershipFactory, UserFactory

        lab = LabFactory(name="Lab A", slug="lab-a")
        signer = UserFactory(username="verifier-signer", email="signer@lab-a.org")
        MembershipFactory(user=signer, lab=lab, role=Role.PATHOLOGIST)
        cls.built = analysed_case(lab, drawn=True, labels=["Pro", "Benign"], clinical_note="Secret clinical detail")
        review_case(cls.built, signer)
        record_sign_out(cls.built, signer)
        cls.report = reports.create_final_report(cls.built.case.pk, signer.pk, 1)

    def setUp(self) -> None:
        super().setUp()
        cache.clear()
        self.client.logout()

    def upload(self, data: bytes, name: str = "report.pdf"):
        return self.client.post(reverse("verify_upload"), {"pdf": SimpleUploadedFile(name, data, "application/pdf")})

    def test_exact_copy_verifies_as_current(self):
        response = self.upload(bytes(self.report.pdf))
        self.assertEqual(response.status_code, 200)
        self.assertEqual(response.context["state"], "current")
        self.assertContains(response, self.report.sha256)

    def test_one_changed_byte_fails(self):
        tampered = bytearray(self.report.pdf)
        middle = len(tampered) // 2
        tampered[middle] = (tampered[middle] + 1) % 256
        response = self.upload(bytes(tampered))
        self.assertEqual(response.context["state"], "unknown")
        self.assertContains(response, "even one changed byte fails")
        self.assertNotContains(response, self.built.case.accession_number)

    def test_wrong_code_and_unknown_report_are_unknown(self):
        path = urlsplit(report_rendering.verify_url(self.report)).path
        wrong = path[:-1] + ("0" if path[-1] != "0" else "1")
        for url in (wrong, reverse("verify_report", args=["00000000-0000-4000-8000-000000000000", "0123456789abcdef"])):
            response = self.client.get(url)
            self.assertEqual(response.status_code, 404)
            self.assertEqual(response.context["state"], "unknown")
            self.assertNotContains(response, self.built.case.accession_number, status_code=404)

    def test_page_shows_no_patient_data_beyond_the_accession(self):
        response = self.client.get(urlsplit(report_rendering.verify_url(self.report)).path)
        self.assertContains(response, self.built.case.accession_number)
        for private in (self.built.case.patient_pseudonym, "Secret clinical detail", "smear-1.png"):
            self.assertNotContains(response, private)

    def test_upload_size_is_limited(self):
        too_big = b"%PDF-1.4\n" + b"0" * (report_views.MAX_VERIFY_UPLOAD_BYTES + 1)
        response = self.upload(too_big)
        self.assertEqual(response.status_code, 413)

    def test_upload_rate_is_limited(self):
        statuses = [self.upload(b"%PDF-1.4 not a report").status_code for _ in range(report_views.VERIFY_UPLOADS_PER_WINDOW + 1)]
        self.assertEqual(statuses[:-1], [200] * report_views.VERIFY_UPLOADS_PER_WINDOW)
        self.assertEqual(statuses[-1], 429)
