"""The case assistant: a chat panel on the case page and a standalone page.

Protection: every view needs a login (anonymous -> login redirect). A case is
only reached through ``access.get_case_or_404`` (another lab's case -> 404),
and the engine refuses, without revealing anything, questions that name a case
outside the asker's labs. Conversations are stored per user; a user only ever
sees their own.
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from assistant import engine
from assistant.llm import llm_config
from diagnostics import access
from diagnostics.http import case_page_url, is_htmx


def _context(request: HttpRequest, case) -> dict:
    return {
        "case": case,
        "chat_messages": engine.history(request.user, case),
        "llm_enabled": llm_config() is not None,
        "max_chars": engine.MAX_QUESTION_CHARS,
    }


@login_required
@require_GET
def assistant_page(request: HttpRequest) -> HttpResponse:
    """The standalone assistant (no case context: name a case by accession number)."""
    return render(request, "assistant/page.html", _context(request, None))


@login_required
@require_GET
def case_assistant_panel(request: HttpRequest, pk: int) -> HttpResponse:
    """The chat panel's content for one case, loaded into the case page with htmx."""
    case = access.get_case_or_404(request.user, pk)
    return render(request, "assistant/_panel_body.html", _context(request, case))


@login_required
@require_POST
def assistant_ask(request: HttpRequest) -> HttpResponse:
    """Answer one question (htmx: returns the two new messages to append)."""
    case_id = request.POST.get("case")
    case = access.get_case_or_404(request.user, case_id) if case_id else None
    question = request.POST.get("question", "").strip()
    if not question:
        if is_htmx(request):
            return HttpResponse(status=204)
        return redirect(_back_url(case))
    asked, replied, _answer = engine.ask_and_record(request.user, question, case)
    if is_htmx(request):
        return render(request, "assistant/_exchange.html", {"chat_messages": [asked, replied], "case": case})
    return redirect(_back_url(case))


def _back_url(case) -> str:
    return reverse("assistant") if case is None else case_page_url(case) + "#assistant"
