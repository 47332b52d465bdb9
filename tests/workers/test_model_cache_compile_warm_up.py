"""The worker's warm-up starts compiling in the background and returns at once, so a
pool child reports ready within Celery's process start-up timeout; batches run eager
until the compiled module is ready."""

from __future__ import annotations

import threading

from django.test import override_settings

from diagnostics.model_cache import ModelCache
from tests.base import BaseTestCase
from tests.modelfixtures import register_test_model


class CompileWarmUpTests(BaseTestCase):
    def test_warm_up_returns_while_the_compiler_works_in_the_background(self) -> None:
        import ml.predict

        release = threading.Event()

        def slow_backend(graph_module, example_inputs):
            release.wait(120)  # a compiler that takes as long as the test says
            return graph_module.forward

        register_test_model(seed=0)
        original = ml.predict.COMPILE_BACKEND
        ml.predict.COMPILE_BACKEND = slow_backend
        self.addCleanup(setattr, ml.predict, "COMPILE_BACKEND", original)
        cache = ModelCache()
        with override_settings(INFERENCE_COMPILE="on"):
            cache.warm_up()  # returns although the compiler is held until release
            predictor = cache.held().predictor
            self.assertEqual(predictor.compile_state, "compiling")
            release.set()
            predictor.warm_up(wait=True)
        self.assertEqual(predictor.compile_state, "ready")

    def test_off_means_eager(self) -> None:
        register_test_model(seed=0)
        cache = ModelCache()
        with override_settings(INFERENCE_COMPILE="off"):
            cache.warm_up()
        self.assertEqual(cache.held().predictor.compile_state, "off")
