"""Accounts: email login, no open sign-up (lab admins invite members).

Rate limits and lock-outs key on the client address of ``marrowfind.clientip``
(correct behind ``TRUSTED_PROXY_COUNT`` proxies; a forged ``X-Forwarded-For``
is ignored). Failed logins lock out one *account from one address*: a brute
force on one account does not lock out a colleague behind the same hospital
NAT, and an attacker cannot lock out a user from the user's own address.
"""

from __future__ import annotations

from allauth.account.adapter import DefaultAccountAdapter

from marrowfind.clientip import client_ip


class InviteOnlyAccountAdapter(DefaultAccountAdapter):
    def is_open_for_signup(self, request) -> bool:
        return False

    def get_client_ip(self, request) -> str:
        return client_ip(request)

    def _get_login_attempts_cache_key(self, request, **credentials) -> str:
        # allauth's "key" rate for login_failed: per account and address, never address alone.
        return f"{super()._get_login_attempts_cache_key(request, **credentials)}@{client_ip(request)}"
