"""Prometheus ``/metrics``: the pipeline's figures, computed at scrape time.

Why a custom collector instead of counters incremented in process memory:
the web server runs several processes and the work happens in Celery worker
processes on other machines; in-memory counters would each see a slice and
reset on every restart. The database already holds every result
(``Analysis``, ``SlideImage``, ``TaskRun``, ``AuditEvent``), so each scrape
reads the figures from there (plus the queue depths from the broker) and the
numbers are the same whichever web process answers.

Counters here are counts of rows that are never deleted by the application
(task runs, analyses), so they only grow, as Prometheus expects; histograms
are over all rows for the same reason.

Access: a ``Authorization: Bearer <METRICS_TOKEN>`` header (the Prometheus
scraper's ``authorization`` setting), or a logged-in site admin (``is_staff``)
looking in a browser. Anyone else gets 403 when they tried (a token, or a
login), and 404 when they did not, so the endpoint is not advertised.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Iterator

from django.conf import settings
from django.db.models import Count
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseForbidden
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from diagnostics.models import (
    Analysis,
    Case,
    CaseStatus,
    ImageStatus,
    SlideImage,
    TaskRun,
)
from monitoring import broker as broker_view
from monitoring import timings

PREFIX = "marrowfind"


def _histogram(name: str, documentation: str, label: str, histograms: dict[str, timings.Histogram]) -> Metric:
    family = HistogramMetricFamily(name, documentation, labels=[label])
    for key, histogram in sorted(histograms.items()):
        buckets = [("+Inf" if bound == float("inf") else repr(float(bound)), count) for bound, count in histogram.buckets]
        family.add_metric([key], buckets, histogram.total)
    return family


class PipelineCollector:
    """Yields every Marrow-Find metric family from the database and the broker."""

    def __init__(self, *, broker: bool = True) -> None:
        self.broker = broker

    def describe(self) -> list[Metric]:
        return []  # computed at scrape time only; nothing to describe at registration

    def collect(self) -> Iterator[Metric]:
        started = time.perf_counter()

        images = GaugeMetricFamily(f"{PREFIX}_images", "Slide images by pipeline status", labels=["status"])
        by_status = dict(SlideImage.objects.values_list("status").annotate(n=Count("id")).values_list("status", "n"))
        for status in ImageStatus.values:
            images.add_metric([status], by_status.get(status, 0))
        yield images

        cases = GaugeMetricFamily(f"{PREFIX}_cases", "Cases by status", labels=["status"])
        by_status = dict(Case.objects.values_list("status").annotate(n=Count("id")).values_list("status", "n"))
        for status in CaseStatus.values:
            cases.add_metric([status], by_status.get(status, 0))
        yield cases

        failed = GaugeMetricFamily(f"{PREFIX}_failed_images", "Failed images by reason code", labels=["code"])
        for code, n in (
            SlideImage.objects.filter(status=ImageStatus.FAILED).values_list("error_code").annotate(n=Count("id"))
        ):
            failed.add_metric([code or "unknown"], n)
        yield failed

        analyses = CounterMetricFamily(f"{PREFIX}_analyses", "Analyses written (one per image and model version)")
        analyses.add_metric([], Analysis.objects.count())
        yield analyses

        runs = CounterMetricFamily(f"{PREFIX}_task_runs", "Task executions recorded by the workers", labels=["task", "outcome"])
        retries = CounterMetricFamily(f"{PREFIX}_task_retries", "Task executions that were Celery retries", labels=["task"])
        run_rows = TaskRun.objects.values_list("task_name", "ok").annotate(n=Count("id")).order_by("task_name", "ok")
        for task, ok, n in run_rows:
            runs.add_metric([task, "ok" if ok else "error"], n)
        for task, n in TaskRun.objects.filter(retries__gt=0).values_list("task_name").annotate(n=Count("id")).order_by("task_name"):
            retries.add_metric([task], n)
        yield runs
        yield retries

        yield _histogram(
            f"{PREFIX}_stage_seconds", "Seconds per image in each pipeline stage", "stage", timings.stage_histograms()
        )
        yield _histogram(
            f"{PREFIX}_task_seconds", "Seconds per task execution", "task", timings.task_histograms()
        )

        if self.broker:
            snapshot = broker_view.broker_snapshot()
            broker: broker_view.BrokerState = snapshot["broker"]
            up = GaugeMetricFamily(f"{PREFIX}_broker_up", "1 when the broker answered the queue-depth query")
            up.add_metric([], 1 if broker.ok else 0)
            yield up
            depth = GaugeMetricFamily(f"{PREFIX}_queue_depth", "Messages waiting in each queue", labels=["queue"])
            unacked = GaugeMetricFamily(
                f"{PREFIX}_queue_unacked", "Messages delivered to a worker and not yet acknowledged", labels=["queue"]
            )
            for queue in broker.queues:
                if queue.waiting is not None:
                    depth.add_metric([queue.name], queue.waiting)
                if queue.unacked is not None:
                    unacked.add_metric([queue.name], queue.unacked)
            yield depth
            yield unacked
            workers: broker_view.WorkersState = snapshot["workers"]
            if workers.available:
                live = GaugeMetricFamily(f"{PREFIX}_workers", "Workers that answered Celery remote control")
                live.add_metric([], len(workers.workers))
                yield live
                busy = GaugeMetricFamily(f"{PREFIX}_worker_active_tasks", "Tasks running now", labels=["worker"])
                for worker in workers.workers:
                    busy.add_metric([worker.name], len(worker.active))
                yield busy

        took = GaugeMetricFamily(f"{PREFIX}_scrape_seconds", "Seconds spent computing this scrape")
        took.add_metric([], time.perf_counter() - started)
        yield took


def render_metrics(*, broker: bool = True) -> bytes:
    """The metrics in the Prometheus text format (also handy from a shell)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(PipelineCollector(broker=broker))
    return generate_latest(registry)


def _bearer_token(request: HttpRequest) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def is_allowed(request: HttpRequest) -> bool:
    """A valid bearer token (constant-time comparison) or a logged-in site admin."""
    expected = settings.METRICS_TOKEN
    token = _bearer_token(request)
    if expected and token is not None and hmac.compare_digest(token.encode(), expected.encode()):
        return True
    user = getattr(request, "user", None)
    return bool(user is not None and user.is_authenticated and user.is_active and user.is_staff)


@never_cache
@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    if not is_allowed(request):
        tried = "Authorization" in request.headers or (request.user.is_authenticated if hasattr(request, "user") else False)
        if tried:
            return HttpResponseForbidden("Not allowed: send Authorization: Bearer <METRICS_TOKEN>, or log in as a site admin.\n",
                                         content_type="text/plain")
        raise Http404("Not found")
    return HttpResponse(render_metrics(), content_type=CONTENT_TYPE_LATEST)
