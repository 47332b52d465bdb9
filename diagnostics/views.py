from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from diagnostics.access import cases_for


@login_required
def worklist(request):
    return render(request, "diagnostics/worklist.html", {"cases": cases_for(request.user)[:50]})
