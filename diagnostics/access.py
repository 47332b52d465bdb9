"""Lab isolation: every query a lab user makes goes through these helpers.

An object of another lab is reported as "not found" (404), never as
"forbidden", so that ids of other labs' cases leak nothing.
"""

from __future__ import annotations

from django.db.models import QuerySet
from django.http import Http404

from diagnostics.models import Analysis, Case, Lab, Membership, Role, SlideImage


def labs_for(user) -> QuerySet[Lab]:
    if not user.is_authenticated:
        return Lab.objects.none()
    return Lab.objects.filter(memberships__user=user)


def cases_for(user) -> QuerySet[Case]:
    if not user.is_authenticated:
        return Case.objects.none()
    return Case.objects.filter(lab__memberships__user=user)


def images_for(user) -> QuerySet[SlideImage]:
    return SlideImage.objects.filter(case__in=cases_for(user))


def analyses_for(user) -> QuerySet[Analysis]:
    return Analysis.objects.filter(image__case__in=cases_for(user))


def get_case_or_404(user, pk) -> Case:
    try:
        return cases_for(user).select_related("lab").get(pk=pk)
    except (Case.DoesNotExist, ValueError, TypeError, OverflowError):
        raise Http404("No such case") from None


def membership(user, lab: Lab) -> Membership | None:
    if not user.is_authenticated:
        return None
    return Membership.objects.filter(user=user, lab=lab).first()


def can_review(user, lab: Lab) -> bool:
    member = membership(user, lab)
    return member is not None and member.role in (Role.PATHOLOGIST, Role.LAB_ADMIN)


def can_upload(user, lab: Lab) -> bool:
    return membership(user, lab) is not None
