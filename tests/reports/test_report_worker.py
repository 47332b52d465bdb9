"""Final and draft reports are rendered by a real Celery worker process on the cpu
queue (PostgreSQL + Redis), once each, and recorded as TaskRuns. One worker serves
the whole class."""

from __future__ import annotations

import time

import pytest
from django.urls import reverse

from diagnostics.models import AuditEvent, TaskRun
from marrowfind import dispatch
from reports import services as reports
from reports.models import RenderState, Report, ReportStatus
from tests.base import BaseTransactionTestCase
from tests.factories import analysed_case, record_sign_out, review_case
from tests.workerproc import purge_broker, require_services, run_worker


def wait_for_runs(task_name: str, count: int, worker, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and TaskRun.objects.filter(task_name=task_name).count() < count:
        time.sleep(0.3)
    assert TaskRun.objects.filter(task_name=task_name).count() == count, worker.log()[-4000:]


@pytest.mark.services
@pytest.mark.slow
class ReportsOnWorkerTest(BaseTransactionTestCase):
    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()
        require_services()
        purge_broker()
        cls.worker = cls.enterClassContext(run_worker(queues=("cpu",)))

    def test_worker_renders_the_final_report(self):
        built = analysed_case(self.lab, drawn=True, labels=["Pro", "Benign"], blasts=[1, 0])
        review_case(built, self.pathologist)
        record_sign_out(built, self.pathologist)
        reports.queue_final_report(built.case, self.pathologist)  # no transaction open: sent at once
        reports.queue_final_report(built.case, self.pathologist)  # a double send makes one report
        wait_for_runs("render_final_report", 2, self.worker)
        report = Report.objects.get(case=built.case)
        self.assertEqual((report.status, report.version), (ReportStatus.FINAL, 1))
        self.assertTrue(TaskRun.objects.filter(task_name="render_final_report", ok=True, case=built.case).exists())

    def test_worker_renders_a_draft_asked_for_on_the_site(self):
        built = analysed_case(self.lab, drawn=True, labels=["Pre", "Benign"], blasts=[0, 0])
        self.client.force_login(self.technician)
        asked = self.client.post(reverse("report_draft", args=[built.case.pk]))
        draft = Report.objects.get(case=built.case)
        status_url = reverse("report_draft_status", args=[built.case.pk, draft.pk])
        # Ready within the request's short wait, or else a page that polls.
        self.assertIn(asked["Location"], (reverse("case_reports", args=[built.case.pk]), status_url))
        deadline = time.monotonic() + 120
        while True:
            fragment = self.client.get(status_url, HTTP_HX_REQUEST="true")
            self.assertEqual(fragment.status_code, 200)
            if "HX-Trigger" in fragment or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        draft.refresh_from_db()
        self.assertEqual(draft.render_state, RenderState.READY, self.worker.log()[-4000:])
        self.assertContains(fragment, reverse("report_download", args=[draft.pk]))
        self.assertTrue(bytes(draft.pdf).startswith(b"%PDF-"))
        # The PDF was made by the worker, from the cpu queue.
        run = TaskRun.objects.get(task_name="render_draft_report")
        self.assertEqual((run.ok, run.queue, run.case_id), (True, "cpu", built.case.pk))
        self.assertTrue(run.worker.startswith(self.worker.name.split("@")[0]), run.worker)
        # A repeated message (a redelivery) renders nothing again.
        dispatch.send(dispatch.RENDER_DRAFT_REPORT, str(draft.pk))
        wait_for_runs("render_draft_report", 2, self.worker)
        self.assertEqual(AuditEvent.objects.filter(verb=AuditEvent.Verb.REPORT_CREATED, object_id=str(draft.pk)).count(), 1)
        self.assertEqual(Report.objects.filter(case=built.case).count(), 1)
