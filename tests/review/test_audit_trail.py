"""The audit trail shows every upload, label change, sign-out and amendment,
with the model version."""

from __future__ import annotations

import uuid

from django.core.cache import cache
from django.test import override_settings
from django.urls import reverse

from diagnostics import audit
from diagnostics.models import AuditEvent
from tests.base import BaseTestCase
from tests.factories import analysed_case, review_case
from tests.review.helpers import TOLERANCE_1, activate_totp, login_with_totp, post_amend, post_sign_out


@override_settings(**TOLERANCE_1)
class AuditTrailTests(BaseTestCase):
    def setUp(self):
        super().setUp()
        cache.clear()
        self.case, self.images = analysed_case(self.lab, n_images=2, labels=["Pre", "Benign"])
        self.model = self.images[0].analyses.get().model_version
        audit.record(AuditEvent.Verb.UPLOADED, actor=self.technician, case=self.case, obj=self.case, accepted=2, rejected=0)
        secret = activate_totp(self.pathologist)
        login_with_totp(self.client, self.pathologist, secret)
        self.client.post(
            reverse("review_image", args=[self.case.pk, self.images[0].pk]),
            {"label": "Early", "submission_token": str(uuid.uuid4()), "comment": "blast-like"},
        )
        review_case(self.case, self.pathologist)
        assert post_sign_out(self.client, self.case, secret, offset=1, diagnosis="suspicious",
                             further_studies="flow cytometry").status_code == 302
        post_amend(self.client, self.case, secret, reason="typo in label", offset=-1)

    def test_page_lists_each_kind_of_event_with_the_model_version(self):
        response = self.client.get(reverse("case_audit", args=[self.case.pk]))
        self.assertEqual(response.status_code, 200)
        verbs = [event.verb for event in response.context["audit_events"]]
        for verb in ("uploaded", "relabelled", "signed_out", "amended"):
            self.assertIn(verb, verbs)
        self.assertContains(response, "Pre → Early")
        self.assertContains(response, "blast-like")
        self.assertContains(response, "typo in label")
        self.assertContains(response, self.model.short_sha)

    def test_review_page_and_htmx_fragment_show_it_too(self):
        self.assertContains(self.client.get(reverse("case_review", args=[self.case.pk])), 'id="audit-trail"')
        fragment = self.client.get(reverse("case_audit", args=[self.case.pk]), HTTP_HX_REQUEST="true")
        self.assertNotContains(fragment, "<html")
        self.assertContains(fragment, "Label overridden")

    def test_technician_can_read_it(self):
        self.client.force_login(self.technician)
        self.assertEqual(self.client.get(reverse("case_audit", args=[self.case.pk])).status_code, 200)

    def test_outsider_gets_404(self):
        self.client.force_login(self.outsider)
        self.assertEqual(self.client.get(reverse("case_audit", args=[self.case.pk])).status_code, 404)
        self.assertEqual(self.client.get(reverse("case_review_panel", args=[self.case.pk])).status_code, 404)

    def test_anonymous_is_sent_to_login(self):
        self.client.logout()
        for name in ("case_audit", "case_review_panel"):
            response = self.client.get(reverse(name, args=[self.case.pk]))
            self.assertTrue(response["Location"].startswith(reverse("account_login")))
