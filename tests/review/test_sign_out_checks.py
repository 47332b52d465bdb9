"""Sign-out refuses until every image is reviewed, Unidentified is empty and the
pathologist has a TOTP authenticator; the signature itself carries an
interpretation and a fresh TOTP code (real allauth TOTP, real cache)."""

from __future__ import annotations

from django.core.cache import cache
from django.urls import reverse

from diagnostics.models import AuditEvent, CaseStatus
from review.models import SignOut
from tests.base import BaseTestCase
from tests.factories import analysed_case, review_case
from tests.review.helpers import activate_totp, login_with_password, post_sign_out


class SignOutChecksTests(BaseTestCase):
    def setUp(self):
        super().setUp()
        cache.clear()  # TOTP replay guard and rate limits live in the cache
        self.case, self.images = analysed_case(self.lab, n_images=3, low_confidence=(3,))
        self.url = reverse("case_sign_out", args=[self.case.pk])
        self.secret = activate_totp(self.pathologist)

    def sign(self, **kwargs):
        return post_sign_out(self.client, self.case, self.secret, **kwargs)

    def failing(self, response) -> set[str]:
        return {c.code for c in response.context["checks"] if not c.ok}

    def test_unreviewed_and_unidentified_images_block_sign_out(self):
        self.client.force_login(self.pathologist)
        response = self.client.get(self.url)
        self.assertEqual(self.failing(response), {"reviewed", "unidentified"})
        self.assertContains(response, "1 low-confidence image(s) are still Unidentified")
        self.sign()
        self.case.refresh_from_db()
        self.assertEqual(self.case.status, CaseStatus.AWAITING_REVIEW)
        self.assertFalse(SignOut.objects.exists())

    def test_all_reviewed_signs_out_version_1_with_the_interpretation(self):
        review_case(self.case, self.pathologist)
        self.client.force_login(self.pathologist)
        response = self.client.get(self.url)
        self.assertEqual(self.failing(response), set())
        response = self.sign(diagnosis="consistent_with_b_all", subtype="pro_b", comment="Sheets of blasts.")
        self.assertRedirects(response, reverse("case_review", args=[self.case.pk]), fetch_redirect_response=False)
        self.case.refresh_from_db()
        self.assertEqual((self.case.status, self.case.sign_out_version, self.case.signed_out_by), (CaseStatus.SIGNED_OUT, 1, self.pathologist))
        sign_out = SignOut.objects.get(case=self.case)
        self.assertEqual(len(sign_out.labels), 3)
        self.assertEqual((sign_out.diagnosis, sign_out.diagnosis_subtype, sign_out.diagnosis_comment),
                         ("consistent_with_b_all", "pro_b", "Sheets of blasts."))
        self.assertIsNotNone(sign_out.mfa_authenticated_at)
        event = AuditEvent.objects.get(case=self.case, verb=AuditEvent.Verb.SIGNED_OUT)
        self.assertEqual(event.model_version, self.images[0].analyses.get().model_version)
        self.assertEqual((event.detail["diagnosis"], event.detail["diagnosis_subtype"]), ("consistent_with_b_all", "pro_b"))

    def test_a_password_only_login_signs_with_a_code_entered_at_the_signature(self):
        review_case(self.case, self.pathologist)
        login_with_password(self.client, self.pathologist)  # TOTP on: allauth stops at the 2FA stage
        self.assertEqual(self.client.get(self.url).status_code, 302)  # not logged in yet
        self.client.force_login(self.pathologist)  # a session without any MFA record
        self.assertEqual(self.failing(self.client.get(self.url)), set())  # no separate MFA step any more
        response = self.sign(code="")
        self.assertEqual(response.status_code, 400)
        self.assertIn("code", response.context["sign_form"].errors)
        self.case.refresh_from_db()
        self.assertEqual(self.case.status, CaseStatus.AWAITING_REVIEW)
        self.sign()
        self.case.refresh_from_db()
        self.assertEqual(self.case.status, CaseStatus.SIGNED_OUT)

    def test_pathologist_without_totp_cannot_sign_out(self):
        review_case(self.case, self.pathologist)
        self.client.force_login(self.lab_admin)  # a reviewer with no authenticator
        response = self.client.get(self.url)
        self.assertEqual(self.failing(response), {"mfa_enabled"})
        self.assertContains(response, f"{reverse('mfa_activate_totp')}?next={self.url}")
        self.client.post(self.url, {"diagnosis": "no_evidence_of_all", "confirm": "on", "code": "123456"})
        self.case.refresh_from_db()
        self.assertEqual(self.case.status, CaseStatus.AWAITING_REVIEW)

    def test_unticked_confirmation_does_not_sign(self):
        review_case(self.case, self.pathologist)
        self.client.force_login(self.pathologist)
        self.assertEqual(self.sign(confirm=False).status_code, 400)
        self.case.refresh_from_db()
        self.assertEqual(self.case.status, CaseStatus.AWAITING_REVIEW)

    def test_case_still_processing_cannot_be_signed_out(self):
        review_case(self.case, self.pathologist)
        self.case.status = CaseStatus.PROCESSING
        self.case.save()
        self.client.force_login(self.pathologist)
        self.assertIn("status", self.failing(self.client.get(self.url)))

    def test_technician_gets_403(self):
        review_case(self.case, self.pathologist)
        self.client.force_login(self.technician)
        self.assertEqual(self.client.get(self.url).status_code, 403)
        self.assertEqual(self.sign().status_code, 403)
        self.case.refresh_from_db()
        self.assertEqual(self.case.status, CaseStatus.AWAITING_REVIEW)

    def test_outsider_gets_404(self):
        review_case(self.case, self.pathologist)
        outsider_secret = activate_totp(self.outsider)
        self.client.force_login(self.outsider)
        self.assertEqual(self.client.get(self.url).status_code, 404)
        self.assertEqual(post_sign_out(self.client, self.case, outsider_secret).status_code, 404)
        self.case.refresh_from_db()
        self.assertEqual(self.case.status, CaseStatus.AWAITING_REVIEW)

    def test_anonymous_is_sent_to_login(self):
        response = self.sign()
        self.assertEqual(response.status_code, 302)
        self.assertTrue(response["Location"].startswith(reverse("account_login")))
