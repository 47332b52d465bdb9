"""The worker keeps one warm model per process and swaps it when the active version changes."""

from __future__ import annotations

import shutil

from diagnostics.model_cache import ModelCache, ModelFileChangedError
from diagnostics.services.models import activate_model_version
from tests.base import BaseTestCase
from tests.modelfixtures import checkpoint_path, register_test_model


class ModelCacheTests(BaseTestCase):
    def test_loaded_once_and_hot_swapped_on_activation(self) -> None:
        first = register_test_model(seed=0)
        cache = ModelCache()
        version, predictor = cache.get()
        self.assertEqual(version, first)
        self.assertEqual(predictor.sha256, first.sha256)
        for _ in range(3):
            self.assertIs(cache.get()[1], predictor)
        self.assertEqual(cache.loads, 1)

        second = register_test_model(seed=1, activate=False)
        self.assertIs(cache.get()[1], predictor)  # registered but not active: no change
        activate_model_version(second)
        version, swapped = cache.get()
        self.assertEqual(version, second)
        self.assertEqual(swapped.sha256, second.sha256)
        self.assertIsNot(swapped, predictor)
        self.assertEqual(cache.loads, 2)

    def test_nothing_registered(self) -> None:
        self.assertIsNone(ModelCache().get())
        self.assertIsNone(ModelCache().get("cell"))

    def test_fallback_to_the_version_a_chunk_was_sent_with(self) -> None:
        version = register_test_model(activate=False)
        self.assertIsNone(ModelCache().get())
        self.assertEqual(ModelCache().get(fallback_version_id=version.pk)[0], version)

    def test_a_checkpoint_replaced_on_disk_is_refused(self) -> None:
        version = register_test_model(seed=0)
        copy = self._media_copy(checkpoint_path(seed=1))
        version.checkpoint_path = str(copy)  # same registered SHA-256, different bytes
        version.save()
        with self.assertRaises(ModelFileChangedError):
            ModelCache().get()

    def _media_copy(self, source):
        from pathlib import Path

        from django.conf import settings

        target = Path(settings.MEDIA_ROOT) / "replaced.pt"
        shutil.copy(source, target)
        return target
