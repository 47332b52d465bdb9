"""A final report states the case, the summary, every image, the model and its
validation metrics, the signer, page numbers, and the demo warning when a
demo model made any result. Read back from the PDF with pypdf."""

from __future__ import annotations

import hashlib
import re

from diagnostics.models import Role
from reports import services as reports
from reports.models import Report, ReportStatus
from tests.base import BaseTestCase
from tests.factories import (
    LabFactory,
    MembershipFactory,
    ModelVersionFactory,
    UserFactory,
    analysed_case,
    record_sign_out,
    review_case,
)
from tests.reports.pdftools import page_texts, pdf_text


def _squash(text: str) -> str:
    return re.sub(r"\s+", " ", text)


class ReportContentsTest(BaseTestCase):
    @classmethod
    def setUpTestData(cls) -> None:
        super().setUpTestData()
        # Rendered once for the class (a report takes seconds), after the base users.
        lab = LabFactory(name="Lab A", slug="lab-a")
        cls.signer = UserFactory(username="pmoreau", email="pmoreau@lab-a.org", first_name="Patricia", last_name="Moreau")
        MembershipFactory(user=cls.signer, lab=lab, role=Role.PATHOLOGIST)
        cls.built = analysed_case(
            lab, drawn=True,
            labels=["Pro", "Pre", "Early", "Benign", "Pro"],
            confidences=[0.91, 0.52, 0.88, 0.97, 0.8],
            blasts=[2, None, 1, 0, 1],
            failed=(5,),
            clinical_note="Pancytopenia; rule out ALL.",
        )
        review_case(cls.built, cls.signer, {2: "Early"})
        record_sign_out(cls.built, cls.signer)
        cls.report = reports.create_final_report(cls.built.case.pk, cls.signer.pk, 1)
        cls.text = _squash(pdf_text(bytes(cls.report.pdf)))

    def test_row_and_hash_commit_together(self):
        stored = Report.objects.get(pk=self.report.pk)
        self.assertEqual(stored.status, ReportStatus.FINAL)
        self.assertEqual(stored.sha256, hashlib.sha256(bytes(stored.pdf)).hexdigest())
        self.assertTrue(bytes(stored.pdf).startswith(b"%PDF"))
        self.assertEqual(len(stored.content_sha256), 64)

    def test_header_case_fields_and_specimen(self):
        case = self.built.case
        for expected in ("Lab A", case.accession_number, case.patient_pseudonym, "Bone marrow aspirate",
                         "Wright-Giemsa", "Pancytopenia; rule out ALL.", "FINAL REPORT", "version 1"):
            self.assertIn(expected, self.text)

    def test_summary_numbers_come_from_the_analyses(self):
        analyses = self.built.analyses.values()
        wbc = sum(a.cell_counts["wbc"] for a in analyses)
        determined = [a for a in analyses if a.blasts is not None]
        blasts = sum(a.blasts for a in determined)
        blast_wbc = sum(a.cell_counts["wbc"] for a in determined)
        self.assertIn(f"WBC {wbc}", self.text)
        self.assertIn(f"{blasts} of {blast_wbc} white cells", self.text)
        self.assertIn(f"{100 * blasts / blast_wbc:.1f}%", self.text)
        flagged = blasts / blast_wbc >= 0.20
        self.assertEqual("FLAGGED" in self.text, flagged, self.text[:1500])
        self.assertIn("4 analysed, 1 failed", self.text)

    def test_every_image_row(self):
        for position, analysis in self.built.analyses.items():
            self.assertIn(f"smear-{position}.png", self.text)
            self.assertIn(f"({analysis.confidence:.2f})", self.text)
        self.assertIn("overridden", self.text)  # image 2: Pre-B -> Early Pre-B by the reviewer
        self.assertIn("low confidence", self.text)  # image 2 at 0.52
        self.assertIn("n.d.", self.text)  # image 2: blasts not determined
        self.assertIn("Failed: The file is truncated", self.text)  # image 5

    def test_model_and_its_measured_metrics(self):
        model = self.built.model
        self.assertIn(model.name, self.text)
        self.assertIn(model.sha256[:16], self.text)
        self.assertIn(f"accuracy {model.metrics['accuracy']:.3f}", self.text)
        self.assertIn(f"Cohen's kappa {model.metrics['kappa']:.3f}", self.text)
        pre_b = model.metrics["per_class"]["Pre"]
        self.assertIn(f"Pre-B ALL {pre_b['precision']:.3f} {pre_b['recall']:.3f} {pre_b['f1']:.3f}", self.text)

    def test_signer_time_and_page_numbers(self):
        self.assertIn("Patricia Moreau", self.text)
        self.built.case.refresh_from_db()
        self.assertIn(self.built.case.signed_out_at.strftime("%Y-%m-%d %H:%M:%S"), self.text)
        pages = page_texts(bytes(self.report.pdf))
        for number, page in enumerate(pages, start=1):
            self.assertIn(f"Page {number} of {len(pages)}", _squash(page))

    def test_demo_warning_on_every_page(self):
        self.assertTrue(self.report.demo)
        for page in page_texts(bytes(self.report.pdf)):
            self.assertIn("DEMO MODEL, NOT FOR DIAGNOSIS", _squash(page))


class RealModelReportTest(BaseTestCase):
    def test_no_demo_warning_without_a_demo_model(self):
        real = ModelVersionFactory(validated=True, is_demo=False)
        built = analysed_case(self.lab, drawn=True, labels=["Pro", "Benign"], model=real)
        review_case(built, self.pathologist)
        record_sign_out(built, self.pathologist)
        report = reports.create_final_report(built.case.pk, self.pathologist.pk, 1)
        self.assertFalse(report.demo)
        self.assertNotIn("DEMO MODEL", pdf_text(bytes(report.pdf)))
