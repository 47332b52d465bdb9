"""An amendment after sign-out makes a new version and keeps the old one:
the first SignOut row, its labels and every review stay as they were."""

from __future__ import annotations

import uuid

from django.core.cache import cache
from django.test import override_settings
from django.urls import reverse

from diagnostics.models import AuditEvent, CaseStatus
from review.models import Review, SignOut
from review.signout import amendment_changes
from tests.base import BaseTestCase
from tests.factories import analysed_case, review_case
from tests.review.helpers import TOLERANCE_1, activate_totp, post_amend, post_sign_out


@override_settings(**TOLERANCE_1)
class AmendmentTests(BaseTestCase):
    def setUp(self):
        super().setUp()
        cache.clear()
        self.case, self.images = analysed_case(self.lab, n_images=2, labels=["Pre", "Benign"])
        review_case(self.case, self.pathologist)
        self.secret = activate_totp(self.pathologist)
        self.client.force_login(self.pathologist)
        post_sign_out(self.client, self.case, self.secret, offset=-1, diagnosis="suspicious",
                      further_studies="flow cytometry")
        self.case.refresh_from_db()
        assert self.case.status == CaseStatus.SIGNED_OUT

    def amend(self, user=None, reason="image 1 is a Pro-B blast population", offset=0):
        if user is not None:
            self.client.force_login(user)
        return post_amend(self.client, self.case, self.secret, reason=reason, offset=offset)

    def test_amend_relabel_and_sign_again_keeps_version_1(self):
        reviews_before = list(Review.objects.values_list("pk", "label"))
        self.amend()
        self.case.refresh_from_db()
        self.assertEqual((self.case.status, self.case.sign_out_version), (CaseStatus.AWAITING_REVIEW, 1))
        self.client.post(
            reverse("review_image", args=[self.case.pk, self.images[0].pk]),
            {"label": "Pro", "submission_token": str(uuid.uuid4())},
        )
        post_sign_out(self.client, self.case, self.secret, offset=1, diagnosis="consistent_with_b_all", subtype="pro_b")
        self.case.refresh_from_db()
        self.assertEqual((self.case.status, self.case.sign_out_version), (CaseStatus.SIGNED_OUT, 2))

        v1, v2 = SignOut.objects.get(case=self.case, version=1), SignOut.objects.get(case=self.case, version=2)
        key = str(self.images[0].pk)
        self.assertEqual(v1.labels[key]["label"], "Pre")
        self.assertEqual(v2.labels[key]["label"], "Pro")
        self.assertEqual(v2.amendment_reason, "image 1 is a Pro-B blast population")
        # Reviews are append-only: the old ones are untouched.
        self.assertTrue(set(reviews_before) <= set(Review.objects.values_list("pk", "label")))
        verbs = list(AuditEvent.objects.filter(case=self.case, verb=AuditEvent.Verb.AMENDED).values_list("detail__stage", flat=True))
        self.assertEqual(sorted(verbs), ["opened", "signed"])

        page = self.client.get(reverse("case_version", args=[self.case.pk, 1]))
        self.assertContains(page, "superseded")
        self.assertContains(page, "Suspicious for ALL, further studies advised: flow cytometry")

        # Version 2 says what changed: the interpretation, the label of image 1, the images per label.
        changes = {c.what: (c.before, c.after) for c in amendment_changes(self.case, 2)}
        self.assertEqual(changes["Diagnosis"], ("Suspicious for ALL, further studies advised: flow cytometry",
                                                "Consistent with B-ALL (Pro-B)"))
        first, second = (f"Image #{i.position} ({i.original_filename}): label" for i in self.images)
        self.assertEqual(changes[first], ("Pre", "Pro"))
        self.assertEqual((changes["Images: Pre"], changes["Images: Pro"]), (("1", "0"), ("0", "1")))
        self.assertNotIn(second, changes)
        self.assertEqual(amendment_changes(self.case, 1), [])
        page = self.client.get(reverse("case_version", args=[self.case.pk, 2]))
        self.assertContains(page, "Changed from version 1")
        self.assertContains(page, "Consistent with B-ALL (Pro-B)")
        self.assertContains(self.client.get(reverse("case_review", args=[self.case.pk])), "View v1")

    def test_amendment_needs_a_reason(self):
        self.amend(reason="  ")
        self.case.refresh_from_db()
        self.assertEqual(self.case.status, CaseStatus.SIGNED_OUT)

    def test_case_not_signed_out_cannot_be_amended(self):
        self.amend()
        self.amend(offset=1)  # second time: it is awaiting review already
        self.assertEqual(AuditEvent.objects.filter(case=self.case, detail__stage="opened").count(), 1)

    def test_technician_gets_403(self):
        self.assertEqual(self.amend(self.technician).status_code, 403)
        self.case.refresh_from_db()
        self.assertEqual(self.case.status, CaseStatus.SIGNED_OUT)

    def test_outsider_gets_404_for_amend_and_versions(self):
        self.assertEqual(self.amend(self.outsider).status_code, 404)
        self.assertEqual(self.client.get(reverse("case_version", args=[self.case.pk, 1])).status_code, 404)
        self.case.refresh_from_db()
        self.assertEqual(self.case.status, CaseStatus.SIGNED_OUT)

    def test_anonymous_is_sent_to_login(self):
        self.client.logout()
        for response in (self.amend(), self.client.get(reverse("case_version", args=[self.case.pk, 1]))):
            self.assertEqual(response.status_code, 302)
            self.assertTrue(response["Location"].startswith(reverse("account_login")))
