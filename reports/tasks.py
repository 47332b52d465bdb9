"""Celery tasks that render reports (cpu queue: routed by ``reports.tasks.*`` in settings).

Thin over ``reports.services``. Both tasks are idempotent (a second delivery
of the same sign-out version returns the report already made; a draft is
rendered by whoever claims it first), so the late acknowledgement in settings
can redeliver them safely; transient database or broker faults are retried
with the pipeline's backoff policy, and each run is recorded as a TaskRun row
for the monitoring dashboard.
"""

from __future__ import annotations

import time

from celery.exceptions import Retry, SoftTimeLimitExceeded

from diagnostics.pipeline import claim_token
from diagnostics.tasks import RETRY_OPTIONS, TRANSIENT_ERRORS, task_run
from marrowfind.celery import app

# A render that fails for any other reason (the PDF library, a time limit) is
# tried again this many times, a minute apart, before it is left to the sweeper;
# meanwhile the case's reports panel says that the final report is missing and why.
RENDER_RETRIES = 3
RENDER_RETRY_DELAY_S = 60


@app.task(bind=True, name="reports.tasks.render_final_report", **RETRY_OPTIONS)
def render_final_report(self, case_id: int, signed_by_id: int | None, version: int) -> str:
    """Make (once) the final PDF report of sign-out ``version`` of the case; returns the report id."""
    from reports import services as reports

    try:
        with task_run(self, "render_final_report") as run:
            run.case_id = case_id
            started = time.perf_counter()
            report = reports.create_final_report(case_id, signed_by_id, version)
            run.timings["report"] = round(time.perf_counter() - started, 4)
            return str(report.pk)
    except (Retry, *TRANSIENT_ERRORS):
        raise
    except Exception as exc:
        if self.request.retries < RENDER_RETRIES:
            raise self.retry(exc=exc, countdown=RENDER_RETRY_DELAY_S, max_retries=RENDER_RETRIES) from exc
        raise


@app.task(bind=True, name="reports.tasks.render_draft_report", **RETRY_OPTIONS)
def render_draft_report(self, report_id: str) -> str:
    """Render a draft asked for on the site or the API (once, by whoever claims it);
    a failure is stored on the draft as its reason, and the person waiting sees it."""
    from reports import services as reports

    token = claim_token(self.request.id, self.request.hostname or "")
    with task_run(self, "render_draft_report") as run:
        started = time.perf_counter()
        try:
            report = reports.render_draft(report_id, token)
        except (Retry, *TRANSIENT_ERRORS):
            raise
        except SoftTimeLimitExceeded:
            reports.fail_draft(report_id, "The render took longer than its time limit.", token=token)
            raise
        except Exception as exc:
            reports.fail_draft(report_id, f"The PDF could not be rendered ({exc.__class__.__name__}: {exc}).", token=token)
            raise
        run.timings["report"] = round(time.perf_counter() - started, 4)
        if report is None:
            return "skipped"
        run.case_id = report.case_id
        return str(report.pk)
