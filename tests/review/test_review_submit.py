"""Recording a review: confirm, override with a comment, the audit trail,
and who may do it (technician 403, outsider 404, anonymous to login)."""

from __future__ import annotations

import uuid

from django.urls import reverse

from diagnostics.models import AuditEvent, CaseStatus
from review.models import Review
from tests.base import BaseTestCase
from tests.factories import analysed_case


class ReviewSubmitTests(BaseTestCase):
    def setUp(self):
        super().setUp()
        self.case, self.images = analysed_case(self.lab, n_images=2, labels=["Pre", "Benign"])
        self.image = self.images[0]
        self.url = reverse("review_image", args=[self.case.pk, self.image.pk])

    def post(self, user, **data):
        self.client.force_login(user)
        data.setdefault("submission_token", str(uuid.uuid4()))
        return self.client.post(self.url, data)

    def test_confirm_records_the_ai_label_even_if_another_radio_is_checked(self):
        response = self.post(self.pathologist, label="Pro", confirm="1")
        self.assertEqual(response.status_code, 302)
        review = Review.objects.get(image=self.image)
        self.assertEqual(review.label, "Pre")
        self.assertTrue(review.agrees_with_ai)
        event = AuditEvent.objects.get(case=self.case, verb=AuditEvent.Verb.REVIEWED)
        self.assertEqual(event.model_version, self.image.analyses.get().model_version)
        self.assertEqual(event.actor, self.pathologist)

    def test_override_with_comment_is_recorded_and_audited(self):
        self.post(self.pathologist, label="Early", comment="nucleoli visible")
        review = Review.objects.get(image=self.image)
        self.assertEqual((review.label, review.agrees_with_ai, review.comment), ("Early", False, "nucleoli visible"))
        event = AuditEvent.objects.get(case=self.case, verb=AuditEvent.Verb.RELABELLED)
        self.assertEqual((event.detail["ai_label"], event.detail["label"]), ("Pre", "Early"))

    def test_second_review_appends_and_becomes_current(self):
        self.post(self.pathologist, label="Early")
        self.post(self.lab_admin, label="Pro")
        self.assertEqual(Review.objects.filter(image=self.image).count(), 2)
        self.client.force_login(self.pathologist)
        response = self.client.get(reverse("case_review", args=[self.case.pk]))
        item = next(i for i in response.context["items"] if i.image.pk == self.image.pk)
        self.assertEqual(item.current_label, "Pro")
        event = AuditEvent.objects.filter(case=self.case, verb=AuditEvent.Verb.RELABELLED).first()
        self.assertEqual(event.detail["previous_label"], "Early")

    def test_htmx_post_returns_the_card_and_the_live_side_panels(self):
        self.client.force_login(self.pathologist)
        response = self.client.post(
            self.url, {"label": "Pre", "submission_token": str(uuid.uuid4())}, HTTP_HX_REQUEST="true"
        )
        self.assertEqual(response.status_code, 200)
        self.assertContains(response, f'id="image-{self.image.pk}"')
        self.assertContains(response, 'id="review-progress" hx-swap-oob="true"')
        self.assertContains(response, "Pre confirmed")

    def test_label_outside_the_models_classes_is_refused_and_the_comment_kept(self):
        response = self.post(self.pathologist, label="Lymphoma", comment="my careful note")
        self.assertEqual(response.status_code, 400)
        self.assertContains(response, "Select a valid choice", status_code=400)
        self.assertContains(response, ">my careful note</textarea>", status_code=400)
        self.assertFalse(Review.objects.exists())

    def test_htmx_refusal_returns_the_card_with_the_reason_and_the_draft(self):
        self.case.status = CaseStatus.PROCESSING
        self.case.save()
        self.client.force_login(self.pathologist)
        response = self.client.post(
            self.url,
            {"label": "Early", "comment": "keep me", "submission_token": str(uuid.uuid4())},
            HTTP_HX_REQUEST="true",
        )
        self.assertEqual(response.status_code, 200)  # htmx swaps only 2xx answers
        self.assertContains(response, 'class="card-error"')
        self.assertContains(response, "not ready for review")
        self.assertFalse(Review.objects.exists())

    def test_missing_token_is_refused_and_nothing_recorded(self):
        self.client.force_login(self.pathologist)
        self.client.post(self.url, {"label": "Pre"})
        self.assertFalse(Review.objects.exists())

    def test_signed_out_case_cannot_be_relabelled(self):
        self.case.status = CaseStatus.SIGNED_OUT
        self.case.save()
        self.post(self.pathologist, label="Early")
        self.assertFalse(Review.objects.exists())

    def test_case_still_processing_cannot_be_reviewed(self):
        self.case.status = CaseStatus.PROCESSING
        self.case.save()
        self.post(self.pathologist, label="Early")
        self.assertFalse(Review.objects.exists())

    def test_technician_gets_403(self):
        response = self.post(self.technician, label="Early")
        self.assertEqual(response.status_code, 403)
        self.assertFalse(Review.objects.exists())

    def test_outsider_gets_404(self):
        response = self.post(self.outsider, label="Early")
        self.assertEqual(response.status_code, 404)
        self.assertFalse(Review.objects.exists())

    def test_image_of_another_case_in_the_url_is_404(self):
        _, other_images = analysed_case(self.lab, n_images=1)
        self.client.force_login(self.pathologist)
        url = reverse("review_image", args=[self.case.pk, other_images[0].pk])
        response = self.client.post(url, {"label": "Pre", "submission_token": str(uuid.uuid4())})
        self.assertEqual(response.status_code, 404)

    def test_anonymous_is_sent_to_login(self):
        response = self.client.post(self.url, {"label": "Pre", "submission_token": str(uuid.uuid4())})
        self.assertEqual(response.status_code, 302)
        self.assertTrue(response["Location"].startswith(reverse("account_login")))
        self.assertFalse(Review.objects.exists())

    def test_get_is_not_allowed(self):
        self.client.force_login(self.pathologist)
        self.assertEqual(self.client.get(self.url).status_code, 405)
