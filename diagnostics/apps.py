from django.apps import AppConfig


class DiagnosticsConfig(AppConfig):
    name = "diagnostics"
    verbose_name = "Marrow-Find diagnostics"
    default_auto_field = "django.db.models.BigAutoField"
