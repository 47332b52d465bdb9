"""Reports are for the members of the case's lab: download (audited), the
report list and drafts. Outsiders get 404, anonymous users the login page."""

from __future__ import annotations

from django.conf import settings
from django.urls import reverse

from diagnostics.models import AuditEvent
from reports import services as reports
from reports.models import Report, ReportStatus
from tests.base import BaseTestCase
from tests.factories import analysed_case, record_sign_out, review_case
from tests.reports.pdftools import eager_celery


class ReportAccessTest(BaseTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.built = analysed_case(self.lab, drawn=True, labels=["Pro"])
        review_case(self.built, self.pathologist)
        record_sign_out(self.built, self.pathologist)
        self.report = reports.create_final_report(self.built.case.pk, self.pathologist.pk, 1)
        self.download = reverse("report_download", args=[self.report.pk])
        case_id = self.built.case.pk
        self.pages = [reverse("case_reports", args=[case_id]), reverse("case_reports_panel", args=[case_id])]
        self.draft = reverse("report_draft", args=[case_id])

    def test_members_download_and_each_download_is_audited(self):
        for user in (self.pathologist, self.technician):
            self.client.force_login(user)
            response = self.client.get(self.download)
            self.assertEqual(response.status_code, 200)
            self.assertEqual(response["Content-Type"], "application/pdf")
            self.assertEqual(response.content, bytes(self.report.pdf))
            self.assertIn("attachment", response["Content-Disposition"])
            self.assertTrue(
                AuditEvent.objects.filter(verb=AuditEvent.Verb.REPORT_DOWNLOADED, actor=user, object_id=str(self.report.pk)).exists()
            )

    def test_outsider_gets_404_everywhere(self):
        self.client.force_login(self.outsider)
        self.assertEqual(self.client.get(self.download).status_code, 404)
        for page in self.pages:
            self.assertEqual(self.client.get(page).status_code, 404)
        self.assertEqual(self.client.post(self.draft).status_code, 404)
        self.assertFalse(AuditEvent.objects.filter(verb=AuditEvent.Verb.REPORT_DOWNLOADED).exists())
        self.assertFalse(Report.objects.filter(status=ReportStatus.DRAFT).exists())

    def test_anonymous_is_sent_to_login(self):
        login = reverse(settings.LOGIN_URL)
        for url in (self.download, *self.pages):
            response = self.client.get(url)
            self.assertEqual(response.status_code, 302)
            self.assertTrue(response["Location"].startswith(login))
        self.assertEqual(self.client.post(self.draft).status_code, 302)

    def test_case_page_hook_loads_the_report_panel(self):
        from django.template.loader import render_to_string

        html = render_to_string("reports/_case_hooks.html", {"case": self.built.case})
        self.assertIn(f'hx-get="{self.pages[1]}"', html)

    def test_member_lists_versions_and_makes_a_draft(self):
        self.client.force_login(self.technician)
        response = self.client.get(self.pages[0])
        self.assertContains(response, self.download)
        self.assertContains(response, "final, current")
        with eager_celery(), self.captureOnCommitCallbacks(execute=True):
            response = self.client.post(self.draft, HTTP_HX_REQUEST="true")
        self.assertEqual(response.status_code, 200)
        draft = Report.objects.get(case=self.built.case, status=ReportStatus.DRAFT)
        self.assertEqual(draft.version, 2)  # a draft of the next (amended) version
        # Rendered by the task once the request committed; the panel then lists it.
        self.assertEqual(draft.render_state, "ready")
        self.assertContains(self.client.get(self.pages[1]), reverse("report_download", args=[draft.pk]))
