"""Celery tasks that render reports (cpu queue: routed by ``workers.*`` in settings).

Thin over ``reports.services``. The task is idempotent (a second
delivery of the same sign-out version returns the report already made), so the
late acknowledgement in settings can redeliver it safely; transient database
or broker faults are retried with the pipeline's backoff policy, and each run
is recorded as a TaskRun row for the monitoring dashboard.
"""

from __future__ import annotations

import time

from diagnostics.tasks import RETRY_OPTIONS, task_run
from marrowfind.celery import app


@app.task(bind=True, name="reports.tasks.render_final_report", **RETRY_OPTIONS)
def render_final_report(self, case_id: int, signed_by_id: int | None, version: int) -> str:
    """Make (once) the final PDF report of sign-out ``version`` of the case; returns the report id."""
    from reports import services as reports

    with task_run(self, "render_final_report") as run:
        run.case_id = case_id
        started = time.perf_counter()
        report = reports.create_final_report(case_id, signed_by_id, version)
        run.timings["report"] = round(time.perf_counter() - started, 4)
        return str(report.pk)
