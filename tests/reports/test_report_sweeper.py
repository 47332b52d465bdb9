"""Nothing signed is left without its PDF: when the broker is down at sign-out,
the signature still commits (no error page), and the periodic sweeper later
sends the final report, which is then made once."""

from __future__ import annotations

import contextlib
import os
from datetime import timedelta

from django.core.cache import cache
from django.utils import timezone
from kombu import pools

from diagnostics import tasks
from diagnostics.models import Case, CaseStatus
from marrowfind.celery import app
from reports.models import Report
from tests.base import BaseTransactionTestCase
from tests.factories import analysed_case, review_case
from tests.reports.pdftools import eager_celery
from tests.review.helpers import activate_totp, post_sign_out

UNREACHABLE = "redis://127.0.0.1:1/0"  # nothing listens on port 1: connection refused at once


@contextlib.contextmanager
def broker_down():
    """The Celery app talks to a broker that refuses connections (a real refused socket, not a mock).
    Celery reads CELERY_BROKER_URL from the environment before its settings, so both change."""
    saved = (app.conf.broker_url, app.conf.broker_transport_options, app.conf.task_publish_retry)
    saved_env = os.environ.get("CELERY_BROKER_URL")

    def reset_pools():  # kombu keeps connection and producer pools per broker URL, process-wide
        pools.reset()
        app._pool = None
        app.amqp._producer_pool = None

    reset_pools()
    os.environ["CELERY_BROKER_URL"] = UNREACHABLE
    app.conf.broker_url, app.conf.broker_transport_options, app.conf.task_publish_retry = UNREACHABLE, {}, False
    try:
        yield
    finally:
        reset_pools()
        if saved_env is None:
            os.environ.pop("CELERY_BROKER_URL", None)
        else:
            os.environ["CELERY_BROKER_URL"] = saved_env
        app.conf.broker_url, app.conf.broker_transport_options, app.conf.task_publish_retry = saved


class ReportSweeperTests(BaseTransactionTestCase):
    def setUp(self):
        super().setUp()
        cache.clear()
        self.case, _ = analysed_case(self.lab, n_images=2)
        review_case(self.case, self.pathologist)
        self.secret = activate_totp(self.pathologist)
        self.client.force_login(self.pathologist)

    def test_a_report_not_sent_at_sign_out_is_sent_by_the_sweeper(self):
        with broker_down(), self.assertLogs("django.db.backends.base", "ERROR") as logs:
            response = post_sign_out(self.client, self.case, self.secret)
        self.assertEqual(response.status_code, 302)
        self.assertIn("Connection refused", "\n".join(logs.output))  # the send really failed
        self.case.refresh_from_db()
        self.assertEqual((self.case.status, self.case.sign_out_version), (CaseStatus.SIGNED_OUT, 1))
        self.assertFalse(Report.objects.filter(case=self.case).exists())

        # A sweep before the stale limit leaves the fresh sign-out alone (its report may be on its way).
        with eager_celery():
            self.assertEqual(tasks.requeue_stuck_images.apply().get()["reports"], 0)
        Case.objects.filter(pk=self.case.pk).update(signed_out_at=timezone.now() - timedelta(hours=1))
        with eager_celery():
            self.assertEqual(tasks.requeue_stuck_images.apply().get()["reports"], 1)
            self.assertEqual(tasks.requeue_stuck_images.apply().get()["reports"], 0)  # made: nothing to re-send
        report = Report.objects.get(case=self.case)
        self.assertEqual((report.version, report.status, report.signed_by), (1, "final", self.pathologist))
        self.assertTrue(bytes(report.pdf).startswith(b"%PDF"))
