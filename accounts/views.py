"""Lab member pages: the labs a user administers, invitations and roles.

Protection: ``login_required``; labs only through ``diagnostics.access`` (another
lab is a 404); only lab admins manage members (403 otherwise).
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts import services as member_service
from accounts.forms import InviteForm, RoleForm
from diagnostics import access
from diagnostics.models import Lab, Membership, Role


def _lab_or_404(user, slug: str) -> Lab:
    return get_object_or_404(access.labs_for(user), slug=slug)


@login_required
@require_GET
def members_home(request: HttpRequest) -> HttpResponse:
    labs = list(member_service.administered_labs(request.user))
    if len(labs) == 1:
        return redirect("lab_members", slug=labs[0].slug)
    memberships = Membership.objects.filter(user=request.user).select_related("lab").order_by("lab__name")
    return render(request, "review/labs.html", {"labs": labs, "memberships": memberships})


@login_required
@require_http_methods(["GET", "POST"])
def lab_members(request: HttpRequest, slug: str) -> HttpResponse:
    lab = _lab_or_404(request.user, slug)
    if not member_service.is_lab_admin(request.user, lab):
        raise PermissionDenied("Only lab admins manage members.")
    form = InviteForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            invitation = member_service.invite_member(
                request=request,
                lab=lab,
                email=form.cleaned_data["email"],
                role=form.cleaned_data["role"],
                invited_by=request.user,
            )
        except member_service.MemberError as exc:
            form.add_error("email", str(exc))
        else:
            email = invitation.membership.user.email
            if invitation.new_user:
                messages.success(request, f"Invitation sent to {email}: they choose a password from the link.")
            else:
                messages.success(request, f"{email} already had an account and was added to {lab.name}.")
            return redirect("lab_members", slug=lab.slug)
    return render(
        request,
        "review/members.html",
        {"lab": lab, "form": form, "members": member_service.members_of(lab), "roles": Role.choices},
    )


@login_required
@require_POST
def member_role(request: HttpRequest, slug: str, membership_pk: int) -> HttpResponse:
    lab = _lab_or_404(request.user, slug)
    if not member_service.is_lab_admin(request.user, lab):
        raise PermissionDenied("Only lab admins manage members.")
    membership = get_object_or_404(Membership.objects.select_related("user"), pk=membership_pk, lab=lab)
    form = RoleForm(request.POST)
    if form.is_valid():
        try:
            member_service.change_role(lab=lab, membership=membership, role=form.cleaned_data["role"], changed_by=request.user)
        except member_service.MemberError as exc:
            messages.error(request, str(exc))
        else:
            messages.success(request, f"{membership.user.email} is now {membership.get_role_display()}.")
    return redirect("lab_members", slug=lab.slug)
