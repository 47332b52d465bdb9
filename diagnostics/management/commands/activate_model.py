"""``manage.py activate_model <sha-prefix|id>``: switch the model the workers use (no restart needed)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from diagnostics.services.models import (
    RegistryError,
    activate_model_version,
    find_model_version,
)


class Command(BaseCommand):
    help = (
        "Make a registered model version the active one of its task. Workers notice the change at their "
        "next chunk (they compare the active version's SHA-256 with the one they hold)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("reference", help="the model version's id, or a prefix (6+ characters) of its SHA-256")

    def handle(self, *args, **options) -> None:
        try:
            version = find_model_version(options["reference"])
        except RegistryError as exc:
            raise CommandError(str(exc)) from exc
        version = activate_model_version(version)
        demo = " [demo model, not for diagnosis]" if version.is_demo else ""
        self.stdout.write(f"active {version.task} model: #{version.pk} {version.name} (sha256 {version.sha256}){demo}")
