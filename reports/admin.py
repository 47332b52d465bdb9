from django.contrib import admin

from reports import models


@admin.register(models.Report)
class ReportAdmin(admin.ModelAdmin):
    list_display = ("id", "case", "version", "status", "sha256", "created_at")
    exclude = ("pdf",)
    readonly_fields = ("case", "version", "status", "sha256", "signed_by", "signed_at", "superseded_by", "demo")
