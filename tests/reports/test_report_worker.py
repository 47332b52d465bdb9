"""The final report is rendered by a real Celery worker process on the cpu
queue (PostgreSQL + Redis), once, and recorded as a TaskRun."""

from __future__ import annotations

import time

import pytest

from diagnostics.models import TaskRun
from reports import services as reports
from reports.models import Report, ReportStatus
from tests.base import BaseTransactionTestCase
from tests.reports.builders import build_case, review, sign_out
from tests.workerproc import purge_broker, require_services, run_worker


@pytest.mark.services
@pytest.mark.slow
class FinalReportOnWorkerTest(BaseTransactionTestCase):
    def setUp(self) -> None:
        require_services()
        super().setUp()
        purge_broker()

    def test_worker_renders_the_final_report(self):
        built = build_case(self.lab, labels=["Pro", "Benign"], blasts=[1, 0])
        review(built, self.pathologist)
        sign_out(built, self.pathologist)
        with run_worker(queues=("cpu",)) as worker:
            reports.queue_final_report(built.case, self.pathologist)  # no transaction open: sent at once
            reports.queue_final_report(built.case, self.pathologist)  # a double send makes one report
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline and TaskRun.objects.filter(task_name="render_final_report").count() < 2:
                time.sleep(0.5)
            self.assertEqual(TaskRun.objects.filter(task_name="render_final_report").count(), 2, worker.log()[-4000:])
        report = Report.objects.get(case=built.case)
        self.assertEqual((report.status, report.version), (ReportStatus.FINAL, 1))
        self.assertTrue(TaskRun.objects.filter(task_name="render_final_report", ok=True, case=built.case).exists())
