from django.apps import AppConfig


class InstantConfig(AppConfig):
    name = "instant"
    verbose_name = "Marrow-Find instant check"
    default_auto_field = "django.db.models.BigAutoField"
