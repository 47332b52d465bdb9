"""After sign-out the API gives the signed result as the result: the summary's
``signed`` block (diagnosis, signed labels, blast %, signer) with ``result:
"signed"``, and each image's ``signed_label`` beside its ``ai_label``. Signed
through the real sign-out service (TOTP step-up included)."""

from __future__ import annotations

from django.test import RequestFactory

from review import signout as signout_service
from tests.api.helpers import ApiTestCase
from tests.factories import ReviewFactory
from tests.review.helpers import activate_totp, totp_code


class SignedResultApiTests(ApiTestCase):
    def sign(self, case, made, **interpretation):
        for _image, analysis in made[1:]:
            ReviewFactory(analysis=analysis, reviewer=self.pathologist, label=analysis.label)
        secret = activate_totp(self.pathologist)
        request = RequestFactory().post("/")
        request.user = self.pathologist
        return signout_service.sign_out_case(
            case, self.pathologist, request, interpretation=signout_service.Interpretation(**interpretation),
            totp_code=totp_code(secret),
        )

    def test_before_sign_out_the_result_is_the_ai_s(self):
        case, _ = self.make_analysed_case(images=2)
        body = self.api.get(self.url("api-case-summary", pk=case.pk)).json()
        self.assertEqual((body["result"], body["signed"]), ("ai", None))
        image = self.api.get(self.url("api-case-images", pk=case.pk)).json()["results"][0]
        self.assertEqual((image["ai_label"], image["signed_label"]), ("Pre", None))

    def test_after_sign_out_the_signed_result_leads_and_the_ai_sits_beside(self):
        case, made = self.make_analysed_case(images=3)  # image 1 was relabelled Pro by the pathologist
        for _, analysis in made:
            analysis.blasts = 3
            analysis.save()
        self.sign(case, made, diagnosis="consistent_with_b_all", subtype="pro_b", comment="Pro-B pattern")
        body = self.api.get(self.url("api-case-summary", pk=case.pk)).json()
        self.assertEqual(body["result"], "signed")
        signed = body["signed"]
        self.assertEqual((signed["version"], signed["diagnosis"], signed["diagnosis_subtype"]),
                         (1, "consistent_with_b_all", "pro_b"))
        self.assertEqual(signed["diagnosis_text"], "Consistent with B-ALL (Pro-B)")
        self.assertEqual(signed["comment"], "Pro-B pattern")
        self.assertEqual(signed["per_class"], {"Pre": 2, "Pro": 1})  # signed labels
        self.assertEqual(body["per_class"], {"Pre": 3})  # the AI's, beside
        self.assertEqual((signed["blasts"], signed["blast_wbc"], signed["blast_percent"]), (9, 30, 30.0))
        self.assertEqual(signed["signed_by"], self.pathologist.email)
        images = {i["position"]: i for i in self.api.get(self.url("api-case-images", pk=case.pk)).json()["results"]}
        self.assertEqual((images[1]["signed_label"], images[1]["ai_label"]), ("Pro", "Pre"))
        one = self.api.get(self.url("api-image-detail", pk=case.pk, image_pk=images[1]["id"])).json()
        self.assertEqual(one["signed_label"], "Pro")

    def test_the_outsider_still_gets_404(self):
        case, made = self.make_analysed_case(images=2)
        self.sign(case, made, diagnosis="no_evidence_of_all")
        for name, kwargs in (("api-case-summary", {"pk": case.pk}), ("api-case-images", {"pk": case.pk})):
            with self.subTest(name):
                self.assertApiError(self.outsider_api.get(self.url(name, **kwargs)), 404)
