"""Report views: the case's report list (a case-page panel), drafts, download,
and the public verification page.

Protection:

* ``case_reports``, ``case_reports_panel``, ``report_draft``, ``report_draft_status``,
  ``report_download``: login required (anonymous -> login redirect), lab members
  only (another lab's case or report -> 404, never 403). Each download writes an
  audit event.
* ``verify_report`` and ``verify_upload``: public (a report is scanned by people
  without an account). They state authenticity and status and, for an authentic
  signed report, what its paper must show (signer, diagnosis category, blast %,
  differential: ``reports.verification.verified_figures``); no patient data
  beyond the accession number, and no free-text comment. The upload is limited in size
  (``MAX_VERIFY_UPLOAD_BYTES``) and in rate per client address.

A draft is rendered by a worker on the ``cpu`` queue, never in the web process:
``report_draft`` asks for it, waits a moment (``REPORT_DRAFT_WAIT_S``) and
otherwise answers with its status, which polls ``report_draft_status`` until
the PDF is ready or has failed with a reason.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.cache import cache
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from diagnostics import access
from diagnostics.http import case_page_url, is_htmx
from marrowfind.clientip import client_ip
from reports import rendering as report_rendering
from reports import services as report_service
from reports import verification as report_verification
from reports.models import RenderState, Report

MAX_VERIFY_UPLOAD_BYTES = 20 * 1024 * 1024
VERIFY_UPLOADS_PER_WINDOW = 10
VERIFY_WINDOW_S = 60




def _panel_context(request: HttpRequest, case) -> dict:
    reports = [report_service.refresh_draft(report) if report.render_state == RenderState.RENDERING else report
               for report in report_service.reports_of(case)]
    for report in reports:
        report.verify_path = (report_rendering.verify_path(str(report.pk), report.content_sha256)
                              if report.is_ready else "")
    return {"case": case, "reports": reports, "case_url": case_page_url(case),
            "missing_final": report_service.missing_final_report(case)}


@login_required
@require_GET
def case_reports(request: HttpRequest, pk: int) -> HttpResponse:
    """Every report version of a case, with download and verify links."""
    case = access.get_case_or_404(request.user, pk)
    return render(request, "reports/case_reports.html", _panel_context(request, case))


@login_required
@require_GET
def case_reports_panel(request: HttpRequest, pk: int) -> HttpResponse:
    """The same list as a fragment, loaded by the case page with htmx."""
    case = access.get_case_or_404(request.user, pk)
    return render(request, "reports/_panel.html", _panel_context(request, case))


@login_required
@require_POST
def report_draft(request: HttpRequest, pk: int) -> HttpResponse:
    """Ask for a draft report (any lab member; it states it is not signed out). It renders on
    the cpu queue; a double-click joins the draft already rendering."""
    case = access.get_case_or_404(request.user, pk)
    draft = report_service.wait_for_draft(report_service.request_draft_report(case, request.user))
    if is_htmx(request):
        return render(request, "reports/_panel.html", _panel_context(request, case))
    if draft.is_ready:
        messages.success(request, f"Draft report of version {draft.version} made.")
        return redirect("case_reports", pk=case.pk)
    return redirect("report_draft_status", pk=case.pk, report_id=draft.pk)


@login_required
@require_GET
def report_draft_status(request: HttpRequest, pk: int, report_id) -> HttpResponse:
    """Where a draft is (rendering, ready with its download, or failed with the reason): a page,
    or for htmx the fragment that polls itself until the draft is finished."""
    case = access.get_case_or_404(request.user, pk)
    try:
        draft = report_service.draft_of(case, report_id)
    except Report.DoesNotExist:
        raise Http404("No such draft report") from None
    context = {"case": case, "draft": draft, "case_url": case_page_url(case)}
    if not is_htmx(request):
        return render(request, "reports/draft_status.html", context)
    response = render(request, "reports/_draft_status.html", context)
    if draft.render_state != RenderState.RENDERING:
        response["HX-Trigger"] = "report-draft-finished"  # the reports panel reloads itself
    return response


@login_required
@require_GET
def report_download(request: HttpRequest, report_id) -> HttpResponse:
    """The PDF bytes from the database, for members of the case's lab only."""
    try:
        report = report_service.reports_for(request.user).select_related("case").get(pk=report_id)
    except Report.DoesNotExist:
        raise Http404("No such report") from None
    report_service.record_download(report, request.user)
    response = HttpResponse(bytes(report.pdf), content_type="application/pdf")
    disposition = "inline" if request.GET.get("inline") == "1" else "attachment"
    response["Content-Disposition"] = f'{disposition}; filename="{report_service.download_filename(report)}"'
    response["Cache-Control"] = "private, no-store"
    response["X-Report-SHA256"] = report.sha256
    return response


