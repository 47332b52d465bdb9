"""The one seam through which the web side starts background work.

Views and services never import a ``tasks`` module: they name the task here
and Celery routes it by that name (``CELERY_TASK_ROUTES``: classification on
``gpu``, the instant check on ``priority``, the rest on ``cpu``). So the web
process loads no task code, and the apps never depend on the worker side.

Every send happens after the current transaction commits (the worker must
find the rows it is sent), and is ``robust``: a broker that is down is logged,
never turned into an error page for work that has already committed. The
periodic sweeper (``diagnostics.tasks.requeue_stuck_images``) sends again
what was never sent.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

from django.db import transaction

logger = logging.getLogger(__name__)

PROCESS_CASE = "diagnostics.tasks.process_case"
RENDER_FINAL_REPORT = "reports.tasks.render_final_report"
RENDER_DRAFT_REPORT = "reports.tasks.render_draft_report"
INSTANT_CHECK = "instant.tasks.instant_check"
MAKE_TILES = "diagnostics.tasks.make_tiles"


def send(name: str, *args: Any) -> None:
    """Send the task ``name`` now. With ``task_always_eager`` (tests) it runs in this process."""
    from marrowfind.celery import app

    if app.conf.task_always_eager:  # send_task ignores eager mode; run the registered task instead
        importlib.import_module(name.rsplit(".", 1)[0])
        app.tasks[name].apply(args=args, throw=app.conf.task_eager_propagates)
        return
    app.send_task(name, args=list(args))


def send_on_commit(name: str, *args: Any) -> None:
    """Send the task ``name`` once the current transaction commits (at once outside one)."""
    transaction.on_commit(lambda: send(name, *args), robust=True)


def process_case(case_id: int) -> None:
    send_on_commit(PROCESS_CASE, case_id)


def render_final_report(case_id: int, signed_by_id: int | None, version: int) -> None:
    send_on_commit(RENDER_FINAL_REPORT, case_id, signed_by_id, version)


def render_draft_report(report_id: str) -> None:
    send_on_commit(RENDER_DRAFT_REPORT, report_id)


def instant_check(check_id: str) -> None:
    send_on_commit(INSTANT_CHECK, check_id)


def make_tiles(analysis_id: int) -> None:
    """The viewer's Deep Zoom tiles of one analysed image (cpu queue)."""
    send_on_commit(MAKE_TILES, analysis_id)
