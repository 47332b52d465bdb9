"""One blast % for a signed case, rounded once from the counts: 27 blasts of 41 white cells is
65.9 % (65.85...), on the case record, the case summary, the signed snapshot, the gallery's
differential, the PDF and the assistant alike. (Rounding the stored 4-decimal fraction, 0.6585, a second time
gave 65.8 % in the snapshot beside a 65.9 % blast row; bench/review_real_case.py found it on a
real all4class case.)"""

from __future__ import annotations

import re

from django.core.cache import cache
from django.test import RequestFactory
from django.urls import reverse

from reports import services as reports
from review import signout as signout_service
from tests.base import BaseTestCase
from tests.factories import add_cells, analysed_case, review_case
from tests.reports.pdftools import pdf_text
from tests.review.cell_helpers import reclassify
from tests.review.helpers import activate_totp, totp_code


def squash(text: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", text))


class BlastPercentRoundedOnceTest(BaseTestCase):
    def test_27_of_41_reads_65_9_everywhere(self):
        from diagnostics.services.case_record import build_case_record

        cache.clear()
        case, images = analysed_case(self.lab, n_images=1, blasts=28)
        cells = add_cells(images[0].analyses.get(), ["blast"] * 28 + ["lymphocyte"] * 13)
        reclassify(case, self.pathologist, cells[:1], "lymphocyte")  # 27 blasts of 41

        record = build_case_record(case)
        self.assertEqual((record.blasts, record.blast_wbc), (27, 41))
        self.assertEqual(record.blast_percent, 65.9)
        self.assertEqual(record.reviewed_differential.percent("blast"), 65.9)
        self.assertEqual(record.reviewed_differential.blast_percent, 65.9)
        case.refresh_from_db()
        self.assertEqual(case.summary["blast_percent"], 65.9)

        self.client.force_login(self.pathologist)
        partial = squash(self.client.get(reverse("case_cells_differential", args=[case.pk])).content.decode())
        self.assertIn("65.9", partial)
        self.assertNotIn("65.8", partial)

        review_case(case, self.pathologist)
        request = RequestFactory().post("/")
        request.user = self.pathologist
        signed = signout_service.sign_out_case(
            case, self.pathologist, request, totp_code=totp_code(activate_totp(self.pathologist)),
            interpretation=signout_service.Interpretation("suspicious", further_studies="flow cytometry"),
        )
        self.assertEqual(signed.summary["blast_percent"], 65.9)
        text = squash(pdf_text(bytes(reports.create_final_report(case.pk, self.pathologist.pk, 1).pdf)))
        self.assertIn("Blast % 65.9%", text)
        self.assertIn("Blast 27 65.9% 28", text)
        self.assertNotIn("65.8", text)

        from assistant.answers import blast_line
        from assistant.facts import case_facts

        answer = blast_line(case_facts(case))
        self.assertIn("Signed (version 1): 27 blast(s) among 41 white cells: 65.9%", answer)
        self.assertNotIn("65.8", answer)
