"""The admin monitoring dashboard and the Prometheus endpoint.

* ``/monitoring/``: the page (site admins only: ``is_staff``). Images per
  minute (Chart.js line chart), p50/p95 per stage (table + bar chart), queue
  depth per queue, live workers and what they run, cases in progress, recent
  failures with their reasons and retry counts.
* ``/monitoring/panels/``: the same panels as an HTML fragment; the page
  swaps it in with htmx every few seconds, and ``static/js/monitoring.js``
  updates the charts from the JSON embedded in it.
* ``/monitoring/data.json``: every figure as JSON.
* ``/metrics``: Prometheus (``monitoring.metrics``; token or site admin).

A signed-in user who is not a site admin gets a 404 (the page is not
advertised, as for another lab's case); an anonymous visitor is sent to log in.
Views stay thin: the figures come from ``monitoring.services``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from monitoring import services as monitoring

REFRESH_SECONDS = 10


def site_admin_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Log in first; then only ``is_staff`` users, everyone else a 404."""

    @login_required
    @wraps(view)
    def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if not request.user.is_staff:
            raise Http404("Not found")
        return view(request, *args, **kwargs)

    return wrapped


def _window(request: HttpRequest) -> str:
    window = request.GET.get("window", monitoring.DEFAULT_WINDOW)
    return window if window in monitoring.WINDOWS else monitoring.DEFAULT_WINDOW


def _chart_data(data: dict) -> dict:
    """What the two charts draw, passed to the page with ``json_script``."""
    throughput = data["throughput"]
    return {
        "throughput": {
            "labels": throughput["labels"],
            "series": throughput["series"],
            "bucket_minutes": throughput["bucket_minutes"],
        },
        "stages": [
            {"label": row.label, "p50": row.p50, "p95": row.p95}
            for row in data["stages"]
            if row.key != "total"
        ],
    }


def _context(request: HttpRequest) -> dict:
    data = monitoring.dashboard(_window(request))
    return {**data, "charts": _chart_data(data), "refresh_seconds": REFRESH_SECONDS}


@never_cache
@require_GET
@site_admin_required
def monitoring_dashboard(request: HttpRequest) -> HttpResponse:
    return render(request, "monitoring/dashboard.html", _context(request))


@never_cache
@require_GET
@site_admin_required
def monitoring_panels(request: HttpRequest) -> HttpResponse:
    return render(request, "monitoring/_panels.html", _context(request))


@never_cache
@require_GET
@site_admin_required
def monitoring_data(request: HttpRequest) -> JsonResponse:
    return JsonResponse(monitoring.to_jsonable(monitoring.dashboard(_window(request))))
