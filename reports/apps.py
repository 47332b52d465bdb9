from django.apps import AppConfig


class ReportsConfig(AppConfig):
    name = "reports"
    verbose_name = "Marrow-Find reports"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from reports import checks  # noqa: F401 (registers the system checks)
