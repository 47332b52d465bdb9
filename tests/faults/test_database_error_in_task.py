"""A database error inside a task: the task is retried (with backoff), then done.

The fault is real: while the worker's ``classify_chunk`` is writing its first
Analysis, its PostgreSQL connection is terminated by the server
(``pg_terminate_backend``, what a database restart or failover does to a
client). To hit the write and not some other moment, the test first holds a
lock that blocks inserts into the analysis table, waits until the worker's
INSERT is waiting on it, terminates that backend, then lets go of the lock.

Expected: the task records the error as "will retry", Celery runs it again with
the same task id, it re-takes the images it had claimed, and the case finishes
with exactly one Analysis per image.
"""

from __future__ import annotations

import psycopg
import pytest
from django.db import connection

from diagnostics.models import Analysis, TaskRun
from tests.faults.helpers import BrokerFaultTestCase, assert_exactly_once, upload_case, wait_until
from tests.imagefactory import smear_bytes
from tests.modelfixtures import register_test_model
from tests.workerproc import run_worker, wait_for_case_status

N_IMAGES = 4


def raw_connection() -> psycopg.Connection:
    """A second connection to the test database, outside Django's transaction handling."""
    db = connection.settings_dict
    return psycopg.connect(
        dbname=db["NAME"], user=db.get("USER") or None, password=db.get("PASSWORD") or None,
        host=db.get("HOST") or None, port=db.get("PORT") or None,
    )


@pytest.mark.services
@pytest.mark.slow
class DatabaseErrorInTaskTests(BrokerFaultTestCase):
    def test_task_is_retried_then_done(self):
        register_test_model()
        case = upload_case(self.lab, self.technician, [smear_bytes(seed) for seed in range(1, N_IMAGES + 1)]).case
        table = Analysis._meta.db_table
        locker = raw_connection()
        self.addCleanup(locker.close)
        # SHARE mode: reads go on, INSERTs into the table wait.
        locker.execute(f'LOCK TABLE "{table}" IN SHARE MODE')
        admin = raw_connection()
        admin.autocommit = True
        self.addCleanup(admin.close)

        def worker_insert_waiting():
            row = admin.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() "
                "AND wait_event_type = 'Lock' AND query ILIKE %s",
                [f'INSERT INTO "{table}"%'],
            ).fetchone()
            return row[0] if row else None

        with run_worker(queues=("gpu", "cpu"), env={"WORKER_BATCH_SIZE": str(N_IMAGES)}) as worker:
            backend = wait_until(worker_insert_waiting, timeout=120, poll=0.1, what="the worker's INSERT waiting", worker=worker)
            terminated = admin.execute("SELECT pg_terminate_backend(%s)", [backend]).fetchone()[0]
            self.assertTrue(terminated)
            wait_until(
                lambda: TaskRun.objects.filter(task_name="classify_chunk", ok=False, error__contains="(will retry)").exists(),
                timeout=60, what="the failed run recorded as retried", worker=worker,
            )
            locker.rollback()  # the database is healthy again
            wait_for_case_status(case, {"awaiting_review"}, timeout=150, worker=worker)

        assert_exactly_once(self, case)
        failed_run = TaskRun.objects.get(task_name="classify_chunk", ok=False)
        self.assertIn("OperationalError", failed_run.error)
        self.assertEqual(failed_run.retries, 0)
        retry = TaskRun.objects.get(task_name="classify_chunk", task_id=failed_run.task_id, ok=True)
        self.assertEqual(retry.retries, 1)
        self.assertEqual(retry.image_count, N_IMAGES, "the retry re-took the images its first run had claimed")
        self.assertEqual(set(case.images.values_list("attempts", flat=True)), {2})