def _verify_context(verification: report_verification.Verification, **extra) -> dict:
    report = verification.report
    context = {"verification": verification, "state": verification.state.value, **extra}
    if report is not None:
        context.update(
            accession=report.case.accession_number,
            lab_name=report.case.lab.name,
            newer_version=verification.newer.version if verification.newer else None,
            figures=report_verification.verified_figures(verification),
        )
    return context


@never_cache
@require_GET
def verify_report(request: HttpRequest, report_id, code: str) -> HttpResponse:
    """What a scanned QR code opens. Public; says authentic + current,
    superseded, draft or unknown, with the accession number and nothing else
    about the patient."""
    verification = report_verification.check_code(str(report_id), code)
    status = 404 if verification.state == report_verification.VerifyState.UNKNOWN else 200
    return render(request, "reports/verify.html", _verify_context(verification, source="qr"), status=status)


def _client_key(request: HttpRequest) -> str:
    return f"mf:verify-upload:{client_ip(request)}"


def _over_rate_limit(request: HttpRequest) -> bool:
    """A fixed window per client address in the Django cache (uploads are hashed,
    which is cheap, but a public upload endpoint still deserves a brake)."""
    key = _client_key(request)
    cache.add(key, 0, timeout=VERIFY_WINDOW_S)
    try:
        count = cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=VERIFY_WINDOW_S)
        count = 1
    return count > VERIFY_UPLOADS_PER_WINDOW


@never_cache
@require_http_methods(["GET", "POST"])
def verify_upload(request: HttpRequest) -> HttpResponse:
    """Upload a PDF: it is authentic only if its SHA-256 is that of a report
    this site issued (any change to the file, one byte, fails)."""
    if request.method == "GET":
        return render(request, "reports/verify.html", {"state": None, "source": "upload",
                                                       "max_mb": MAX_VERIFY_UPLOAD_BYTES // (1024 * 1024)})
    context = {"source": "upload", "max_mb": MAX_VERIFY_UPLOAD_BYTES // (1024 * 1024)}
    if _over_rate_limit(request):
        return render(request, "reports/verify.html", {**context, "state": None,
                      "error": "Too many checks from your address; wait a minute and try again."}, status=429)
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > MAX_VERIFY_UPLOAD_BYTES + 64 * 1024:
        return render(request, "reports/verify.html", {**context, "state": None,
                      "error": f"The file is larger than {context['max_mb']} MB; no report is that large."}, status=413)
    upload = request.FILES.get("pdf")
    if upload is None:
        return render(request, "reports/verify.html", {**context, "state": None,
                      "error": "Choose the PDF file of the report."}, status=400)
    if upload.size > MAX_VERIFY_UPLOAD_BYTES:
        return render(request, "reports/verify.html", {**context, "state": None,
                      "error": f"The file is larger than {context['max_mb']} MB; no report is that large."}, status=413)
    verification = report_verification.check_pdf_file(upload.chunks())
    return render(request, "reports/verify.html", _verify_context(verification, **context))
