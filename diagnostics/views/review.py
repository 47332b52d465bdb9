from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.urls import path

from diagnostics.access import cases_for


@login_required
def worklist(request):
    # Placeholder until the review area lands (issue 7): lists the user's lab cases.
    return render(request, "diagnostics/worklist.html", {"cases": cases_for(request.user)[:50]})


urlpatterns = [
    path("", worklist, name="worklist"),
]
