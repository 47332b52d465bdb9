"""Step-up at the signature: signing out and amending each take a fresh TOTP code.
The code typed at login does not count again, a code counts once (the shared
cache), wrong codes hit allauth's MFA rate limit, and a recovery code is no
signature. Real allauth TOTP and the real cache; no mocks.

The codes of the neighbouring 30-s periods are accepted here (MFA_TOTP_TOLERANCE=1),
so one test can use three different valid codes at once: offsets -1, 0, +1.
"""

from __future__ import annotations

from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes
from django.core.cache import cache
from django.test import RequestFactory, override_settings

from diagnostics.models import AuditEvent, CaseStatus
from review import signout as signout_service
from review.models import SignOut
from review.stepup import StepUpRefused, verify_step_up
from tests.base import BaseTestCase
from tests.factories import analysed_case, review_case
from tests.review.helpers import TOLERANCE_1, activate_totp, login_with_totp, post_amend, post_sign_out, totp_code


@override_settings(**TOLERANCE_1)
class StepUpTests(BaseTestCase):
    def setUp(self):
        super().setUp()
        cache.clear()
        self.case, self.images = analysed_case(self.lab, n_images=2, labels=["Pro", "Benign"])
        review_case(self.case, self.pathologist)
        self.secret = activate_totp(self.pathologist)

    def refusals(self) -> list[str]:
        return list(AuditEvent.objects.filter(case=self.case, detail__action="step_up_refused").order_by("id")
                    .values_list("detail__reason", flat=True))

    def test_the_code_used_to_log_in_does_not_sign(self):
        login_with_totp(self.client, self.pathologist, self.secret)  # spends the code of this period
        response = post_sign_out(self.client, self.case, self.secret, offset=0)
        self.assertEqual(response.status_code, 400)
        self.assertIn("already used", " ".join(response.context["sign_form"].errors["code"]))
        self.case.refresh_from_db()
        self.assertEqual(self.case.status, CaseStatus.AWAITING_REVIEW)
        self.assertFalse(SignOut.objects.exists())
        self.assertEqual(self.refusals(), ["wrong_or_used_code"])

        response = post_sign_out(self.client, self.case, self.secret, offset=1)  # a fresh code signs
        self.assertEqual(response.status_code, 302)
        self.assertEqual(SignOut.objects.get(case=self.case).version, 1)

    def test_a_code_counts_once_across_sign_out_and_amendment(self):
        self.client.force_login(self.pathologist)
        code = totp_code(self.secret, offset=0)
        self.assertEqual(post_sign_out(self.client, self.case, self.secret, code=code).status_code, 302)

        post_amend(self.client, self.case, self.secret, code=code)  # the signature's code, again
        self.case.refresh_from_db()
        self.assertEqual(self.case.status, CaseStatus.SIGNED_OUT)
        self.assertFalse(AuditEvent.objects.filter(case=self.case, detail__stage="opened").exists())

        post_amend(self.client, self.case, self.secret, offset=1)
        self.case.refresh_from_db()
        self.assertEqual(self.case.status, CaseStatus.AWAITING_REVIEW)
        event = AuditEvent.objects.get(case=self.case, detail__stage="opened")
        self.assertIn("step_up_at", event.detail)

        # The amendment's code does not sign version 2; the next fresh one does.
        refused = post_sign_out(self.client, self.case, self.secret, offset=1)
        self.assertEqual(refused.status_code, 400)
        self.assertEqual(SignOut.objects.filter(case=self.case).count(), 1)
        self.assertEqual(post_sign_out(self.client, self.case, self.secret, offset=-1).status_code, 302)
        self.assertEqual(sorted(SignOut.objects.filter(case=self.case).values_list("version", flat=True)), [1, 2])
        self.assertEqual(self.refusals(), ["wrong_or_used_code", "wrong_or_used_code"])

    def test_wrong_codes_are_rate_limited_like_the_login_code_step(self):
        self.client.force_login(self.pathologist)
        valid = {totp_code(self.secret, offset=k) for k in (-1, 0, 1)}
        wrong = next(f"{n:06d}" for n in range(1_000_000) if f"{n:06d}" not in valid)
        for _ in range(5):  # ACCOUNT_RATE_LIMITS login_failed: 5 per 5 minutes per key
            self.assertEqual(post_sign_out(self.client, self.case, self.secret, code=wrong).status_code, 400)
        response = post_sign_out(self.client, self.case, self.secret, offset=0)  # right, but too late
        self.assertEqual(response.status_code, 400)
        self.assertIn("Too many wrong codes", " ".join(response.context["sign_form"].errors["code"]))
        self.assertFalse(SignOut.objects.exists())
        self.assertEqual(self.refusals()[-1], "rate_limited")

    def test_a_recovery_code_is_no_signature(self):
        recovery = RecoveryCodes.activate(self.pathologist).get_unused_codes()[0]
        self.client.force_login(self.pathologist)
        self.assertEqual(post_sign_out(self.client, self.case, self.secret, code=recovery).status_code, 400)
        self.assertFalse(SignOut.objects.exists())


@override_settings(**TOLERANCE_1)
class StepUpServiceTests(BaseTestCase):
    """The services, without the views: the code is only spent once the checks pass."""

    def setUp(self):
        super().setUp()
        cache.clear()
        self.case, _ = analysed_case(self.lab, n_images=2, labels=["Pro", "Benign"])
        self.secret = activate_totp(self.pathologist)
        self.request = RequestFactory().post("/")
        self.request.user = self.pathologist

    def test_a_refused_sign_out_does_not_spend_the_code(self):
        code = totp_code(self.secret)
        interpretation = signout_service.Interpretation("no_evidence_of_all")
        with self.assertRaises(signout_service.SignOutRefused):  # nothing reviewed yet
            signout_service.sign_out_case(self.case, self.pathologist, self.request,
                                          interpretation=interpretation, totp_code=code)
        review_case(self.case, self.pathologist)
        with self.assertRaises(signout_service.InterpretationError):  # B-ALL without its subtype
            signout_service.sign_out_case(self.case, self.pathologist, self.request,
                                          interpretation=signout_service.Interpretation("consistent_with_b_all"),
                                          totp_code=code)
        sign_out = signout_service.sign_out_case(self.case, self.pathologist, self.request,
                                                 interpretation=interpretation, totp_code=code)
        self.assertEqual((sign_out.version, sign_out.diagnosis), (1, "no_evidence_of_all"))
        with self.assertRaises(StepUpRefused):
            verify_step_up(self.request, self.pathologist, code, action="amend", case=self.case)

    def test_interpretations_are_checked(self):
        cases = [
            (signout_service.Interpretation("suspicious"), "further studies"),
            (signout_service.Interpretation("no_evidence_of_all", subtype="pro_b"), "subtype goes only"),
            (signout_service.Interpretation("leukaemia"), "Choose the interpretation"),
            (signout_service.Interpretation("insufficient", comment="x" * 4001), "limit is 4,000"),
        ]
        for interpretation, message in cases:
            with self.subTest(interpretation=interpretation.diagnosis), self.assertRaisesMessage(
                signout_service.InterpretationError, message
            ):
                interpretation.cleaned()
        cleaned = signout_service.Interpretation("suspicious", further_studies="  Flow cytometry ").cleaned()
        self.assertEqual(cleaned.further_studies, "Flow cytometry")
        self.assertEqual(signout_service.Interpretation("insufficient", further_studies="PCR").cleaned().further_studies, "")
