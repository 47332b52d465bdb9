"""The review screen: gallery grouped with Unidentified first, each AI label
with its explanation (CAM view, probabilities, model version, demo badge)."""

from __future__ import annotations

from django.urls import reverse

from diagnostics.models import CaseStatus
from tests.base import BaseTestCase
from tests.factories import analysed_case


class ReviewPageTests(BaseTestCase):
    def setUp(self):
        super().setUp()
        self.case, self.images = analysed_case(
            self.lab, n_images=4, labels=["Benign", "Early", "Pre", "Pro"], low_confidence=(2,)
        )
        self.url = reverse("case_review", args=[self.case.pk])

    def test_pathologist_sees_groups_with_unidentified_first(self):
        self.client.force_login(self.pathologist)
        response = self.client.get(self.url)
        self.assertEqual(response.status_code, 200)
        groups = [name for name, _ in response.context["groups"]]
        self.assertEqual(groups[0], "Unidentified")
        self.assertEqual([i.image.position for i in dict(response.context["groups"])["Unidentified"]], [2])
        self.assertNotIn("Early", groups)  # image 2 (Early, low confidence) waits in Unidentified
        self.assertContains(response, 'id="group-unidentified"')

    def test_every_ai_label_comes_with_its_explanation(self):
        self.client.force_login(self.pathologist)
        response = self.client.get(self.url)
        model = self.images[0].analyses.get().model_version
        for image in self.images:
            analysis = image.analyses.get()
            cam_url = reverse("protected_media", kwargs={"name": analysis.cam_overlay.name})
            seg_url = reverse("protected_media", kwargs={"name": analysis.segmentation_overlay.name})
            self.assertContains(response, f'data-view-cam="{cam_url}"')
            self.assertContains(response, f'data-view-segmentation="{seg_url}"')
        self.assertContains(response, model.short_sha)
        self.assertContains(response, "DEMO")  # the factory's model is a demo model
        self.assertContains(response, 'aria-label="Class probabilities"', count=4)

    def test_review_forms_carry_a_fresh_submission_token_each(self):
        self.client.force_login(self.pathologist)
        response = self.client.get(self.url)
        tokens = {str(item.token) for item in response.context["items"]}
        self.assertEqual(len(tokens), 4)
        for token in tokens:
            self.assertContains(response, f'name="submission_token" value="{token}"')

    def test_technician_sees_the_case_read_only(self):
        self.client.force_login(self.technician)
        response = self.client.get(self.url)
        self.assertEqual(response.status_code, 200)
        self.assertNotContains(response, 'class="rv-form"')
        self.assertNotContains(response, reverse("case_sign_out", args=[self.case.pk]))

    def test_signed_out_case_has_no_review_forms(self):
        self.case.status = CaseStatus.SIGNED_OUT
        self.case.sign_out_version = 1
        self.case.save()
        self.client.force_login(self.pathologist)
        response = self.client.get(self.url)
        self.assertNotContains(response, 'class="rv-form"')
        self.assertContains(response, "Open amendment")

    def test_outsider_gets_404(self):
        self.client.force_login(self.outsider)
        self.assertEqual(self.client.get(self.url).status_code, 404)

    def test_anonymous_is_sent_to_login(self):
        response = self.client.get(self.url)
        self.assertEqual(response.status_code, 302)
        self.assertTrue(response["Location"].startswith(reverse("account_login")))
