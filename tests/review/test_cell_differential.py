"""The reviewed differential: counts and % per class, blasts over the nucleated white
cells, the count against the lab's target, the AI's differential beside it with their
agreement; and the signed blast % and WHO flag from the reviewed cells only."""

from __future__ import annotations

from django.core.cache import cache
from django.test import override_settings
from django.urls import reverse
from sklearn.metrics import cohen_kappa_score

from diagnostics.models import Specimen
from diagnostics.services.case_record import build_case_record, case_figures
from review.models import SignOut
from tests.base import BaseTestCase
from tests.factories import add_cells, analysed_case, review_case
from tests.review.cell_helpers import reclassify
from tests.review.helpers import activate_totp, post_sign_out

AI = ["blast", "blast", "blast", "lymphocyte", "lymphocyte", "neutrophil", "monocyte", "platelet", "artefact",
      "erythroblast", "blast", "lymphocyte"]
LOW = (11, 12)  # a low-confidence blast and lymphocyte: Unidentified until someone decides


class DifferentialTests(BaseTestCase):
    def setUp(self):
        super().setUp()
        # The image-level AI estimate: 8 blasts of 10 WBC (80 %, WHO flag) from the segmentation.
        self.case, self.images = analysed_case(self.lab, n_images=1, blasts=8)
        self.cells = add_cells(self.images[0].analyses.get(), AI, low=LOW)

    def test_before_any_decision_the_figures_are_the_ais(self):
        record = build_case_record(self.case)
        self.assertEqual(record.blast_source, "ai")
        self.assertEqual((record.blasts, record.blast_wbc, record.blast_fraction, record.who_flag), (8, 10, 0.8, True))
        # The AI differential counts every call; the reviewed one leaves the low-confidence calls out.
        ai, reviewed = record.ai_differential, record.reviewed_differential
        self.assertEqual((ai.blasts, ai.nucleated, ai.unidentified), (4, 9, 0))
        self.assertEqual((reviewed.blasts, reviewed.nucleated, reviewed.unidentified), (3, 7, 2))

    def test_counts_percentages_and_blasts_of_the_nucleated_white_cells(self):
        # Two blasts are lymphocytes; the low-confidence blast is confirmed; the low lymphocyte is an artefact.
        reclassify(self.case, self.pathologist, self.cells[0:2], "lymphocyte")
        reclassify(self.case, self.pathologist, [self.cells[10]], "blast")
        reclassify(self.case, self.pathologist, [self.cells[11]], "artefact")
        record = build_case_record(self.case)
        d = record.reviewed_differential
        self.assertEqual(d.counts["blast"], 2)
        self.assertEqual(d.counts["lymphocyte"], 4)
        self.assertEqual(d.counts["artefact"], 2)
        # Nucleated white cells: blast 2 + lymphocyte 4 + neutrophil 1 + monocyte 1 (no platelet, artefact, erythroblast).
        self.assertEqual((d.nucleated, d.unidentified), (8, 0))
        self.assertEqual(d.blast_fraction, 0.25)
        self.assertEqual((d.percent("blast"), d.percent("lymphocyte"), d.percent("neutrophil")), (25.0, 50.0, 12.5))
        self.assertEqual(d.percent("erythroblast"), 12.5)  # per 100 white cells
        self.assertIsNone(d.percent("platelet"))
        self.assertIsNone(d.percent("artefact"))
        self.assertEqual(sum(d.counts.values()), len(AI))
        # The case figures follow the reviewed cells.
        self.assertEqual(record.blast_source, "reviewed")
        self.assertEqual((record.blasts, record.blast_wbc, record.blast_fraction, record.blast_percent), (2, 8, 0.25, 25.0))
        self.assertTrue(record.who_flag)  # 25 % in a marrow aspirate
        reclassify(self.case, self.pathologist, [self.cells[2]], "monocyte")
        record = build_case_record(self.case)
        self.assertEqual(record.blast_fraction, 0.125)
        self.assertFalse(record.who_flag)

    def test_agreement_is_the_share_unchanged_and_cohens_kappa(self):
        reclassify(self.case, self.pathologist, self.cells[0:2], "lymphocyte")
        reclassify(self.case, self.pathologist, [self.cells[5]], "monocyte")
        reclassify(self.case, self.pathologist, [self.cells[10]], "blast")
        agreement = build_case_record(self.case).agreement
        # Compared: the 10 confident AI calls + the decided low-confidence blast; the undecided one is not.
        final = list(AI[:11])
        final[0] = final[1] = "lymphocyte"
        final[5] = "monocyte"
        self.assertEqual((agreement.compared, agreement.unchanged), (11, 8))
        self.assertEqual(agreement.percent_unchanged, round(100 * 8 / 11, 1))
        self.assertAlmostEqual(agreement.kappa, cohen_kappa_score(final, AI[:11]), places=4)

    def test_kappa_is_not_defined_with_one_class(self):
        case, images = analysed_case(self.lab, n_images=1)
        add_cells(images[0].analyses.get(), ["lymphocyte"] * 3)
        agreement = build_case_record(case).agreement
        self.assertEqual((agreement.compared, agreement.unchanged, agreement.kappa), (3, 3, None))

    def test_target_is_200_for_marrow_and_100_for_blood_and_the_page_warns_below(self):
        blood, images = analysed_case(self.lab, n_images=1, specimen=Specimen.PERIPHERAL_BLOOD)
        add_cells(images[0].analyses.get(), ["lymphocyte"] * 3)
        self.assertEqual(build_case_record(self.case).cell_target, 200)
        self.assertEqual(build_case_record(blood).cell_target, 100)
        self.client.force_login(self.pathologist)
        response = self.client.get(reverse("case_cells_differential", args=[self.case.pk]))
        self.assertContains(response, "Only 7 nucleated white cell(s) counted")
        self.assertContains(response, "target for a bone marrow aspirate differential is 200")
        with override_settings(DIFFERENTIAL_TARGET_MARROW=7):
            response = self.client.get(reverse("case_cells_differential", args=[self.case.pk]))
            self.assertNotContains(response, "nucleated white cell(s) counted:")
            self.assertContains(response, "7 of 7")

    def test_the_htmx_partial_shows_the_new_counts_after_a_change(self):
        self.client.force_login(self.pathologist)
        url = reverse("case_cells_differential", args=[self.case.pk])
        before = self.client.get(url, HTTP_HX_REQUEST="true")
        self.assertContains(before, '<strong id="reviewed-blast-percent">42.9%</strong>')
        self.assertContains(before, "No cell has been reviewed yet")
        reclassify(self.case, self.pathologist, self.cells[0:2], "lymphocyte")
        after = self.client.get(url, HTTP_HX_REQUEST="true")
        self.assertContains(after, '<strong id="reviewed-blast-percent">14.3%</strong>')
        self.assertContains(after, 'AI 44.4%')
        self.assertContains(after, "The signed blast % and WHO flag come from these reviewed cells")
        self.assertContains(after, 'hx-trigger="cells-changed from:body"')

    def test_the_review_page_says_the_blast_percent_is_of_reviewed_cells(self):
        self.client.force_login(self.pathologist)
        page = self.client.get(reverse("case_review", args=[self.case.pk]))
        self.assertContains(page, "8 (80.0% of WBC)")
        reclassify(self.case, self.pathologist, self.cells[0:2], "lymphocyte")
        page = self.client.get(reverse("case_review", args=[self.case.pk]))
        self.assertContains(page, "1 (14.3% of nucleated white cells")

    def test_case_figures_drop_the_not_validated_qualifier_for_reviewed_blasts(self):
        self.assertNotEqual(case_figures(self.case)["blast_qualifier"], "")  # demo cell model: not validated
        reclassify(self.case, self.pathologist, [self.cells[0]], "blast")
        figures = case_figures(self.case)
        self.assertEqual((figures["blast_qualifier"], figures["blast_source"], figures["blast_percent"]), ("", "reviewed", 42.9))


