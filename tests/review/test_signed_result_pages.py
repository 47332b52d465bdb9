"""After sign-out the pages show the signed result first and the AI's beside it,
marked as the AI's: the case page (diagnosis, signed labels and blast %, a
signed-label column), the worklist and the history (diagnosis, signed blast %
with the AI's under it). The outsider sees none of it."""

from __future__ import annotations

import re

from django.urls import reverse

from diagnostics.models import Case
from diagnostics.services.case_record import build_case_record
from tests.base import BaseTestCase
from tests.factories import analysed_case, record_sign_out, review_case


def text_of(response) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.content.decode()))


class SignedResultPagesTest(BaseTestCase):
    def setUp(self):
        super().setUp()
        self.built = analysed_case(self.lab, drawn=True, labels=["Pro", "Pre", "Benign"], blasts=[4, 1, 0])
        review_case(self.built, self.pathologist, labels={2: "Pro"})
        first = self.built.analyses[2].reviews.get()
        first.comment = "Fine chromatin"
        first.save()

    def sign(self):
        return record_sign_out(self.built, self.pathologist, diagnosis="consistent_with_b_all",
                               diagnosis_subtype="pro_b", diagnosis_comment="Sheets of blasts",
                               signer_name="Patricia Okafor", signer_credentials="MD, FRCPath")

    def test_case_page_before_and_after_sign_out(self):
        self.client.force_login(self.technician)
        url = reverse("case_detail", args=[self.built.case.pk])
        before = self.client.get(url)
        self.assertNotContains(before, 'id="signed-result"')
        self.assertNotContains(before, "Signed label")

        signed = self.sign()
        page = self.client.get(url)
        text = text_of(page)
        self.assertContains(page, 'id="signed-result"')
        self.assertIn("Signed result version 1", text)
        self.assertIn("Diagnosis Consistent with B-ALL (Pro-B)", text)
        self.assertIn("Images per signed label Benign: 1 Pro: 2", text)
        self.assertIn(f"= {signed.summary['blast_percent']}%", text)
        self.assertIn("Patricia Okafor, MD, FRCPath", text)
        self.assertIn("AI estimate model, before review", text)
        self.assertIn("Images per AI label Benign: 1 Pre: 1 Pro: 1", text)
        # The image table: the signed label first, changed from the AI's, with the comment; the AI's marked.
        self.assertIn("Pro changed from AI “Fine chromatin” AI: Pre", text)

    def test_worklist_and_history_rows(self):
        self.client.force_login(self.pathologist)
        # What the pipeline writes when the case finishes: the AI's figures, which the rows read.
        record = build_case_record(self.built.case)
        Case.objects.filter(pk=self.built.case.pk).update(summary=record.summary())
        ai = record.blast_percent
        signed = self.sign()
        self.assertIsNotNone(ai)
        for name in ("worklist", "case_history"):
            with self.subTest(name):
                query = "?scope=all" if name == "worklist" else ""
                text = text_of(self.client.get(reverse(name) + query))
                self.assertIn(self.built.case.accession_number, text)
                self.assertIn(f"{signed.summary['blast_percent']}% signed AI {ai}%", text)
                self.assertIn("Consistent with B-ALL (Pro-B)", text)

    def test_the_outsider_sees_nothing_of_it(self):
        self.sign()
        self.client.force_login(self.outsider)
        self.assertEqual(self.client.get(reverse("case_detail", args=[self.built.case.pk])).status_code, 404)
        for name in ("worklist", "case_history"):
            with self.subTest(name):
                page = self.client.get(reverse(name) + ("?scope=all" if name == "worklist" else ""))
                self.assertNotContains(page, self.built.case.accession_number)
                self.assertNotContains(page, "Consistent with B-ALL")
