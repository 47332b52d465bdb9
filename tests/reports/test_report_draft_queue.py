"""Drafts render on the cpu queue, never in the web process: the request saves a
``rendering`` draft and sends its task when the transaction commits; a worker takes
it by conditional UPDATE; the person asking waits a moment and then polls until
the PDF is ready or the draft failed with a reason. A double-click makes one
render, and a draft that no worker finishes becomes ``failed``, never stuck.

The worker here is Celery's eager mode (the task runs in the test process when
the request's transaction commits); tests/reports/test_report_worker.py does the
same with a real worker process on the ``cpu`` queue."""

from __future__ import annotations

from datetime import timedelta
from unittest import mock
from urllib.parse import urlsplit

from django.conf import settings
from django.db import IntegrityError, transaction
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone

from diagnostics import liveness
from diagnostics.models import AuditEvent, TaskRun
from reports import rendering as report_rendering
from reports import services as reports
from reports.models import RenderState, Report, ReportStatus
from reports.tasks import render_draft_report
from tests.base import BaseTestCase, BaseTransactionTestCase
from tests.factories import analysed_case
from tests.reports.pdftools import eager_celery, pdf_text

RENDERER = "reports.services.render_report_pdf"


class DraftStateMachineTest(BaseTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.built = analysed_case(self.lab, drawn=True, labels=["Pro", "Benign"], blasts=[1, 0])
        self.case = self.built.case

    def request(self, user=None):
        with self.captureOnCommitCallbacks() as sent:
            draft = reports.request_draft_report(self.case, user or self.technician)
        return draft, sent

    def test_a_request_saves_a_rendering_draft_and_sends_it_at_commit(self):
        draft, sent = self.request()
        draft.refresh_from_db()
        self.assertEqual((draft.status, draft.render_state, draft.version), (ReportStatus.DRAFT, "rendering", 1))
        self.assertEqual((bytes(draft.pdf), draft.sha256, draft.created_by), (b"", "", self.technician))
        self.assertEqual(len(sent), 1)  # the task goes to the broker once the row is committed
        self.assertFalse(reports.reports_for(self.technician).filter(pk=draft.pk).exists())  # nothing to download yet

    def test_a_double_click_joins_the_draft_already_rendering(self):
        with self.captureOnCommitCallbacks() as sent:
            first = reports.request_draft_report(self.case, self.technician)
            second = reports.request_draft_report(self.case, self.pathologist)
        self.assertEqual(first.pk, second.pk)
        self.assertEqual(len(sent), 1)
        self.assertEqual(Report.objects.filter(case=self.case).count(), 1)
        # Two requests racing past the look-up are stopped by the database.
        with self.assertRaises(IntegrityError), transaction.atomic():
            Report.objects.create(case=self.case, version=1, status=ReportStatus.DRAFT,
                                  render_state=RenderState.RENDERING, pdf=b"", sha256="")

    def test_only_drafts_are_ever_saved_without_their_pdf(self):
        with self.assertRaises(IntegrityError), transaction.atomic():
            Report.objects.create(case=self.case, version=1, status=ReportStatus.FINAL,
                                  render_state=RenderState.RENDERING, pdf=b"", sha256="")

    def test_the_render_is_claimed_once(self):
        draft, _ = self.request()
        self.assertTrue(reports.claim_draft_render(draft.pk, "task-a@cpu1#10"))
        self.assertFalse(reports.claim_draft_render(draft.pk, "task-b@cpu2#20"))  # a second message
        self.assertTrue(reports.claim_draft_render(draft.pk, "task-a@cpu1#10"))  # the same task, retried
        # A claim older than any task can run is taken over.
        Report.objects.filter(pk=draft.pk).update(
            claimed_at=timezone.now() - timedelta(seconds=settings.STUCK_IMAGE_AFTER_S + 1))
        self.assertTrue(reports.claim_draft_render(draft.pk, "task-b@cpu2#20"))
        self.assertEqual(Report.objects.get(pk=draft.pk).claimed_by, "task-b@cpu2#20")

    def test_the_task_renders_it_once_with_its_qr_and_audit(self):
        draft, _ = self.request()
        render_draft_report.apply(args=[str(draft.pk)])
        render_draft_report.apply(args=[str(draft.pk)])  # a redelivered message: nothing to do
        draft.refresh_from_db()
        self.assertEqual(draft.render_state, RenderState.READY)
        self.assertTrue(bytes(draft.pdf).startswith(b"%PDF-"))
        self.assertIn("DRAFT of version 1: not signed out", pdf_text(bytes(draft.pdf)))
        self.assertEqual(AuditEvent.objects.filter(verb=AuditEvent.Verb.REPORT_CREATED, object_id=str(draft.pk)).count(), 1)
        self.assertEqual(list(TaskRun.objects.filter(task_name="render_draft_report").values_list("ok", flat=True)),
                         [True, True])
        verify = self.client.get(urlsplit(report_rendering.verify_url(draft)).path)
        self.assertEqual(verify.context["state"], "draft")
        # The next request makes a new draft: the finished one is not joined.
        again, _ = self.request()
        self.assertNotEqual(again.pk, draft.pk)

    def test_a_failed_render_is_a_failed_draft_with_its_reason(self):
        draft, _ = self.request()
        with mock.patch(RENDERER, side_effect=RuntimeError("renderer crashed")):
            result = render_draft_report.apply(args=[str(draft.pk)])
        self.assertTrue(result.failed())
        draft.refresh_from_db()
        self.assertEqual(draft.render_state, RenderState.FAILED)
        self.assertIn("renderer crashed", draft.render_error)
        self.assertFalse(TaskRun.objects.get(task_name="render_draft_report").ok)

    def test_a_draft_that_no_worker_takes_fails_in_the_end(self):
        draft, _ = self.request()
        self.assertEqual(reports.refresh_draft(draft).render_state, "rendering")
        Report.objects.filter(pk=draft.pk).update(
            created_at=timezone.now() - timedelta(seconds=settings.STUCK_IMAGE_AFTER_S + 1))
        stuck = reports.refresh_draft(draft)
        self.assertEqual(stuck.render_state, "failed")
        self.assertIn("No worker started rendering it", stuck.render_error)
        fresh, sent = self.request()  # it no longer blocks a new draft
        self.assertNotEqual(fresh.pk, draft.pk)
        self.assertEqual(len(sent), 1)

    def test_a_draft_whose_worker_is_gone_fails(self):
        draft, _ = self.request()
        alive, gone = "cpu@alive#11", "cpu@gone#12"
        liveness.beat(alive)
        early = timezone.now() - timedelta(seconds=settings.WORKER_DEAD_AFTER_S + 1)
        self.assertTrue(reports.claim_draft_render(draft.pk, f"task-a@{alive}"))
        Report.objects.filter(pk=draft.pk).update(claimed_at=early)
        self.assertEqual(reports.refresh_draft(draft).render_state, "rendering")  # its worker is still at it
        Report.objects.filter(pk=draft.pk).update(claimed_by=f"task-a@{gone}")
        failed = reports.refresh_draft(draft)
        self.assertEqual(failed.render_state, "failed")
        self.assertIn("The worker rendering it stopped", failed.render_error)
        # The worker, had it come back, could not store its PDF over the failure.
        self.assertIsNone(reports.render_draft(draft.pk, f"task-a@{gone}"))

    def test_a_render_that_runs_past_every_limit_fails(self):
        draft, _ = self.request()
        self.assertTrue(reports.claim_draft_render(draft.pk, "task-a@local"))
        Report.objects.filter(pk=draft.pk).update(
            claimed_at=timezone.now() - timedelta(seconds=settings.STUCK_IMAGE_AFTER_S + 1))
        failed = reports.refresh_draft(draft)
        self.assertEqual(failed.render_state, "failed")
        self.assertIn("did not finish", failed.render_error)


class DraftPagesTest(BaseTestCase):
    """The web side: ask, see it rendering (a fragment that polls), then ready or failed."""

    def setUp(self) -> None:
        super().setUp()
        self.built = analysed_case(self.lab, drawn=True, labels=["Pre"])
        self.case = self.built.case
        self.ask = reverse("report_draft", args=[self.case.pk])

    def status_url(self, draft) -> str:
        return reverse("report_draft_status", args=[self.case.pk, draft.pk])

    def test_asking_answers_a_page_that_polls_until_the_pdf_is_ready(self):
        self.client.force_login(self.technician)
        with eager_celery(), self.captureOnCommitCallbacks() as sent:
            response = self.client.post(self.ask)
        draft = Report.objects.get(case=self.case)
        self.assertRedirects(response, self.status_url(draft))
        page = self.client.get(self.status_url(draft))
        self.assertContains(page, "Waiting for a worker to render it")
        self.assertContains(page, f'hx-get="{self.status_url(draft)}" hx-trigger="every 1s"')
        with eager_celery():
            for callback in sent:  # the commit: the task is sent, and here runs at once
                callback()
        fragment = self.client.get(self.status_url(draft), HTTP_HX_REQUEST="true")
        self.assertEqual(fragment["HX-Trigger"], "report-draft-finished")
        self.assertNotContains(fragment, "hx-trigger")  # it stops polling
        download = reverse("report_download", args=[draft.pk])
        self.assertContains(fragment, download)
        self.assertTrue(self.client.get(download).content.startswith(b"%PDF-"))

    def test_the_reports_panel_shows_the_rendering_draft_and_reloads_when_it_finishes(self):
        self.client.force_login(self.pathologist)
        panel = self.client.post(self.ask, HTTP_HX_REQUEST="true")
        draft = Report.objects.get(case=self.case)
        self.assertContains(panel, f'hx-get="{self.status_url(draft)}"')
        self.assertContains(panel, 'hx-trigger="report-draft-finished from:body"')
        self.assertNotContains(panel, reverse("report_download", args=[draft.pk]))
        self.client.post(self.ask, HTTP_HX_REQUEST="true")  # a double-click
        self.assertEqual(Report.objects.filter(case=self.case).count(), 1)

    def test_a_failed_draft_says_why(self):
        self.client.force_login(self.technician)
        self.client.post(self.ask)
        draft = Report.objects.get(case=self.case)
        with mock.patch(RENDERER, side_effect=RuntimeError("renderer crashed")):
            render_draft_report.apply(args=[str(draft.pk)])
        page = self.client.get(self.status_url(draft))
        self.assertContains(page, "The draft could not be made")
        self.assertContains(page, "renderer crashed")
        panel = self.client.get(reverse("case_reports_panel", args=[self.case.pk]))
        self.assertContains(panel, "renderer crashed")
        self.assertEqual(self.client.get(reverse("report_download", args=[draft.pk])).status_code, 404)

    def test_the_status_of_another_labs_draft_is_404(self):
        self.client.force_login(self.technician)
        self.client.post(self.ask)
        draft = Report.objects.get(case=self.case)
        outsiders_case = analysed_case(self.other_lab, drawn=True, labels=["Benign"], accession_number="B-1").case
        self.client.force_login(self.outsider)
        self.assertEqual(self.client.get(self.status_url(draft)).status_code, 404)
        self.assertEqual(self.client.get(self.status_url(draft), HTTP_HX_REQUEST="true").status_code, 404)
        # Nor through a case of the outsider's own lab.
        own = reverse("report_draft_status", args=[outsiders_case.pk, draft.pk])
        self.assertEqual(self.client.get(own).status_code, 404)
        self.client.logout()
        anonymous = self.client.get(self.status_url(draft))
        self.assertEqual(anonymous.status_code, 302)
        self.assertTrue(anonymous["Location"].startswith(reverse(settings.LOGIN_URL)))


class DraftWaitTest(BaseTransactionTestCase):
    """Outside a test transaction the request commits, sends the task and waits: a render
    that finishes within ``REPORT_DRAFT_WAIT_S`` is answered at once."""

    @override_settings(REPORT_DRAFT_WAIT_S=30)
    def test_a_quick_render_is_answered_by_the_request_itself(self):
        built = analysed_case(self.lab, drawn=True, labels=["Pro"])
        self.client.force_login(self.technician)
        with eager_celery():
            response = self.client.post(reverse("report_draft", args=[built.case.pk]), follow=True)
        draft = Report.objects.get(case=built.case)
        self.assertEqual(draft.render_state, RenderState.READY)
        self.assertRedirects(response, reverse("case_reports", args=[built.case.pk]))
        self.assertContains(response, "Draft report of version 1 made.")
        self.assertContains(response, reverse("report_download", args=[draft.pk]))
