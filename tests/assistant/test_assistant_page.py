"""The standalone assistant page and the case-page panel hook."""

from __future__ import annotations

from django.template.loader import render_to_string
from django.urls import reverse

from tests.base import BaseTestCase
from tests.factories import assistant_case


class AssistantPageTest(BaseTestCase):
    @classmethod
    def setUpTestData(cls) -> None:
        super().setUpTestData()
        cls.built = assistant_case()
        cls.case = cls.built.case

    def test_standalone_page_answers_about_a_case_named_by_accession(self):
        self.client.force_login(self.pathologist)
        page = self.client.get(reverse("assistant"))
        self.assertContains(page, 'name="question"')
        question = f"Which images of case {self.case.accession_number} are unreviewed?"
        response = self.client.post(reverse("assistant_ask"), {"question": question})
        self.assertRedirects(response, reverse("assistant"))
        page = self.client.get(reverse("assistant"))
        self.assertContains(page, question)
        self.assertContains(page, "2 of 5 analysed images")  # images 2 and 5 (tests/factories.assistant_case)

    def test_case_page_hook_loads_the_panel(self):
        html = render_to_string("assistant/_panel.html", {"case": self.case})
        panel_url = reverse("case_assistant_panel", args=[self.case.pk])
        self.assertIn(f'hx-get="{panel_url}"', html)
        self.client.force_login(self.technician)
        panel = self.client.get(panel_url)
        self.assertContains(panel, f'name="case" value="{self.case.pk}"')
        self.assertContains(panel, f'hx-post="{reverse("assistant_ask")}"')
