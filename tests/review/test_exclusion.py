"""Excluding an image as not assessable: recorded once (double submit), audited, a
reason required; pre-filled from the scope check; the image leaves the case
figures (the case record), still lets the case be signed, and the signed
snapshot keeps the exclusion."""

from __future__ import annotations

import re
import uuid

from django.urls import reverse

from diagnostics.models import Analysis, AuditEvent, ExclusionReason
from diagnostics.services.case_record import build_case_record, case_figures
from review import services as review_service
from review.models import Review
from tests.base import BaseTestCase
from tests.factories import analysed_case


class ExclusionServiceTests(BaseTestCase):
    def setUp(self):
        super().setUp()
        self.case, self.images = analysed_case(self.lab, n_images=3, labels=["Pro", "Pre", "Benign"], blasts=4)
        # Distinct counts per image, so a figure that still includes image 1 is caught.
        for position, (wbc, blasts) in enumerate(((50, 30), (20, 2), (30, 1)), start=1):
            Analysis.objects.filter(image=self.images[position - 1]).update(
                cell_counts={"wbc": wbc, "rbc": 100 * position, "platelet": position}, blasts=blasts
            )

    def exclude(self, image, reason=ExclusionReason.OUT_OF_FOCUS, token=None, user=None, comment=""):
        return review_service.record_review(
            image=image, reviewer=user or self.pathologist, exclusion=reason, comment=comment,
            submission_token=token or uuid.uuid4(),
        )

    def test_an_exclusion_is_a_review_without_a_label_and_is_audited(self):
        outcome = self.exclude(self.images[0], comment="nuclei blurred")
        review = Review.objects.get(image=self.images[0])
        self.assertTrue(outcome.created)
        self.assertEqual((review.label, review.exclusion, review.agrees_with_ai), ("", "out_of_focus", False))
        event = AuditEvent.objects.get(case=self.case, verb=AuditEvent.Verb.EXCLUDED)
        self.assertEqual(event.actor, self.pathologist)
        self.assertEqual(event.detail["exclusion"], "out_of_focus")
        self.assertEqual(event.detail["previous_label"], "Pro")
        self.assertEqual(event.detail["image"], 1)
        line = review_service.describe_event(event)
        self.assertIn("Pro → excluded, not assessable (Out of focus)", line)
        self.assertIn("nuclei blurred", line)

    def test_a_double_submitted_exclusion_is_recorded_once(self):
        token = uuid.uuid4()
        first = self.exclude(self.images[0], token=token)
        second = self.exclude(self.images[0], token=token)
        self.assertEqual((first.created, second.created), (True, False))
        self.assertEqual(second.review.pk, first.review.pk)
        self.assertEqual(Review.objects.filter(image=self.images[0]).count(), 1)
        self.assertEqual(AuditEvent.objects.filter(verb=AuditEvent.Verb.EXCLUDED).count(), 1)

    def test_an_unknown_reason_is_refused(self):
        with self.assertRaises(review_service.ReviewError):
            self.exclude(self.images[0], reason="looks_odd")
        self.assertFalse(Review.objects.exists())

    def test_the_excluded_image_leaves_every_figure_of_the_case_record(self):
        before = case_figures(self.case)
        self.assertEqual((before["wbc"], before["blasts"], before["excluded"]), (100, 33, 0))
        self.exclude(self.images[0], reason=ExclusionReason.TISSUE_SECTION)
        figures = case_figures(self.case)
        self.assertEqual(figures["wbc"], 50)
        self.assertEqual(figures["rbc"], 500)
        self.assertEqual(figures["blasts"], 3)
        self.assertEqual(figures["blast_fraction"], round(3 / 50, 4))
        self.assertEqual(figures["blast_percent"], 6.0)
        self.assertFalse(figures["who_flag"])  # 66 % with the section counted, 6 % without it
        self.assertTrue(before["who_flag"])
        self.assertEqual(figures["per_class"], {"Benign": 1, "Pre": 1})
        self.assertEqual(figures["excluded"], 1)
        self.assertEqual(figures["exclusions"], [{
            "position": 1, "filename": self.images[0].original_filename, "reason": "tissue_section",
            "reason_label": "Tissue section", "by": "patty@lab-a.org",
        }])
        self.assertEqual((figures["images"], figures["analysed"]), (3, 3))  # still an analysed image of the case
        record = build_case_record(self.case)
        self.assertEqual([row.position for row in record.excluded], [1])
        self.assertIsNone(record.images[0].label)

    def test_the_cells_of_an_excluded_image_leave_both_differentials(self):
        from tests.factories import add_cells
        from tests.review.cell_helpers import reclassify

        add_cells(self.images[0].analyses.get(), ["blast"] * 6)
        add_cells(self.images[1].analyses.get(), ["blast", "lymphocyte", "lymphocyte", "neutrophil"])
        kept = add_cells(self.images[2].analyses.get(), ["lymphocyte"] * 2)
        reclassify(self.case, self.pathologist, kept[:1], "monocyte")
        before = build_case_record(self.case)
        self.assertEqual((before.reviewed_differential.blasts, before.reviewed_differential.nucleated), (7, 12))
        self.exclude(self.images[0])
        record = build_case_record(self.case)
        self.assertEqual(record.reviewed_differential.counts["blast"], 1)
        self.assertEqual(record.reviewed_differential.nucleated, 6)
        self.assertEqual(record.ai_differential.counts["blast"], 1)
        figures = case_figures(self.case)
        self.assertEqual((figures["blasts"], figures["blast_wbc"]), (1, 6))  # from the reviewed cells of images 2 and 3

    def test_a_later_label_takes_the_image_back_into_the_figures(self):
        self.exclude(self.images[0])
        review_service.record_review(image=self.images[0], reviewer=self.lab_admin, label="Pro", submission_token=uuid.uuid4())
        figures = case_figures(self.case)
        self.assertEqual((figures["wbc"], figures["excluded"]), (100, 0))

    def test_an_excluded_image_counts_as_reviewed_in_its_own_group(self):
        self.exclude(self.images[0])
        items = review_service.review_items(self.case)
        progress = review_service.review_progress(items)
        self.assertEqual((progress.reviewed, progress.excluded, progress.overridden), (1, 1, 0))
        self.assertEqual(progress.distribution.get("Excluded"), 1)
        groups = dict(review_service.group_items(items))
        self.assertEqual([item.image.pk for item in groups["Excluded"]], [self.images[0].pk])

    def test_the_signed_snapshot_keeps_the_exclusion(self):
        from django.test import RequestFactory

        from review.models import SignOut
        from review.signout import Interpretation, sign_out_case
        from tests.review.helpers import activate_totp, totp_code

        self.exclude(self.images[0], reason=ExclusionReason.WRONG_STAIN)
        for image in self.images[1:]:
            review_service.record_review(image=image, reviewer=self.pathologist, label=image.analyses.get().label,
                                         submission_token=uuid.uuid4())
        secret = activate_totp(self.pathologist)
        request = RequestFactory().post("/")
        request.user = self.pathologist
        sign_out_case(self.case, self.pathologist, request, interpretation=Interpretation("no_evidence_of_all"),
                      totp_code=totp_code(secret))
        snapshot = SignOut.objects.get(case=self.case)
        entry = snapshot.labels[str(self.images[0].pk)]
        self.assertEqual((entry["label"], entry["exclusion"]), (None, "wrong_stain"))
        self.assertEqual(snapshot.summary["excluded"], 1)
        self.assertEqual(snapshot.summary["wbc"], 50)
        # Signed > reviewed: the record reads the exclusion from the snapshot.
        record = build_case_record(self.case)
        self.assertEqual(record.images[0].exclusion, "wrong_stain")
        self.assertEqual(record.images[0].excluded_by, "patty@lab-a.org")
        self.client.force_login(self.pathologist)
        page = self.client.get(reverse("case_version", args=[self.case.pk, 1]))
        self.assertContains(page, '<strong>Excluded</strong> <span class="badge bad">Wrong stain</span>', html=False)
        self.assertNotContains(page, "None")


