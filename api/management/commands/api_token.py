"""``manage.py api_token EMAIL [--rotate | --revoke]``: the REST API token of a user.

For an administrator setting up a lab information system's service account;
people can issue their own token with ``POST /api/token/`` after signing in.
Tokens are stored hashed, so a token is printed once, when it is issued: for a
user who already has one, ``--rotate`` issues a new one (the old one stops working).
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from apitokens import services as api_tokens
from diagnostics import audit
from diagnostics.access import labs_for
from diagnostics.models import AuditEvent


class Command(BaseCommand):
    help = "Print (making one if needed), rotate or revoke the REST API token of the user with this e-mail address."

    def add_arguments(self, parser) -> None:
        parser.add_argument("email")
        action = parser.add_mutually_exclusive_group()
        action.add_argument("--rotate", action="store_true", help="revoke the current token and print a new one")
        action.add_argument("--revoke", action="store_true", help="revoke the token; the API refuses it from now on")

    def handle(self, *args, email: str, rotate: bool, revoke: bool, **options) -> None:
        user = get_user_model().objects.filter(email__iexact=email).first()
        if user is None:
            raise CommandError(f"no user with e-mail {email}")
        if not user.is_active:
            raise CommandError(f"{email} is not an active account")
        with transaction.atomic():
            if revoke:
                api_tokens.revoke(user)
                audit.record(
                    AuditEvent.Verb.OTHER, actor_label="manage.py api_token", action="api_token_revoked", user=email
                )
                self.stdout.write(f"token of {email} revoked")
                return
            if api_tokens.has_token(user) and not rotate:
                raise CommandError(
                    f"{email} already has a token; tokens are stored hashed and cannot be shown again. "
                    "Use --rotate for a new one (the old one stops working)."
                )
            token = api_tokens.issue(user)
            audit.record(
                AuditEvent.Verb.OTHER, actor_label="manage.py api_token", action="api_token_issued", user=email
            )
        if not labs_for(user).exists():
            self.stderr.write(f"warning: {email} is a member of no lab; the API will answer 403 no_lab")
        self.stdout.write(token.key)
