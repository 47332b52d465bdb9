"""A model trained on real images goes through the registry to the worker pipeline.

The checkpoint is the session's real-data smoke model (tests/conftest.py: 30 Taleqani images
per class). It is registered with ``manage.py register_model --activate``; the pipeline then
analyses real smear images with it, each Analysis keeps that version, and nothing is labelled a
demo because nothing came from a demo model.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from django.core.management import call_command
from django.urls import reverse

from diagnostics.models import Analysis, CaseStatus, ModelVersion
from ml.checkpoint import file_sha256, load_checkpoint
from ml.datasets import Split, scan_imagefolder
from ml.labels import SUBTYPES
from tests.base import PASSWORD, BaseTestCase
from tests.factories import uploaded_case
from tests.modelfixtures import register_test_model
from tests.workers.helpers import run_case_inline


@pytest.mark.realdata
class RealModelServedTests(BaseTestCase):
    @pytest.fixture(autouse=True)
    def _real_model(self, real_smoke_model) -> None:
        _result, self.checkpoint, self.data = real_smoke_model

    def held_out_images(self) -> list[Path]:
        """One validation image per class from the checkpoint's own stored split (never trained on)."""
        _model, card = load_checkpoint(self.checkpoint)
        split = Split.from_dict(card.training["split"], scan_imagefolder(self.data, class_names=SUBTYPES))
        first_per_class = {}
        for sample in split.val:
            first_per_class.setdefault(sample.label, sample.path)
        return [first_per_class[name] for name in SUBTYPES]

    def test_the_registered_real_model_analyses_the_next_case(self) -> None:
        demo = register_test_model(activate=True)  # the site starts on a demo model
        out = io.StringIO()
        call_command("register_model", str(self.checkpoint), "--activate", "--name", "real smoke", stdout=out)
        version = ModelVersion.objects.get(sha256=file_sha256(self.checkpoint))
        self.assertTrue(version.is_active)
        self.assertFalse(version.is_demo)
        self.assertIn("accuracy", version.metrics)
        demo.refresh_from_db()
        self.assertFalse(demo.is_active)

        paths = self.held_out_images()
        case = uploaded_case(self.lab, files=[p.read_bytes() for p in paths], filenames=[p.name for p in paths])
        run_case_inline(case)
        self.assertEqual(case.status, CaseStatus.AWAITING_REVIEW)
        analyses = Analysis.objects.filter(image__case=case)
        self.assertEqual(analyses.count(), len(SUBTYPES))
        for analysis in analyses:
            self.assertEqual(analysis.model_version, version)
            self.assertIn(analysis.label, SUBTYPES)
            self.assertIsNotNone(analysis.all_probability)
        self.assertFalse(case.summary["demo"])

        self.client.login(username=self.pathologist.username, password=PASSWORD)
        page = self.client.get(reverse("case_detail", args=[case.pk]))
        self.assertEqual(page.status_code, 200)
        self.assertNotContains(page, "DEMO MODEL, NOT FOR DIAGNOSIS")
        self.assertNotContains(page, "demo model")
