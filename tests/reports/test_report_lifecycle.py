"""Versions: a draft at any time; a final report per sign-out version, made
once however often its task runs; an amendment's report supersedes the old
one, which stays (immutable) and verifies as superseded."""

from __future__ import annotations

from urllib.parse import urlsplit

from diagnostics.models import AuditEvent
from reports import rendering as report_rendering
from reports import services as reports
from reports.models import Report, ReportStatus
from tests.base import BaseTestCase
from tests.factories import analysed_case, record_sign_out, review_case
from tests.reports.pdftools import pdf_text


class ReportLifecycleTest(BaseTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.built = analysed_case(self.lab, drawn=True, labels=["Pro", "Pre"], blasts=[1, 0])

    def test_draft_before_sign_out(self):
        draft = reports.create_draft_report(self.built.case, self.technician)
        self.assertEqual(draft.status, ReportStatus.DRAFT)
        self.assertEqual(draft.version, 1)
        self.assertIsNone(draft.signed_by)
        text = pdf_text(bytes(draft.pdf))
        self.assertIn("DRAFT of version 1: not signed out", text)
        self.assertTrue(AuditEvent.objects.filter(verb=AuditEvent.Verb.REPORT_CREATED, object_id=str(draft.pk)).exists())
        response = self.client.get(urlsplit(report_rendering.verify_url(draft)).path)
        self.assertEqual(response.context["state"], "draft")

    def test_final_report_is_made_once_per_version(self):
        review_case(self.built, self.pathologist)
        record_sign_out(self.built, self.pathologist)
        first = reports.create_final_report(self.built.case.pk, self.pathologist.pk, 1)
        again = reports.create_final_report(self.built.case.pk, self.pathologist.pk, 1)  # a redelivered task
        self.assertEqual(first.pk, again.pk)
        self.assertEqual(Report.objects.filter(case=self.built.case).exclude(status=ReportStatus.DRAFT).count(), 1)

    def test_amendment_supersedes_and_keeps_the_old_report(self):
        review_case(self.built, self.pathologist)
        record_sign_out(self.built, self.pathologist)
        v1 = reports.create_final_report(self.built.case.pk, self.pathologist.pk, 1)
        v1_bytes, v1_hash = bytes(v1.pdf), v1.sha256

        review_case(self.built, self.pathologist, {1: "Early"})  # the amendment relabels image 1
        record_sign_out(self.built, self.pathologist, reason="Image 1 relabelled after flow cytometry.")
        v2 = reports.create_final_report(self.built.case.pk, self.pathologist.pk, 2)

        v1.refresh_from_db()
        self.assertEqual(v1.status, ReportStatus.SUPERSEDED)
        self.assertEqual(v1.superseded_by_id, v2.pk)
        self.assertEqual((bytes(v1.pdf), v1.sha256), (v1_bytes, v1_hash))  # immutable
        self.assertEqual(v2.status, ReportStatus.FINAL)
        text = pdf_text(bytes(v2.pdf))
        self.assertIn("(amends version 1)", text)
        self.assertIn("Image 1 relabelled after flow cytometry.", text)

        old = self.client.get(urlsplit(report_rendering.verify_url(v1)).path)
        self.assertEqual(old.context["state"], "superseded")
        self.assertContains(old, "version 2 replaces it")
        current = self.client.get(urlsplit(report_rendering.verify_url(v2)).path)
        self.assertEqual(current.context["state"], "current")

    def test_a_late_task_for_an_older_version_does_not_become_current(self):
        review_case(self.built, self.pathologist)
        record_sign_out(self.built, self.pathologist)
        record_sign_out(self.built, self.pathologist, reason="second signature")
        v2 = reports.create_final_report(self.built.case.pk, self.pathologist.pk, 2)
        late_v1 = reports.create_final_report(self.built.case.pk, self.pathologist.pk, 1)
        self.assertEqual(late_v1.status, ReportStatus.SUPERSEDED)
        self.assertEqual(late_v1.superseded_by_id, v2.pk)
        v2.refresh_from_db()
        self.assertEqual(v2.status, ReportStatus.FINAL)
