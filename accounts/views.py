"""Lab member pages: the labs a user administers, invitations and roles.

Protection: ``login_required``; labs only through ``diagnostics.access`` (another
lab is a 404); only lab admins manage members (403 otherwise). The profile page
edits the logged-in user's own name and credentials only (no id in its URL).
The TOTP activation is allauth's (its password re-check included); it only
returns to a ``next`` path on this site afterwards.
"""

from __future__ import annotations

from allauth.mfa.models import Authenticator
from allauth.mfa.totp.views import ActivateTOTPView
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts import services as member_service
from accounts.forms import InviteForm, ProfileForm, RoleForm
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


# --- profile and two-factor set-up -------------------------------------------------


def safe_next(request: HttpRequest, value: str | None) -> str | None:
    """``value`` when it is a path on this site (never another host), else None."""
    if value and url_has_allowed_host_and_scheme(value, allowed_hosts={request.get_host()},
                                                 require_https=request.is_secure()):
        return value
    return None


@login_required
@require_http_methods(["GET", "POST"])
def profile(request: HttpRequest) -> HttpResponse:
    """The user's own name and credentials (printed on what they sign). Only ever
    the logged-in user's own profile: there is no id in the URL to change."""
    target = safe_next(request, request.POST.get("next") or request.GET.get("next"))
    initial = {
        "first_name": request.user.first_name,
        "last_name": request.user.last_name,
        "credentials": member_service.credentials_of(request.user),
    }
    form = ProfileForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        member_service.update_profile(request.user, **form.cleaned_data)
        messages.success(request, "Your name and credentials are saved.")
        return redirect(target or "profile")
    return render(request, "account/profile.html", {"form": form, "next": target}, status=400 if form.errors else 200)


AFTER_TOTP_KEY = "mf:after_totp_setup"


class ActivateTOTPThenReturn(ActivateTOTPView):
    """allauth's TOTP activation, which then returns to the page that sent the user
    (``?next=``, a path on this site, kept in the session across allauth's password
    re-check) instead of allauth's own index: after setting up two-factor on the
    way to a sign-out, the pathologist is back on the sign-out page. The code typed
    to activate is spent, like a login code: it does not sign."""

    def get(self, request, *args, **kwargs):
        target = safe_next(request, request.GET.get("next"))
        if target:
            request.session[AFTER_TOTP_KEY] = target
        return super().get(request, *args, **kwargs)

    def form_valid(self, form) -> HttpResponse:
        response = super().form_valid(form)
        # allauth checks the activation code without spending it; spend it now (the shared
        # cache's "used" mark), so that it cannot sign anything afterwards: a code counts once.
        authenticator = Authenticator.objects.filter(user=self.request.user, type=Authenticator.Type.TOTP).first()
        if authenticator is not None:
            authenticator.wrap().validate_code(form.cleaned_data["code"])
        return response

    def get_success_url(self) -> str:
        target = safe_next(self.request, self.request.session.pop(AFTER_TOTP_KEY, None))
        if target is None:
            return super().get_success_url()
        note = " Recovery codes were made for you: keep them safe (Two-factor › Recovery codes)." if self.did_generate_recovery_codes else ""
        messages.success(self.request, "Two-factor authentication is on." + note)
        return target


activate_totp = ActivateTOTPThenReturn.as_view()
