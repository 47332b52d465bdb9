"""An image excluded as not assessable: the signed PDF lists it with its reason and
who excluded it, and leaves it out of the figures (counts, blasts, class table).
Read back from the rendered PDF with pypdf."""

from __future__ import annotations

import re
import uuid

from diagnostics.models import ExclusionReason, Role
from reports import services as reports
from review import services as review_service
from tests.base import BaseTestCase
from tests.factories import LabFactory, MembershipFactory, UserFactory, analysed_case, record_sign_out, review_case
from tests.reports.pdftools import pdf_text


def _squash(text: str) -> str:
    return re.sub(r"\s+", " ", text)


class ReportExclusionsTest(BaseTestCase):
    @classmethod
    def setUpTestData(cls) -> None:
        super().setUpTestData()
        lab = LabFactory(name="Lab A", slug="lab-a")
        cls.signer = UserFactory(username="hkahn", email="hkahn@lab-a.org", first_name="Hana", last_name="Kahn")
        MembershipFactory(user=cls.signer, lab=lab, role=Role.PATHOLOGIST)
        cls.built = analysed_case(lab, drawn=True, labels=["Pro", "Pre", "Benign"], blasts=[5, 1, 0])
        review_case(cls.built, cls.signer, only={1, 3})
        review_service.record_review(
            image=cls.built.images[1], reviewer=cls.signer, exclusion=ExclusionReason.WRONG_STAIN,
            submission_token=uuid.uuid4(),
        )
        record_sign_out(cls.built, cls.signer)
        cls.report = reports.create_final_report(cls.built.case.pk, cls.signer.pk, 1)
        cls.text = _squash(pdf_text(bytes(cls.report.pdf)))

    def test_the_report_lists_the_excluded_image_with_its_reason(self):
        self.assertIn("Excluded images (not assessable)", self.text)
        self.assertRegex(self.text, r"# File Reason Excluded by 2 smear-2\.png Wrong stain hkahn@lab-a\.org")
        self.assertIn("1 excluded as not assessable", self.text)
        self.assertIn("Excluded: Wrong stain", self.text)  # in the image table, instead of a label

    def test_the_figures_leave_the_excluded_image_out(self):
        analyses = self.built.analyses
        wbc = analyses[1].cell_counts["wbc"] + analyses[3].cell_counts["wbc"]
        self.assertIn(f"5 of {wbc} white cells", self.text)
        self.assertIn(f"WBC {wbc}", self.text)
        # Class table: AI label and signed, over the two images that count.
        self.assertIn("Images per class AI label Signed Benign (hematogone) 1 1 Early Pre-B ALL 0 0 Pre-B ALL 0 0 Pro-B ALL 1 1", self.text)

    def test_a_report_without_exclusions_has_no_such_section(self):
        other = analysed_case(self.built.case.lab, drawn=True, labels=["Pro"], blasts=[1])
        review_case(other, self.signer)
        record_sign_out(other, self.signer)
        text = _squash(pdf_text(bytes(reports.create_final_report(other.case.pk, self.signer.pk, 1).pdf)))
        self.assertNotIn("Excluded images", text)
        self.assertNotIn("excluded as not assessable", text)
