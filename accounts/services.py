"""Lab membership: lab admins invite members; there is no open sign-up.

An invitation creates the user (without a usable password) and the
membership, and emails a one-time set-password link built with allauth's own
password-reset token generator, so the link expires and dies once used
exactly like a password reset. Someone who already has an account (a member
of another lab) is added to the lab and told so by email.
"""

from __future__ import annotations

from dataclasses import dataclass

from allauth.account import app_settings as account_settings
from allauth.account.adapter import get_adapter
from allauth.account.models import EmailAddress
from allauth.account.utils import user_pk_to_url_str
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import QuerySet
from django.urls import reverse
from django.utils import timezone

from accounts.models import Profile
from diagnostics import access, audit
from diagnostics.models import AuditEvent, Lab, Membership, Role


class MemberError(Exception):
    """An invitation or role change that cannot be made; shown to the user."""


def is_lab_admin(user, lab: Lab) -> bool:
    member = access.membership(user, lab)
    return member is not None and member.role == Role.LAB_ADMIN


def administered_labs(user) -> QuerySet[Lab]:
    """Labs where ``user`` may manage members."""
    if not user.is_authenticated:
        return Lab.objects.none()
    return Lab.objects.filter(memberships__user=user, memberships__role=Role.LAB_ADMIN).order_by("name")


def members_of(lab: Lab) -> QuerySet[Membership]:
    return Membership.objects.filter(lab=lab).select_related("user").order_by("role", "user__email")


@dataclass(frozen=True)
class Invitation:
    membership: Membership
    new_user: bool  # False: an existing account was added to the lab


def set_password_url(request, user) -> str:
    """An absolute one-time link to allauth's "set a new password" page."""
    token = account_settings.PASSWORD_RESET_TOKEN_GENERATOR().make_token(user)
    path = reverse("account_reset_password_from_key", kwargs={"uidb36": user_pk_to_url_str(user), "key": token})
    return request.build_absolute_uri(path)


def invite_member(*, request, lab: Lab, email: str, role: str, invited_by) -> Invitation:
    if not is_lab_admin(invited_by, lab):
        raise MemberError("Only a lab admin can invite members.")
    if role not in Role.values:
        raise MemberError(f"Unknown role {role!r}.")
    email = get_adapter().clean_email(email.strip()).lower()
    User = get_user_model()
    with transaction.atomic():
        user = User.objects.filter(email__iexact=email).first()
        if user is None:
            user = EmailAddress.objects.filter(email__iexact=email).select_related("user").first()
            user = user.user if user else None
        new_user = user is None
        if new_user:
            user = User(email=email)
            user.username = get_adapter().generate_unique_username([email, "member"])
            user.set_unusable_password()
            user.save()
            # The lab admin vouches for the address, and the account can only
            # be used through the link sent to it.
            EmailAddress.objects.create(user=user, email=email, primary=True, verified=True)
        elif Membership.objects.filter(user=user, lab=lab).exists():
            raise MemberError(f"{email} is already a member of {lab.name}.")
        membership = Membership.objects.create(user=user, lab=lab, role=role)
        audit.record(
            AuditEvent.Verb.MEMBER_INVITED,
            actor=invited_by,
            lab=lab,
            obj=membership,
            email=email,
            role=role,
            new_user=new_user,
        )
    context = {
        "lab": lab,
        "role": membership.get_role_display(),
        "invited_by": invited_by.email or invited_by.username,
        "login_url": request.build_absolute_uri(reverse("account_login")),
        "set_password_url": set_password_url(request, user) if new_user else None,
        "request": request,
    }
    get_adapter(request).send_mail("account/email/invite" if new_user else "account/email/added_to_lab", email, context)
    return Invitation(membership=membership, new_user=new_user)


def change_role(*, lab: Lab, membership: Membership, role: str, changed_by) -> Membership:
    if not is_lab_admin(changed_by, lab) or membership.lab_id != lab.pk:
        raise MemberError("Only a lab admin of this lab can change roles.")
    if role not in Role.values:
        raise MemberError(f"Unknown role {role!r}.")
    if (
        membership.role == Role.LAB_ADMIN
        and role != Role.LAB_ADMIN
        and not Membership.objects.filter(lab=lab, role=Role.LAB_ADMIN).exclude(pk=membership.pk).exists()
    ):
        raise MemberError("A lab needs at least one lab admin; make someone else admin first.")
    old = membership.role
    membership.role = role
    membership.save(update_fields=["role"])
    audit.record(
        AuditEvent.Verb.OTHER,
        actor=changed_by,
        lab=lab,
        obj=membership,
        action="role_changed",
        email=membership.user.email,
        old_role=old,
        role=role,
    )
    return membership


# --- the profile: how a member is named on what they sign ----------------------------


def credentials_of(user) -> str:
    """The credentials printed after the user's name ("MD, FRCPath"); "" when none are set."""
    return Profile.objects.filter(user=user).values_list("credentials", flat=True).first() or ""


def update_profile(user, *, first_name: str, last_name: str, credentials: str):
    """Set the full name and credentials a member signs with (written to the audit trail)."""
    first_name, last_name, credentials = first_name.strip(), last_name.strip(), " ".join(credentials.split())
    with transaction.atomic():
        before = (user.first_name, user.last_name, credentials_of(user))
        user.first_name, user.last_name = first_name, last_name
        user.save(update_fields=["first_name", "last_name"])
        profile, _ = Profile.objects.get_or_create(user=user)
        profile.credentials = credentials
        profile.updated_at = timezone.now()
        profile.save(update_fields=["credentials", "updated_at"])
        if before != (first_name, last_name, credentials):
            audit.record(AuditEvent.Verb.OTHER, actor=user, obj=profile, action="profile_changed",
                         name=f"{first_name} {last_name}".strip(), credentials=credentials)
    return profile
