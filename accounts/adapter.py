"""Accounts: email login, no open sign-up (lab admins invite members)."""

from __future__ import annotations

from allauth.account.adapter import DefaultAccountAdapter


class InviteOnlyAccountAdapter(DefaultAccountAdapter):
    def is_open_for_signup(self, request) -> bool:
        return False
