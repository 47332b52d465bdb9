"""A result is a demo when EITHER model behind it is: with a real image model
and the synthetic demo cell model (and the other way round), the case page,
the API summary, the PDF report and the assistant all say "demo model"; with
two real models none of them does."""

from __future__ import annotations

from django.urls import reverse

from assistant import engine
from diagnostics.models import Analysis
from reports import rendering as report_rendering
from reports import services as reports
from tests.base import BaseTestCase
from tests.factories import ModelVersionFactory, analysed_case
from tests.reports.pdftools import pdf_text

CELL_CLASSES = ["blast", "lymphocyte", "neutrophil"]
EVERYWHERE = {"page": True, "api": True, "pdf": True, "assistant": True}


class DemoBadgeEverywhereTests(BaseTestCase):
    def _case(self, *, image_demo: bool, cell_demo: bool):
        image_model = ModelVersionFactory(validated=True, is_demo=image_demo, is_active=True)
        cell_model = ModelVersionFactory(validated=True, is_demo=cell_demo, task="cell", class_names=CELL_CLASSES,
                                         binary_map=None, is_active=True)
        built = analysed_case(self.lab, drawn=True, labels=["Pro", "Benign"], blasts=[2, 1], model=image_model)
        Analysis.objects.filter(image__case=built.case).update(cell_model_version=cell_model)
        return built.case

    def surfaces(self, case) -> dict[str, bool]:
        self.client.force_login(self.pathologist)
        page = self.client.get(reverse("case_detail", args=[case.pk])).content.decode()
        api = self.client.get(reverse("api-case-summary", kwargs={"pk": case.pk})).json()
        pdf = pdf_text(bytes(reports.create_draft_report(case, self.pathologist).pdf))
        answer = engine.ask(self.pathologist, f"How many blasts in case {case.accession_number}?", case).text
        return {
            "page": "Demo model, not for diagnosis" in page,
            "api": api["demo"] is True,
            "pdf": report_rendering.DEMO_WATERMARK in pdf.replace("\n", " "),
            "assistant": "DEMO MODEL" in answer,
        }

    def test_real_image_model_with_a_demo_cell_model_is_a_demo_everywhere(self):
        self.assertEqual(self.surfaces(self._case(image_demo=False, cell_demo=True)), EVERYWHERE)

    def test_demo_image_model_with_a_real_cell_model_is_a_demo_everywhere(self):
        self.assertEqual(self.surfaces(self._case(image_demo=True, cell_demo=False)), EVERYWHERE)

    def test_two_real_models_show_no_demo_badge(self):
        self.assertEqual(self.surfaces(self._case(image_demo=False, cell_demo=False)),
                         {"page": False, "api": False, "pdf": False, "assistant": False})
