"""The verify page serves the paper: for an authentic signed report it shows the
accession number, version and status, signed date, signer, diagnosis category,
blast % and the images per signed class, from the very version the paper was
made from (a superseded paper shows its own figures), and nothing that names
the patient. A draft shows none of it."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from django.core.cache import cache

from reports import rendering as report_rendering
from reports import services as reports
from tests.base import BaseTestCase
from tests.factories import analysed_case, record_sign_out, review_case
from tests.reports.pdftools import pdf_text


def text_of(response) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.content.decode()))


class VerifyPageFiguresTest(BaseTestCase):
    def setUp(self) -> None:
        super().setUp()
        cache.clear()
        self.built = analysed_case(self.lab, drawn=True, labels=["Pro", "Pro", "Benign"], blasts=[3, 2, 0],
                                clinical_note="Secret clinical detail", patient_pseudonym="PSEUDO-4711")
        review_case(self.built, self.pathologist)
        record_sign_out(self.built, self.pathologist, diagnosis="consistent_with_b_all", diagnosis_subtype="pro_b",
                 diagnosis_comment="Patient PSEUDO-4711 known to the clinic", signer_name="Patricia Okafor",
                 signer_credentials="MD, FRCPath")
        self.v1 = reports.create_final_report(self.built.case.pk, self.pathologist.pk, 1)

    def verify(self, report):
        self.client.logout()
        return self.client.get(urlsplit(report_rendering.verify_url(report)).path)

    def test_a_signed_report_shows_what_its_paper_must_show(self):
        page = self.verify(self.v1)
        self.assertEqual(page.status_code, 200)
        text = text_of(page)
        summary = self.built.case.sign_outs.get(version=1).summary
        percent = f"{100 * summary['blast_fraction']:.1f}%"
        for expected in (self.built.case.accession_number, "Report version 1 · final", "Patricia Okafor, MD, FRCPath",
                         "Diagnosis Consistent with B-ALL (Pro-B)", f"Blast % {percent} (5 of {summary['blast_wbc']} white cells)",
                         "Images per class Benign (hematogone) 1 · Pro-B ALL 2", f"White cells {summary['wbc']}"):
            self.assertIn(expected, text)
        self.assertIn(f"Blast % {percent}", re.sub(r"\s+", " ", pdf_text(bytes(self.v1.pdf))))  # the same figure on paper
        for hidden in ("PSEUDO-4711", "Secret clinical detail", "known to the clinic"):
            self.assertNotIn(hidden, page.content.decode())

    def test_a_superseded_paper_shows_its_own_version(self):
        from diagnostics.models import Case, CaseStatus

        Case.objects.filter(pk=self.built.case.pk).update(status=CaseStatus.AWAITING_REVIEW)
        review_case(self.built, self.pathologist, labels={1: "Benign", 2: "Benign"})
        record_sign_out(self.built, self.pathologist, reason="recount", diagnosis="no_evidence_of_all",
                 signer_name="Patricia Okafor")
        v2 = reports.create_final_report(self.built.case.pk, self.pathologist.pk, 2)
        old, new = text_of(self.verify(self.v1)), text_of(self.verify(v2))
        self.assertIn("Authentic but superseded", old)
        self.assertIn("Diagnosis Consistent with B-ALL (Pro-B)", old)
        self.assertIn("Images per class Benign (hematogone) 1 · Pro-B ALL 2", old)
        self.assertIn("Authentic and current", new)
        self.assertIn("Diagnosis No evidence of ALL", new)
        self.assertIn("Images per class Benign (hematogone) 3", new)

    def test_a_draft_shows_no_figures(self):
        draft = reports.create_draft_report(self.built.case, self.pathologist)
        page = self.verify(draft)
        self.assertEqual(page.context["state"], "draft")
        self.assertIsNone(page.context["figures"])
        self.assertNotIn("Blast %", text_of(page))
