"""Sign-out hands the case to the reports area: once the signature commits,
``reports.services.queue_final_report`` sends the report task and
a real worker makes the final PDF of that version; an amendment's report
supersedes the earlier one, which stays."""

from __future__ import annotations

import time

import pytest
from django.core.cache import cache
from django.test import override_settings

from diagnostics.models import CaseStatus
from reports.models import Report
from tests.base import BaseTransactionTestCase
from tests.factories import analysed_case, review_case
from tests.review.helpers import TOLERANCE_1, activate_totp, post_amend, post_sign_out

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
@override_settings(**TOLERANCE_1)
class FinalReportHookTests(BaseTransactionTestCase):
    def setUp(self):
        from tests.workerproc import purge_broker, require_services

        require_services()
        super().setUp()
        purge_broker()
        cache.clear()
        self.case, _ = analysed_case(self.lab, n_images=2)
        review_case(self.case, self.pathologist)
        self.secret = activate_totp(self.pathologist)
        self.client.force_login(self.pathologist)

    def sign(self, offset: int):
        post_sign_out(self.client, self.case, self.secret, offset=offset)
        self.case.refresh_from_db()

    def test_sign_out_makes_the_final_report_and_an_amendment_supersedes_it(self):
        from tests.workerproc import run_worker

        with run_worker(queues=("cpu",)) as worker:
            self.sign(offset=-1)
            self.assertEqual(self.case.status, CaseStatus.SIGNED_OUT)
            first = wait_for_report(self.case, 1, "final", worker)
            self.assertEqual(first.signed_by, self.pathologist)
            self.assertTrue(bytes(first.pdf).startswith(b"%PDF"))

            post_amend(self.client, self.case, self.secret, reason="recount", offset=0)
            self.sign(offset=1)
            self.assertEqual(self.case.sign_out_version, 2)
            wait_for_report(self.case, 2, "final", worker)
            first.refresh_from_db()
            self.assertEqual(first.status, "superseded")
