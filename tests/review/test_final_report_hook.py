"""Sign-out hands the case to the reports area: once the signature commits,
``reports.services.queue_final_report`` sends the report task and
a real worker makes the final PDF of that version; an amendment's report
supersedes the earlier one, which stays."""

from __future__ import annotations

import time

import pytest
from django.core.cache import cache
from django.urls import reverse

from diagnostics.models import CaseStatus
from reports.models import Report
from tests.base import BaseTransactionTestCase
from tests.review.helpers import (
    activate_totp,
    login_with_totp,
    make_analysed_case,
    review_all,
)

pytest.importorskip("reports.services")


def wait_for_report(case, version: int, status: str, worker, timeout: float = 120.0) -> Report:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        report = Report.objects.filter(case=case, version=version, status=status).first()
        if report is not None:
            return report
        assert worker.alive(), worker.log()[-4000:]
        time.sleep(0.5)
    raise AssertionError(f"no {status} report v{version} after {timeout:.0f} s:\n{worker.log()[-4000:]}")


@pytest.mark.services
class FinalReportHookTests(BaseTransactionTestCase):
    def setUp(self):
        from tests.workerproc import purge_broker, require_services

        require_services()
        super().setUp()
        purge_broker()
        cache.clear()
        self.case, _ = make_analysed_case(self.lab, n_images=2)
        review_all(self.case, self.pathologist)
        login_with_totp(self.client, self.pathologist, activate_totp(self.pathologist))

    def sign(self):
        self.client.post(reverse("case_sign_out", args=[self.case.pk]), {"action": "sign_out", "confirm": "on"})
        self.case.refresh_from_db()

    def test_sign_out_makes_the_final_report_and_an_amendment_supersedes_it(self):
        from tests.workerproc import run_worker

        with run_worker(queues=("cpu",)) as worker:
            self.sign()
            self.assertEqual(self.case.status, CaseStatus.SIGNED_OUT)
            first = wait_for_report(self.case, 1, "final", worker)
            self.assertEqual(first.signed_by, self.pathologist)
            self.assertTrue(bytes(first.pdf).startswith(b"%PDF"))

            self.client.post(reverse("case_amend", args=[self.case.pk]), {"reason": "recount"})
            self.sign()
            self.assertEqual(self.case.sign_out_version, 2)
            wait_for_report(self.case, 2, "final", worker)
            first.refresh_from_db()
            self.assertEqual(first.status, "superseded")
