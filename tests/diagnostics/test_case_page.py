"""The case page: progress, summary, images with their reasons and overlay links; lab isolation."""

from __future__ import annotations

from django.urls import reverse
from django.utils.html import escape

from diagnostics.models import CaseStatus, ImageStatus, SlideImage
from tests.base import BaseTestCase
from tests.factories import TRUNCATED, analysed_case


class CasePageTests(BaseTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.case = analysed_case(self.lab, labels=["Pro", "Benign", "Pre"], blasts=[5, 3, None], failed=(3,)).case
        from diagnostics.services.cases import summarise_case

        self.case.summary = summarise_case(self.case)
        self.case.save()
        self.url = reverse("case_detail", args=[self.case.pk])

    def test_lab_members_see_results_reasons_and_overlays(self) -> None:
        for user in (self.technician, self.pathologist, self.lab_admin):
            self.client.force_login(user)
            response = self.client.get(self.url)
            self.assertEqual(response.status_code, 200)
            self.assertContains(response, self.case.accession_number)
            self.assertContains(response, "3 / 3")  # progress: finished / total
            self.assertContains(response, escape(TRUNCATED))
            self.assertContains(response, "Demo model, not for diagnosis")
            self.assertContains(response, "WHO threshold")
            for analysis in [image.analyses.get() for image in self.case.images.filter(status=ImageStatus.DONE)]:
                self.assertContains(response, analysis.cam_overlay.url)
                self.assertContains(response, analysis.segmentation_overlay.url)
            self.assertNotContains(response, 'hx-trigger="every 2s"')  # finished: no polling
        self.assertTemplateUsed(response, "cases/_progress.html")
        self.assertTemplateUsed(response, "cases/_summary.html")
        self.assertTemplateUsed(response, "cases/_images.html")

    def test_the_page_polls_while_the_case_runs(self) -> None:
        self.case.status = CaseStatus.PROCESSING
        self.case.save()
        SlideImage.objects.filter(case=self.case, position=3).update(status=ImageStatus.PROCESSING, stage="classify", error="")
        self.client.force_login(self.technician)
        response = self.client.get(self.url)
        self.assertContains(response, 'hx-trigger="every 2s"')
        self.assertContains(response, reverse("case_progress", args=[self.case.pk]))
        fragment = self.client.get(reverse("case_progress", args=[self.case.pk]), headers={"HX-Request": "true"})
        self.assertContains(fragment, "2 / 3")
        self.assertNotIn("HX-Refresh", fragment.headers)
        # The last image finishes: the next poll reloads the page to show the results.
        SlideImage.objects.filter(case=self.case, position=3).update(status=ImageStatus.DONE)
        fragment = self.client.get(reverse("case_progress", args=[self.case.pk]), headers={"HX-Request": "true"})
        self.assertEqual(fragment.headers.get("HX-Refresh"), "true")

    def test_outsider_gets_404_for_every_case_page(self) -> None:
        self.client.force_login(self.outsider)
        for name in ("case_detail", "case_progress", "case_progress_json", "case_add_images"):
            self.assertEqual(self.client.get(reverse(name, args=[self.case.pk])).status_code, 404, name)

    def test_anonymous_is_sent_to_login(self) -> None:
        for name in ("case_detail", "case_progress", "case_progress_json"):
            response = self.client.get(reverse(name, args=[self.case.pk]))
            self.assertEqual(response.status_code, 302, name)
            self.assertIn("/accounts/login/", response["Location"])

    def test_unknown_case_is_404(self) -> None:
        self.client.force_login(self.technician)
        self.assertEqual(self.client.get(reverse("case_detail", args=[999999])).status_code, 404)
