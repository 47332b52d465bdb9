"""An amendment's signed figures are those of the reviews made for it: an image excluded
during the amendment leaves version 2's figures, although version 1 counted it."""

from __future__ import annotations

import uuid

from django.core.cache import cache
from django.test import RequestFactory, override_settings

from diagnostics.models import ExclusionReason
from review import services as review_service
from review import signout as signout_service
from review.models import SignOut
from tests.base import BaseTestCase
from tests.review.helpers import TOLERANCE_1, activate_totp, make_analysed_case, review_all, totp_code


@override_settings(**TOLERANCE_1)  # three valid codes at once: offsets -1, 0, +1
class AmendmentFiguresTests(BaseTestCase):
    def setUp(self):
        super().setUp()
        cache.clear()
        self.case, self.images = make_analysed_case(self.lab, n_images=3, labels=["Pro", "Pre", "Benign"])
        self.secret = activate_totp(self.pathologist)
        self.request = RequestFactory().post("/")
        self.request.user = self.pathologist

    def sign(self, offset: int) -> SignOut:
        return signout_service.sign_out_case(
            self.case, self.pathologist, self.request,
            interpretation=signout_service.Interpretation("no_evidence_of_all"),
            totp_code=totp_code(self.secret, offset=offset))

    def test_an_image_excluded_in_the_amendment_leaves_the_new_figures(self):
        review_all(self.case, self.pathologist)
        first = self.sign(-1)
        self.assertEqual((first.summary["excluded"], first.summary["analysed"]), (0, 3))
        signout_service.open_amendment(self.case, self.pathologist, "image 1 is a tissue section",
                                       request=self.request, totp_code=totp_code(self.secret, offset=0))
        review_service.record_review(image=self.images[0], reviewer=self.pathologist,
                                     exclusion=ExclusionReason.TISSUE_SECTION, submission_token=uuid.uuid4())
        second = self.sign(1)
        self.assertEqual(second.version, 2)
        self.assertEqual(second.summary["excluded"], 1)
        self.assertEqual(second.labels[str(self.images[0].pk)]["exclusion"], ExclusionReason.TISSUE_SECTION)
        self.assertEqual(second.summary["wbc"], first.summary["wbc"] - self.images[0].analyses.get().cell_counts["wbc"])
        self.assertNotIn("Pro", second.summary["per_class"])  # image 1 (Pro) no longer counts
