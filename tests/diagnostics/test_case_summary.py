"""Case-level results: images per class, cells, blasts and blast % where determined, the WHO flag."""

from __future__ import annotations

from diagnostics.models import Analysis, Specimen
from diagnostics.services.cases import summarise_case
from tests.base import BaseTestCase
from tests.factories import ModelVersionFactory, analysed_case


def counted(wbc: int) -> dict:
    """An image's counts: ``wbc`` white cells, 100 red cells, 4 platelets."""
    return {"wbc": wbc, "rbc": 100, "platelet": 4}


class CaseSummaryTests(BaseTestCase):
    def test_counts_and_blast_fraction_of_a_marrow_case(self) -> None:
        case = analysed_case(self.lab, labels=["Pro", "Benign", "Pre"], failed=(3,),
                             cell_counts=[counted(20), counted(10), None], blasts=[5, 3, None]).case
        summary = summarise_case(case)
        self.assertEqual((summary["images"], summary["analysed"], summary["failed"]), (3, 2, 1))
        self.assertEqual(summary["per_class"], {"Benign": 1, "Pro": 1})
        self.assertEqual(summary["binary"], {"ALL": 1, "normal": 1})
        self.assertEqual((summary["wbc"], summary["rbc"], summary["platelet"]), (30, 200, 8))
        self.assertEqual(summary["cells"], 238)
        self.assertEqual((summary["blasts"], summary["blast_wbc"]), (8, 30))
        self.assertAlmostEqual(summary["blast_fraction"], 8 / 30, places=4)
        self.assertTrue(summary["who_flag"])
        self.assertTrue(summary["demo"])

    def test_the_threshold_is_inclusive_at_20_percent(self) -> None:
        at_20 = analysed_case(self.lab, labels=["Pro"], cell_counts=counted(50), blasts=10).case
        under_20 = analysed_case(self.lab, labels=["Pro"], cell_counts=counted(50), blasts=9).case
        self.assertTrue(summarise_case(at_20)["who_flag"])
        self.assertFalse(summarise_case(under_20)["who_flag"])

    def test_no_who_flag_for_peripheral_blood(self) -> None:
        summary = summarise_case(analysed_case(self.lab, labels=["Pro"], specimen=Specimen.PERIPHERAL_BLOOD,
                                               cell_counts=counted(10), blasts=9).case)
        self.assertAlmostEqual(summary["blast_fraction"], 0.9)
        self.assertFalse(summary["who_flag"])

    def test_undetermined_blasts_never_read_as_zero(self) -> None:
        case = analysed_case(self.lab, labels=["Pro", "Benign"], cell_counts=[counted(20), counted(10)]).case
        summary = summarise_case(case)
        self.assertIsNone(summary["blasts"])
        self.assertIsNone(summary["blast_fraction"])
        self.assertFalse(summary["who_flag"])
        self.assertEqual(summary["wbc"], 30)

    def test_fraction_uses_only_the_images_where_blasts_were_determined(self) -> None:
        case = analysed_case(self.lab, labels=["Pro", "Benign"], cell_counts=[counted(40), counted(10)],
                             blasts=[None, 2]).case
        summary = summarise_case(case)
        self.assertEqual((summary["blasts"], summary["blast_wbc"]), (2, 10))
        self.assertAlmostEqual(summary["blast_fraction"], 0.2)
        self.assertTrue(summary["who_flag"])

    def test_no_demo_flag_for_a_real_model_and_newest_analysis_wins(self) -> None:
        real = ModelVersionFactory(is_demo=False, binary_map=None)
        case = analysed_case(self.lab, labels=["Pro"], cell_counts=counted(10), blasts=1, model=real).case
        summary = summarise_case(case)
        self.assertFalse(summary["demo"])
        self.assertEqual(summary["binary"], {})
        # A re-analysis by a newer model version replaces the label in the summary.
        image = case.images.get(position=1)
        newer = ModelVersionFactory(is_demo=False)
        Analysis.objects.create(image=image, model_version=newer, label="Benign", probabilities={"Benign": 1.0},
                                confidence=1.0, cell_counts={"wbc": 10}, blasts=1)
        self.assertEqual(summarise_case(case)["per_class"], {"Benign": 1})
