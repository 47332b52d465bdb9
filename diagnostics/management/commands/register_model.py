"""``manage.py register_model CKPT [--activate] [--name NAME]``: add a checkpoint to the model registry."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from diagnostics.services.models import RegistryError, register_checkpoint


class Command(BaseCommand):
    help = (
        "Register a Marrow-Find checkpoint as a model version (SHA-256, arch, classes, metrics and the "
        "demo flag come from the file and its model card). Registering the same file again changes nothing."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("checkpoint", help="path to a checkpoint written by ml.checkpoint.save_checkpoint")
        parser.add_argument("--activate", action="store_true", help="make it the active model of its task now")
        parser.add_argument("--name", help="a name for people (default: the file name)")

    def handle(self, *args, **options) -> None:
        try:
            version, created = register_checkpoint(
                options["checkpoint"], name=options["name"], activate=options["activate"]
            )
        except RegistryError as exc:
            raise CommandError(str(exc)) from exc
        verb = "registered" if created else "already registered"
        demo = " [demo model, not for diagnosis]" if version.is_demo else ""
        self.stdout.write(
            f"{verb}: #{version.pk} {version.name} ({version.task}, {version.arch}, sha256 {version.sha256}){demo}"
        )
        if version.metrics:
            metrics = ", ".join(
                f"{key}={value:.4f}" if isinstance(value, float) else f"{key}={value}"
                for key, value in sorted(version.metrics.items())
                if isinstance(value, (int, float, str))
            )
            self.stdout.write(f"metrics: {metrics}")
        self.stdout.write("active: yes" if version.is_active else "active: no (activate with manage.py activate_model)")
