"""The admin lists who has a token and when it was issued; the digest is never shown
(and the token itself is not stored). DRF's own token admin, which showed tokens in
clear, is removed."""

from __future__ import annotations

from django.contrib import admin

from apitokens.models import ApiToken


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ("user", "prefix", "created")
    fields = ("user", "prefix", "created")
    readonly_fields = ("user", "prefix", "created")
    search_fields = ("user__email",)

    def has_add_permission(self, request):  # issued by the owner (POST /api/token/) or manage.py api_token
        return False

    def has_change_permission(self, request, obj=None):
        return False