class ExclusionFormTests(BaseTestCase):
    def setUp(self):
        super().setUp()
        self.case, self.images = analysed_case(self.lab, n_images=3, labels=["Pro", "Pre", "Benign"])
        Analysis.objects.filter(image=self.images[0]).update(
            in_scope=False, scope_code="out_of_focus", scope_reason="The image is out of focus (sharpness 3.1 < 12)."
        )
        Analysis.objects.filter(image=self.images[1]).update(
            in_scope=False, scope_code="far_from_training", scope_reason="Far from the training images."
        )
        self.client.force_login(self.pathologist)

    def card(self, image) -> str:
        page = self.client.get(reverse("case_review", args=[self.case.pk])).content.decode()
        match = re.search(rf'<article[^>]*id="image-{image.pk}".*?</article>', page, re.S)
        self.assertIsNotNone(match)
        return match.group(0)

    def selected(self, card: str) -> list[str]:
        select = re.search(r'<select name="exclusion".*?</select>', card, re.S).group(0)
        return re.findall(r'<option value="([^"]*)" selected>', select)

    def test_the_scope_check_prefills_the_exclusion(self):
        card = self.card(self.images[0])
        self.assertIn("out of scope", card)
        self.assertIn("The image is out of focus (sharpness 3.1 &lt; 12).", card)
        self.assertEqual(self.selected(card), ["out_of_focus"])
        self.assertIn("suggested by the scope check", card)

    def test_far_from_training_is_flagged_but_suggests_no_reason_and_in_scope_none(self):
        card = self.card(self.images[1])
        self.assertIn("out of scope", card)
        self.assertEqual(self.selected(card), [])
        in_scope = self.card(self.images[2])
        self.assertNotIn("out of scope", in_scope)
        self.assertEqual(self.selected(in_scope), [])

    def post(self, image, **data):
        data.setdefault("submission_token", str(uuid.uuid4()))
        return self.client.post(reverse("review_image", args=[self.case.pk, image.pk]), data)

    def test_the_exclude_button_records_the_reason(self):
        response = self.post(self.images[0], exclude="1", exclusion="out_of_focus", label="Pro")
        self.assertEqual(response.status_code, 302)
        review = Review.objects.get(image=self.images[0])
        self.assertEqual((review.label, review.exclusion), ("", "out_of_focus"))
        card = self.card(self.images[0])
        self.assertIn("Excluded: <strong>not assessable</strong>", card)
        self.assertEqual(self.selected(card), ["out_of_focus"])  # the current decision stays selected

    def test_exclude_without_a_reason_is_refused_and_says_why(self):
        response = self.post(self.images[2], exclude="1", exclusion="")
        self.assertEqual(response.status_code, 400)
        self.assertContains(response, "Choose why the image is not assessable.", status_code=400)
        self.assertFalse(Review.objects.exists())

    def test_a_reason_left_selected_does_not_exclude_when_saving_a_label(self):
        self.assertEqual(self.post(self.images[0], exclusion="out_of_focus", label="Early").status_code, 302)
        review = Review.objects.get(image=self.images[0])
        self.assertEqual((review.label, review.exclusion), ("Early", ""))

    def test_the_htmx_answer_is_the_excluded_card(self):
        response = self.client.post(
            reverse("review_image", args=[self.case.pk, self.images[0].pk]),
            {"exclude": "1", "exclusion": "not_a_smear", "submission_token": str(uuid.uuid4())},
            HTTP_HX_REQUEST="true",
        )
        self.assertEqual(response.status_code, 200)
        self.assertContains(response, "excluded as not assessable (not a smear)")
        self.assertContains(response, 'data-role="exclusion">Not a smear<')

    def test_a_technician_cannot_exclude(self):
        self.client.force_login(self.technician)
        self.assertEqual(self.post(self.images[0], exclude="1", exclusion="out_of_focus").status_code, 403)
        self.assertFalse(Review.objects.exists())
