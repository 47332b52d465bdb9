"""bootstrap_demo: the demo lab, three users with printed logins, and a demo model; idempotent."""

from __future__ import annotations

import io
import re
import shutil
from pathlib import Path

import pytest
from django.contrib.auth import authenticate, get_user_model
from django.core.management import call_command
from django.test import override_settings

from diagnostics.models import Lab, Membership, ModelVersion, Role
from tests.base import BaseTestCase
from tests.modelfixtures import checkpoint_path, register_test_model


def bootstrap(*args, **env) -> str:
    out = io.StringIO()
    call_command("bootstrap_demo", *args, stdout=out)
    return out.getvalue()


class BootstrapDemoTests(BaseTestCase):
    def test_lab_and_users_with_printed_passwords_and_idempotent(self) -> None:
        first = bootstrap("--skip-model")
        lab = Lab.objects.get(slug="demo")
        roles = dict(Membership.objects.filter(lab=lab).values_list("user__username", "role"))
        self.assertEqual(
            roles,
            {"demo-technician": Role.TECHNICIAN, "demo-pathologist": Role.PATHOLOGIST, "demo-admin": Role.LAB_ADMIN},
        )
        passwords = dict(re.findall(r"(\S+@demo\.marrowfind\.local)\s+password: (\S+)", first))
        self.assertEqual(len(passwords), 3)
        for email, password in passwords.items():
            user = authenticate(username=get_user_model().objects.get(email=email).username, password=password)
            self.assertIsNotNone(user, email)
            self.client.logout()
            self.assertTrue(self.client.login(username=user.username, password=password))
        self.assertTrue(get_user_model().objects.get(username="demo-admin").is_superuser)

        second = bootstrap("--skip-model")
        self.assertNotIn("password: ", second)  # shown once, at creation
        self.assertEqual(second.count("password unchanged"), 3)
        self.assertEqual(Lab.objects.filter(slug="demo").count(), 1)
        self.assertEqual(Membership.objects.filter(lab=lab).count(), 3)
        for email, password in passwords.items():
            self.assertTrue(get_user_model().objects.get(email=email).check_password(password))

    def test_passwords_from_the_environment(self) -> None:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("MARROWFIND_DEMO_PASSWORD", "a demo password 1")
            patch.setenv("MARROWFIND_DEMO_PATHOLOGIST_PASSWORD", "the pathologist pw 2")
            output = bootstrap("--skip-model")
        self.assertNotIn("a demo password 1", output)  # never printed when given
        users = get_user_model().objects
        self.assertTrue(users.get(username="demo-technician").check_password("a demo password 1"))
        self.assertTrue(users.get(username="demo-pathologist").check_password("the pathologist pw 2"))

    def test_an_active_model_is_kept(self) -> None:
        version = register_test_model()
        cell = register_test_model("cell")
        output = bootstrap()
        self.assertIn(f"image model: {version.name}", output)
        self.assertIn(f"cell model: {cell.name}", output)
        self.assertEqual(ModelVersion.objects.count(), 2)

    def test_a_demo_checkpoint_already_on_disk_is_registered_without_training(self) -> None:
        from django.conf import settings

        model_dir = Path(settings.MEDIA_ROOT) / "models"
        model_dir.mkdir()
        shutil.copy(checkpoint_path("image"), model_dir / "demo-image-model.pt")
        shutil.copy(checkpoint_path("cell"), model_dir / "demo-cell-model.pt")
        with override_settings(MARROWFIND_MODEL_DIR=model_dir):
            output = bootstrap()
        active = {v.task: v for v in ModelVersion.objects.filter(is_active=True)}
        self.assertEqual(set(active), {"image", "cell"})
        self.assertTrue(all(v.is_demo for v in active.values()))
        self.assertIn("demo model, not for diagnosis", output)
        self.assertNotIn("training", output)


@pytest.mark.slow
class BootstrapDemoTrainingTests(BaseTestCase):
    def test_trains_and_registers_the_demo_models_when_none_exist(self) -> None:
        from django.conf import settings

        model_dir = Path(settings.MEDIA_ROOT) / "trained"
        with override_settings(MARROWFIND_MODEL_DIR=model_dir):
            output = bootstrap("--quick")
        self.assertIn("training the demo model", output)
        image = ModelVersion.objects.get(task="image", is_active=True)
        self.assertTrue(image.is_demo)
        self.assertTrue((model_dir / "demo-image-model.pt").is_file())
        self.assertIn("accuracy", image.metrics)
        cell = ModelVersion.objects.get(task="cell", is_active=True)
        self.assertTrue(cell.is_demo)
        self.assertEqual(cell.class_names, ["not_blast", "blast"])
