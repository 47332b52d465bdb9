"""Once a case is signed out the assistant answers with the signed result (the
interpretation, the signed labels and blast %), the AI's beside it and marked
as the AI's; before sign-out it says there is no diagnosis yet. Real rows
(tests/factories.analysed_case, drawn=True), the real engine."""

from __future__ import annotations

from assistant import engine, intents
from assistant.engine import Kind
from tests.base import BaseTestCase
from tests.factories import analysed_case, record_sign_out, review_case


class SignedResultAnswersTest(BaseTestCase):
    def setUp(self):
        super().setUp()
        self.built = analysed_case(self.lab, drawn=True, labels=["Pro", "Pre", "Benign"], blasts=[4, 1, 0])
        review_case(self.built, self.pathologist, labels={2: "Pro"})  # image 2: the pathologist says Pro-B

    def ask(self, question: str) -> engine.Answer:
        return engine.ask(self.pathologist, question, self.built.case)

    def sign(self):
        return record_sign_out(self.built, self.pathologist, diagnosis="consistent_with_b_all",
                               diagnosis_subtype="pro_b", diagnosis_comment="Sheets of blasts",
                               signer_name="Patricia Okafor", signer_credentials="MD, FRCPath")

    def test_no_diagnosis_before_sign_out(self):
        answer = self.ask("What is the diagnosis?")
        self.assertEqual(answer.kind, Kind.CASE)
        self.assertIn("has not been signed out, so it has no diagnosis yet", answer.text)
        self.assertIn("The AI labels so far (not a diagnosis): Benign (hematogone) 1, Pre-B ALL 1, Pro-B ALL 1", answer.text)

    def test_the_signed_interpretation_and_figures_lead_with_the_ai_beside(self):
        signed = self.sign()
        fraction = signed.summary["blast_fraction"]
        answer = self.ask("What is the diagnosis?")
        self.assertIn("was signed out (version 1) by Patricia Okafor, MD, FRCPath", answer.text)
        self.assertIn("Consistent with B-ALL (Pro-B)", answer.text)
        self.assertIn("Comment: “Sheets of blasts”", answer.text)
        self.assertIn("Signed labels: Benign (hematogone) 1, Pro-B ALL 2", answer.text)
        self.assertIn(f"Signed (version 1): 5 blast(s) among {signed.summary['blast_wbc']} white cells: {100 * fraction:.1f}%", answer.text)
        self.assertIn("AI estimate:", answer.text)

        summary = self.ask("summarise this case").text
        self.assertLess(summary.index("Consistent with B-ALL"), summary.index("Beside it, the AI"))
        self.assertIn("labels Benign (hematogone) 1, Pre-B ALL 1, Pro-B ALL 1", summary)  # the AI's, marked

        per_label = self.ask("how many images were labelled Pro-B?").text
        self.assertIn("images per signed label (version 1): Benign (hematogone) 1, Pro-B ALL 2", per_label)
        self.assertIn("Images per AI label (the model's, before review): Benign (hematogone) 1, Pre-B ALL 1, Pro-B ALL 1", per_label)

        image = self.ask("tell me about image 2").text
        self.assertIn("Its signed label is Pro-B ALL (the AI's was Pre-B ALL)", image)

    def test_a_question_about_diagnosing_in_general_is_not_about_this_case(self):
        self.assertEqual(intents.parse("What is the diagnosis of ALL based on?").intent, intents.Intent.DOMAIN)
        self.assertEqual(intents.parse("was this case signed out?").intent, intents.Intent.DIAGNOSIS)
        self.assertEqual(intents.parse("who signed it").intent, intents.Intent.DIAGNOSIS)
