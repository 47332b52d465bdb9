"""The Django admin behind the site's own login and two-factor.

* ``/admin/login/`` is not a second way in: it sends the browser to allauth's
  login (rate limits, lock-outs and the TOTP step included) and back.
* The admin answers only staff whose session passed two-factor (an allauth
  ``mfa`` authentication record); a staff member who signed in with the
  password alone, or has no authenticator, gets a page saying so.
* TOTP secrets are never shown: allauth's authenticator admin (which lists
  and edits the raw ``data``, the secret) and DRF's token admin are replaced.
"""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth.views import redirect_to_login
from django.shortcuts import render
from django.urls import reverse


def passed_mfa(request) -> bool:
    from allauth.account.authentication import get_authentication_records

    records = get_authentication_records(request, request.user)
    return any(record.get("method") == "mfa" for record in records)


class MfaAdminSite(admin.AdminSite):
    site_header = "Marrow-Find administration"

    def has_permission(self, request) -> bool:
        return super().has_permission(request) and passed_mfa(request)

    def login(self, request, extra_context=None):
        target = request.GET.get("next") or reverse("admin:index", current_app=self.name)
        user = request.user
        if user.is_authenticated and user.is_active and user.is_staff and not passed_mfa(request):
            return render(request, "admin/needs_mfa.html", {"next": target}, status=403)
        if user.is_authenticated and not (user.is_active and user.is_staff):
            return render(request, "admin/needs_mfa.html", {"next": target, "not_staff": True}, status=403)
        return redirect_to_login(target, login_url=reverse("account_login"))


class AuthenticatorAdmin(admin.ModelAdmin):
    """Who has which second factor; never its secret (``data``), never editable."""

    list_display = ("user", "type", "created_at", "last_used_at")
    list_filter = ("type",)
    fields = ("user", "type", "created_at", "last_used_at")
    readonly_fields = fields
    search_fields = ("user__email",)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


def replace_unsafe_admins(site: admin.AdminSite) -> None:
    """Swap allauth's authenticator admin (it shows the TOTP secret) for ours; drop DRF's token admin."""
    from allauth.mfa.models import Authenticator
    from rest_framework.authtoken.models import TokenProxy

    if site.is_registered(Authenticator):
        site.unregister(Authenticator)
    site.register(Authenticator, AuthenticatorAdmin)
    if site.is_registered(TokenProxy):
        site.unregister(TokenProxy)
