"""Step-up authentication: a fresh TOTP code for every signature.

Signing out a case and opening an amendment each ask for the code the
signer's authenticator app shows *now*, entered with the action itself.
Having passed two-factor at login is not enough, and the login code does not
count a second time:

* the code is checked by allauth's own TOTP (``TOTP.validate_code``), which
  marks it used in the shared cache (``cache.add`` of a per-user, per-code
  key over the whole validity window), so a code is accepted once across
  every web process: the one typed at login, or at an earlier signature, is
  refused;
* wrong codes count against allauth's MFA rate limit of the user
  (``login_failed`` per ``mfa-auth-user-<id>``, ``ACCOUNT_RATE_LIMITS``), the
  same limit as the login's code step, so the six digits cannot be guessed
  here either;
* only a TOTP authenticator counts (a recovery code is for getting into the
  account, not for signing).
"""

from __future__ import annotations

from datetime import datetime

from allauth.core import context
from allauth.mfa import signals
from allauth.mfa.base.internal.flows import check_rate_limit
from allauth.mfa.models import Authenticator
from django.core.exceptions import ValidationError
from django.utils import timezone

from diagnostics import audit
from diagnostics.models import AuditEvent

WRONG_OR_USED = (
    "That code is wrong or was already used. A code counts once, the one you logged in with included: "
    "enter the next code your authenticator app shows."
)


class StepUpRefused(Exception):
    """The code was missing, wrong, already used, or asked too often; the message is shown."""


def verify_step_up(request, user, code: str, *, action: str, case=None) -> datetime:
    """Check a fresh TOTP ``code`` of ``user`` for ``action`` ("sign_out" or
    "amend"); returns when it was accepted, or raises :class:`StepUpRefused`.
    A refusal is written to the audit trail of ``case``."""
    code = "".join((code or "").split())
    if not code:
        raise StepUpRefused("Enter the 6-digit code your authenticator app shows now.")
    authenticator = Authenticator.objects.filter(user=user, type=Authenticator.Type.TOTP).first()
    if authenticator is None:
        raise StepUpRefused("Activate two-factor authentication (an authenticator app) first.")
    with context.request_context(request):  # allauth's rate limit reads the request from its context
        try:
            clear_rate_limit = check_rate_limit(user)
        except ValidationError:
            _audit_refusal(user, case, action, "rate_limited")
            raise StepUpRefused("Too many wrong codes: wait a few minutes, then enter a new code.") from None
        if not authenticator.wrap().validate_code(code):
            signals.authentication_failed.send(
                sender=Authenticator, request=request, user=user, authenticator=authenticator, reauthentication=True
            )
            _audit_refusal(user, case, action, "wrong_or_used_code")
            raise StepUpRefused(WRONG_OR_USED)
        clear_rate_limit()
    authenticator.record_usage()
    return timezone.now()


def _audit_refusal(user, case, action: str, reason: str) -> None:
    audit.record(AuditEvent.Verb.OTHER, actor=user, case=case, obj=case, action="step_up_refused",
                 for_action=action, reason=reason)
