"""An amendment after sign-out makes a new version and keeps the old one:
the first SignOut row, its labels and every review stay as they were."""

from __future__ import annotations

import uuid

from django.core.cache import cache
from django.urls import reverse

from diagnostics.models import AuditEvent, CaseStatus
from review.models import Review, SignOut
from tests.base import BaseTestCase
from tests.review.helpers import (
    activate_totp,
    login_with_totp,
    make_analysed_case,
    review_all,
)


class AmendmentTests(BaseTestCase):
    def setUp(self):
        super().setUp()
        cache.clear()
        self.case, self.images = make_analysed_case(self.lab, n_images=2, labels=["Pre", "Benign"])
        review_all(self.case, self.pathologist)
        login_with_totp(self.client, self.pathologist, activate_totp(self.pathologist))
        self.client.post(reverse("case_sign_out", args=[self.case.pk]), {"action": "sign_out", "confirm": "on"})
        self.case.refresh_from_db()
        assert self.case.status == CaseStatus.SIGNED_OUT

    def amend(self, user=None, reason="image 1 is a Pro-B blast population"):
        if user is not None:
            self.client.force_login(user)
        return self.client.post(reverse("case_amend", args=[self.case.pk]), {"reason": reason})

    def test_amend_relabel_and_sign_again_keeps_version_1(self):
        reviews_before = list(Review.objects.values_list("pk", "label"))
        self.amend()
        self.case.refresh_from_db()
        self.assertEqual((self.case.status, self.case.sign_out_version), (CaseStatus.AWAITING_REVIEW, 1))
        self.client.post(
            reverse("review_image", args=[self.case.pk, self.images[0].pk]),
            {"label": "Pro", "submission_token": str(uuid.uuid4())},
        )
        self.client.post(reverse("case_sign_out", args=[self.case.pk]), {"action": "sign_out", "confirm": "on"})
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
        self.assertContains(self.client.get(reverse("case_review", args=[self.case.pk])), "View v1")

    def test_amendment_needs_a_reason(self):
        self.amend(reason="  ")
        self.case.refresh_from_db()
        self.assertEqual(self.case.status, CaseStatus.SIGNED_OUT)

    def test_case_not_signed_out_cannot_be_amended(self):
        self.amend()
        self.amend()  # second time: it is awaiting review already
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
