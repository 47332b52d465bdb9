"""``manage.py bootstrap_demo``: a demo lab, its three users, and a demo model when none is registered.

Idempotent: run it at every start (bin/run does). What exists is kept;
passwords of existing users are only changed when given in the environment.

Passwords: ``MARROWFIND_DEMO_<ROLE>_PASSWORD`` (ROLE = TECHNICIAN,
PATHOLOGIST, ADMIN) or ``MARROWFIND_DEMO_PASSWORD`` for all three; otherwise a
random password is generated and printed once, when the user is created.

Model: when no image model is active, the small demo model is trained on
synthetic smears (``ml.demo.train_demo_model``, a few CPU minutes, no
internet), saved under ``MARROWFIND_MODEL_DIR`` and registered as a demo
model (every page then says "demo model, not for diagnosis"). A real model
replaces it with ``manage.py register_model CKPT --activate``. The same is done
for the demo cell (blast) model when ``ml.demo`` provides one.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from diagnostics.models import Lab, Membership, ModelTask, Role
from diagnostics.services.models import (
    RegistryError,
    active_model_version,
    register_checkpoint,
)

DEMO_LAB_SLUG = "demo"
DEMO_LAB_NAME = "Demo Haematology Lab"
DEMO_EMAIL_DOMAIN = "demo.marrowfind.local"


@dataclass(frozen=True)
class DemoUser:
    username: str
    role: str
    env: str
    site_admin: bool = False

    @property
    def email(self) -> str:
        return f"{self.username.removeprefix('demo-')}@{DEMO_EMAIL_DOMAIN}"


DEMO_USERS = (
    DemoUser("demo-technician", Role.TECHNICIAN, "MARROWFIND_DEMO_TECHNICIAN_PASSWORD"),
    DemoUser("demo-pathologist", Role.PATHOLOGIST, "MARROWFIND_DEMO_PATHOLOGIST_PASSWORD"),
    # The demo lab admin also administers the site (Django admin, monitoring), so one login shows everything.
    DemoUser("demo-admin", Role.LAB_ADMIN, "MARROWFIND_DEMO_ADMIN_PASSWORD", site_admin=True),
)


class Command(BaseCommand):
    help = "Create (or keep) the demo lab, a technician, a pathologist and a lab admin, and a demo model if none."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--skip-model", action="store_true", help="do not train/register the demo model")
        parser.add_argument("--epochs", type=int, default=None, help="demo model training epochs (default: ml.demo's)")
        parser.add_argument(
            "--quick",
            action="store_true",
            help="train tiny demo models (a few images, 1 epoch): for smoke tests, useless for anything else",
        )

    def handle(self, *args, **options) -> None:
        lab, lab_created = Lab.objects.get_or_create(slug=DEMO_LAB_SLUG, defaults={"name": DEMO_LAB_NAME})
        self.stdout.write(f"lab: {lab.name} ({'created' if lab_created else 'exists'})")
        site = getattr(settings, "SITE_URL", "http://localhost:8000")
        self.stdout.write(f"logins (at {site}/accounts/login/):")
        for spec in DEMO_USERS:
            self.stdout.write("  " + self._ensure_user(lab, spec))
        if options["skip_model"]:
            return
        image_kwargs: dict = {"n_per_class": 8, "img_size": 64, "epochs": 1} if options["quick"] else {}
        cell_kwargs: dict = {"n_smears": 12, "epochs": 1} if options["quick"] else {}
        if options["epochs"]:
            image_kwargs["epochs"] = cell_kwargs["epochs"] = options["epochs"]
        self._ensure_model(ModelTask.IMAGE, "demo-image-model.pt", image_kwargs)
        self._ensure_model(ModelTask.CELL, "demo-cell-model.pt", cell_kwargs)

    @transaction.atomic
    def _ensure_user(self, lab: Lab, spec: DemoUser) -> str:
        from allauth.account.models import EmailAddress

        User = get_user_model()
        given = os.environ.get(spec.env) or os.environ.get("MARROWFIND_DEMO_PASSWORD")
        user, created = User.objects.get_or_create(username=spec.username, defaults={"email": spec.email})
        password_note = "password unchanged"
        if created or given:
            password = given or secrets.token_urlsafe(12)
            user.set_password(password)
            password_note = f"password from ${spec.env}" if given else f"password: {password}"
        if spec.site_admin:
            user.is_staff = user.is_superuser = True
        user.email = user.email or spec.email
        user.save()
        EmailAddress.objects.get_or_create(
            user=user, email=user.email, defaults={"verified": True, "primary": True}
        )
        Membership.objects.update_or_create(user=user, lab=lab, defaults={"role": spec.role})
        state = "created" if created else "exists"
        return f"{spec.role:<12} {user.email:<36} {password_note} ({state})"

    def _ensure_model(self, task: str, filename: str, train_kwargs: dict) -> None:
        from ml.demo import train_demo_cell_model, train_demo_model

        trainer_for = {ModelTask.IMAGE: train_demo_model, ModelTask.CELL: train_demo_cell_model}
        active = active_model_version(task)
        if active is not None:
            demo = " [demo]" if active.is_demo else ""
            self.stdout.write(f"{task} model: {active.name} (sha256 {active.short_sha}){demo} is active")
            return
        trainer = trainer_for[task]
        model_dir = Path(settings.MARROWFIND_MODEL_DIR)
        model_dir.mkdir(parents=True, exist_ok=True)
        path = model_dir / filename
        if not path.is_file():
            self.stdout.write(f"{task} model: none registered; training the demo model (synthetic smears, CPU) ...")
            path = Path(trainer(path, **train_kwargs))
        try:
            version, _ = register_checkpoint(path, name=f"demo {task} model", activate=True, is_demo=True)
        except RegistryError as exc:
            raise CommandError(f"the demo {task} model at {path} cannot be registered: {exc}") from exc
        self.stdout.write(
            f"{task} model: registered and activated {version.name} ({version.arch}, sha256 {version.short_sha}) "
            "[demo model, not for diagnosis]"
        )
