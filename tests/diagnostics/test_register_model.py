"""The model registry commands: register_model reads the checkpoint and its card; activate_model switches."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

from django.conf import settings
from django.core.management import CommandError, call_command

from diagnostics.models import AuditEvent, ModelVersion
from ml.checkpoint import file_sha256, load_checkpoint
from tests.base import BaseTestCase
from tests.modelfixtures import checkpoint_path


def run(*args) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


class RegisterModelTests(BaseTestCase):
    def test_register_reads_everything_from_the_file(self) -> None:
        path = checkpoint_path("image", seed=0)
        output = run("register_model", str(path), "--name", "subtype model A")
        version = ModelVersion.objects.get()
        _, card = load_checkpoint(path)
        self.assertEqual(version.sha256, file_sha256(path))
        self.assertEqual(version.name, "subtype model A")
        self.assertEqual(version.task, "image")
        self.assertEqual(version.arch, card.arch)
        self.assertEqual(version.class_names, list(card.class_names))
        self.assertEqual(version.binary_map, card.binary_map)
        self.assertEqual(version.checkpoint_path, str(path.resolve()))
        self.assertEqual(version.card["input_size"], card.input_size)
        self.assertTrue(version.is_demo)  # card.demo
        self.assertFalse(version.is_active)
        self.assertIn("registered: #", output)
        self.assertIn("demo model, not for diagnosis", output)
        self.assertTrue(AuditEvent.objects.filter(verb=AuditEvent.Verb.MODEL_REGISTERED, object_id=str(version.pk)).exists())

    def test_registering_again_changes_nothing_and_activate_switches(self) -> None:
        path = checkpoint_path("image", seed=0)
        run("register_model", str(path), "--activate")
        output = run("register_model", str(path), "--activate")
        self.assertIn("already registered", output)
        self.assertEqual(ModelVersion.objects.count(), 1)
        first = ModelVersion.objects.get()
        self.assertTrue(first.is_active)

        run("register_model", str(checkpoint_path("image", seed=1)))
        second = ModelVersion.objects.exclude(pk=first.pk).get()
        output = run("activate_model", second.sha256[:10])
        self.assertIn(f"#{second.pk}", output)
        first.refresh_from_db(); second.refresh_from_db()
        self.assertEqual((first.is_active, second.is_active), (False, True))
        run("activate_model", str(first.pk))
        self.assertEqual(list(ModelVersion.objects.filter(is_active=True)), [first])

    def test_a_cell_model_is_active_next_to_the_image_model(self) -> None:
        run("register_model", str(checkpoint_path("image")), "--activate")
        run("register_model", str(checkpoint_path("cell")), "--activate")
        self.assertEqual(sorted(ModelVersion.objects.filter(is_active=True).values_list("task", flat=True)), ["cell", "image"])

    def test_bad_files_and_references_fail_with_the_reason(self) -> None:
        bogus = Path(settings.MEDIA_ROOT) / "not-a-checkpoint.pt"
        bogus.write_bytes(b"definitely not torch")
        with self.assertRaisesMessage(CommandError, str(bogus)):  # ml.checkpoint's reason, naming the file
            run("register_model", str(bogus))
        with self.assertRaisesMessage(CommandError, "No checkpoint file at"):
            run("register_model", str(bogus) + ".missing")
        with self.assertRaisesMessage(CommandError, "no model version with id or SHA-256 prefix"):
            run("activate_model", "abcdef12")
        self.assertEqual(ModelVersion.objects.count(), 0)

    def test_an_ambiguous_prefix_is_refused(self) -> None:
        for seed in (0, 1):
            run("register_model", str(checkpoint_path("image", seed=seed)))
        shas = list(ModelVersion.objects.values_list("sha256", flat=True))
        common = 0
        while common < 64 and shas[0][common] == shas[1][common]:
            common += 1
        if common >= 6:  # astronomically unlikely; then the prefix rule is exercised
            with self.assertRaisesMessage(CommandError, "matches several"):
                run("activate_model", shas[0][:common])
        with self.assertRaisesMessage(CommandError, "no model version"):
            run("activate_model", "12345")  # too short for a prefix and no such id

    def test_a_moved_file_is_followed(self) -> None:
        path = checkpoint_path("image")
        run("register_model", str(path))
        moved = Path(settings.MEDIA_ROOT) / "moved.pt"
        shutil.copy(path, moved)
        version = ModelVersion.objects.get()
        version.checkpoint_path = "/nonexistent/old-place.pt"
        version.save()
        run("register_model", str(moved))
        version.refresh_from_db()
        self.assertEqual(version.checkpoint_path, str(moved.resolve()))
