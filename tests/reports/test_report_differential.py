"""The signed report and its verify page print the reviewed cell differential:
after the pathologist reclassifies cells, the PDF's differential table, its
blast % and the verify page's figures are the reviewed cells' counts, with the
AI's calls beside them. Real rows, the real sign-out service (TOTP step-up) and
the real report task."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from django.core.cache import cache
from django.test import RequestFactory

from reports import rendering as report_rendering
from reports import services as reports
from review import signout as signout_service
from tests.base import BaseTestCase
from tests.factories import add_cells, analysed_case, review_case
from tests.reports.pdftools import pdf_text
from tests.review.cell_helpers import reclassify
from tests.review.helpers import activate_totp, totp_code


def squash(text: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", text))


class ReportDifferentialTest(BaseTestCase):
    def test_the_pdf_and_verify_page_show_the_reviewed_differential(self):
        cache.clear()
        case, images = analysed_case(self.lab, n_images=2, blasts=8)
        cells = add_cells(images[0].analyses.get(), ["blast"] * 4 + ["lymphocyte"] * 6)
        cells += add_cells(images[1].analyses.get(), ["blast"] * 2 + ["neutrophil"] * 8)
        reclassify(case, self.pathologist, cells[0:3], "lymphocyte")  # 3 of the AI's 6 blasts: 3 of 20 = 15 %
        review_case(case, self.pathologist)
        request = RequestFactory().post("/")
        request.user = self.pathologist
        signed = signout_service.sign_out_case(
            case, self.pathologist, request, totp_code=totp_code(activate_totp(self.pathologist)),
            interpretation=signout_service.Interpretation("suspicious", further_studies="flow cytometry"),
        )
        self.assertEqual((signed.summary["blast_source"], signed.summary["blast_fraction"]), ("reviewed", 0.15))
        report = reports.create_final_report(case.pk, self.pathologist.pk, 1)

        text = squash(pdf_text(bytes(report.pdf)))
        self.assertIn("Cell differential (reviewed cells) Reviewed % of nucleated AI", text)
        self.assertIn("Blast 3 15.0% 6", text)
        self.assertIn("Lymphocyte 9 45.0% 6", text)
        self.assertIn("Neutrophil 8 40.0% 8", text)
        self.assertIn("Blast % 15.0%", text)
        self.assertIn("The blast % is the reviewed cells' count.", text)

        self.client.logout()
        page = squash(self.client.get(urlsplit(report_rendering.verify_url(report)).path).content.decode())
        self.assertIn("Blast % 15.0% (3 of 20 white cells)", page)
        self.assertIn("Cell differential (reviewed) Blast 3 · Lymphocyte 9 · Neutrophil 8", page)
        self.assertIn("Suspicious for ALL, further studies advised", page)