class SignedBlastsFromReviewedCellsTests(BaseTestCase):
    def setUp(self):
        super().setUp()
        cache.clear()
        self.case, self.images = analysed_case(self.lab, n_images=2, blasts=8)  # AI: 16 of 20 WBC, WHO flag
        self.cells = add_cells(self.images[0].analyses.get(), ["blast"] * 4 + ["lymphocyte"] * 6)
        self.cells += add_cells(self.images[1].analyses.get(), ["blast"] * 2 + ["neutrophil"] * 8)
        self.secret = activate_totp(self.pathologist)

    def sign(self):
        review_case(self.case, self.pathologist)
        self.client.force_login(self.pathologist)
        response = post_sign_out(self.client, self.case, self.secret)  # with a fresh TOTP code (step-up)
        self.assertEqual(response.status_code, 302)
        return SignOut.objects.get(case=self.case)

    def test_the_signed_blast_percent_and_who_flag_are_the_reviewed_cells(self):
        # The reviewer finds that 3 of the AI's 6 blasts are lymphocytes: 3 blasts of 20 nucleated = 15 %.
        reclassify(self.case, self.pathologist, self.cells[0:3], "lymphocyte")
        sign_out = self.sign()
        s = sign_out.summary
        self.assertEqual((s["blast_source"], s["blasts"], s["blast_wbc"], s["blast_fraction"], s["who_flag"]),
                         ("reviewed", 3, 20, 0.15, False))
        self.assertEqual(s["differential"]["counts"]["blast"], 3)
        self.assertEqual(s["differential"]["counts"]["lymphocyte"], 9)
        self.assertEqual(s["ai_differential"]["counts"]["blast"], 6)
        self.assertEqual(s["agreement"]["unchanged"], 17)
        self.assertEqual(s["cell_labels"][str(self.cells[0].pk)], "lymphocyte")
        self.assertEqual(s["cell_labels"][str(self.cells[3].pk)], "blast")
        self.assertEqual(len(s["cell_labels"]), 20)
        # The stored case summary (the worklist) agrees.
        self.case.refresh_from_db()
        self.assertEqual((self.case.summary["blast_fraction"], self.case.who_flag), (0.15, False))

    def test_without_a_cell_decision_the_ai_estimate_is_signed_and_says_so(self):
        s = self.sign().summary
        self.assertEqual((s["blast_source"], s["blast_fraction"], s["who_flag"]), ("ai", 0.8, True))
