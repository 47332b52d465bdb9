"""The report endpoints: the final report in force as a PDF once the case is
signed out, 404 ``no_report`` before, and a draft on request."""

from __future__ import annotations

import hashlib
from unittest import mock

from diagnostics.models import AuditEvent
from reports import services as report_service
from reports.models import Report, ReportStatus
from reports.tasks import render_draft_report
from tests.api.helpers import ApiTestCase
from tests.factories import analysed_case, record_sign_out, review_case
from tests.reports.pdftools import eager_celery


class ReportApiTests(ApiTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.built = analysed_case(self.lab, drawn=True, labels=["Pre", "Benign"], size=96)
        self.case = self.built.case

    def test_no_final_report_before_sign_out(self) -> None:
        error = self.assertApiError(self.api.get(self.url("api-case-report", pk=self.case.pk)), 404, "no_report")
        self.assertEqual(error["details"], {"case_status": "awaiting_review"})

    def test_a_draft_on_request_is_a_real_pdf_recorded_as_a_draft(self) -> None:
        # The draft renders on the cpu queue (here: eagerly, when the request commits);
        # the request answers 202 with where to poll, then the poll answers the PDF.
        with eager_celery(), self.captureOnCommitCallbacks() as sent:
            asked = self.api.post(self.url("api-case-report-draft", pk=self.case.pk), HTTP_ACCEPT="application/pdf")
        self.assertEqual(asked.status_code, 202, asked.content[:300])
        body = asked.json()
        self.assertEqual((body["state"], body["version"], body["error"]), ("rendering", 1, ""))
        status_url = self.url("api-case-report-draft-status", pk=self.case.pk, report_id=body["report_id"])
        self.assertEqual(asked["Location"], "http://testserver" + status_url)
        self.assertEqual(self.api.get(status_url).status_code, 202)
        self.assertApiError(self.outsider_api.get(status_url), 404, "not_found")
        with eager_celery():
            for callback in sent:
                callback()
        response = self.api.get(status_url, HTTP_ACCEPT="application/pdf")
        self.assertEqual(response.status_code, 200, response.content[:300])
        self.assertEqual(response["Content-Type"], "application/pdf")
        self.assertTrue(response.content.startswith(b"%PDF-"))
        report = Report.objects.get(pk=response["X-Report-Id"])
        self.assertEqual(str(report.pk), body["report_id"])
        self.assertEqual(report.status, ReportStatus.DRAFT)
        self.assertEqual(response["X-Report-Status"], "draft")
        # Plain str, not a str subclass such as a TextChoices member: WSGI servers refuse those.
        for name, value in response.items():
            self.assertIs(type(value), str, name)
        self.assertEqual(response["X-Report-SHA256"], hashlib.sha256(response.content).hexdigest())
        self.assertEqual(report.sha256, hashlib.sha256(response.content).hexdigest())
        # A draft never counts as the case's report.
        self.assertApiError(self.api.get(self.url("api-case-report", pk=self.case.pk)), 404, "no_report")

    def test_a_failed_draft_answers_its_reason(self) -> None:
        asked = self.api.post(self.url("api-case-report-draft", pk=self.case.pk)).json()
        with mock.patch("reports.services.render_report_pdf", side_effect=RuntimeError("renderer crashed")):
            render_draft_report.apply(args=[asked["report_id"]])
        error = self.assertApiError(self.api.get(asked["status_url"]), 409, "draft_failed")
        self.assertIn("renderer crashed", error["details"]["error"])

    def test_after_sign_out_the_final_report_is_served_and_the_download_audited(self) -> None:
        review_case(self.built, self.pathologist)
        signed = record_sign_out(self.built, self.pathologist)
        final = report_service.create_final_report(self.case.pk, self.pathologist.pk, signed.version)
        response = self.api.get(self.url("api-case-report", pk=self.case.pk), HTTP_ACCEPT="application/pdf")
        self.assertEqual(response.status_code, 200)
        self.assertEqual(bytes(final.pdf), response.content)
        self.assertEqual((response["X-Report-Status"], response["X-Report-Version"]), ("final", "1"))
        self.assertIn("attachment;", response["Content-Disposition"])
        self.assertTrue(
            AuditEvent.objects.filter(
                verb=AuditEvent.Verb.REPORT_DOWNLOADED, actor=self.technician, object_id=str(final.pk)
            ).exists()
        )

    def test_an_amendment_serves_the_newest_version(self) -> None:
        review_case(self.built, self.pathologist)
        first = report_service.create_final_report(
            self.case.pk, self.pathologist.pk, record_sign_out(self.built, self.pathologist).version
        )
        second_version = record_sign_out(self.built, self.pathologist, reason="relabelled image 2").version
        second = report_service.create_final_report(self.case.pk, self.pathologist.pk, second_version)
        response = self.api.get(self.url("api-case-report", pk=self.case.pk))
        self.assertEqual(response["X-Report-Id"], str(second.pk))
        self.assertNotEqual(first.pk, second.pk)

    def test_a_pdf_client_gets_json_errors(self) -> None:
        response = self.outsider_api.get(self.url("api-case-report", pk=self.case.pk), HTTP_ACCEPT="application/pdf")
        self.assertApiError(response, 404, "not_found")
