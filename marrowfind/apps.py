"""Project-level app configs."""

from django.contrib.admin.apps import AdminConfig


class MfaAdminConfig(AdminConfig):
    """django.contrib.admin with the site of marrowfind.admin (allauth login + two-factor)."""

    default_site = "marrowfind.admin.MfaAdminSite"

    def ready(self) -> None:
        super().ready()  # autodiscovers every app's admin.py
        from django.contrib import admin

        from marrowfind.admin import replace_unsafe_admins

        replace_unsafe_admins(admin.site)
