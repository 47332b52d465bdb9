"""Domain questions are answered from docs/knowledge by retrieval, quoting the
passage and citing its document and section."""

from __future__ import annotations

from assistant import engine
from assistant.engine import Kind
from assistant.knowledge import excerpt, knowledge_base
from tests.base import BaseTestCase

QUESTIONS = {
    "What does Early Pre-B mean?": ("all-subtypes.md", "Early Pre-B ALL"),
    "What is Pro-B ALL?": ("all-subtypes.md", "Pro-B ALL"),
    "What are hematogones?": ("hematogones.md", None),
    "What is the WHO blast threshold?": ("who-blast-threshold.md", "The WHO 20% blast threshold"),
    "How does Grad-CAM work?": ("grad-cam.md", "What Grad-CAM is and how it works"),
    "How does watershed segmentation work?": ("watershed-segmentation.md", "How watershed segmentation works"),
    "How do I sign out a case?": ("using-marrow-find.md", "Signing out and amending"),
    "Can the demo model be used for diagnosis?": ("limitations.md", "The demo model is not for diagnosis"),
}


class KnowledgeAnswersTest(BaseTestCase):
    def test_domain_questions_cite_the_right_document(self):
        for question, (doc, heading) in QUESTIONS.items():
            with self.subTest(question=question):
                answer = engine.ask(self.pathologist, question)
                self.assertEqual(answer.kind, Kind.KNOWLEDGE)
                first = answer.sources[0]
                self.assertEqual(first["doc"], doc)
                if heading:
                    self.assertEqual(first["section"], heading)
                passage = knowledge_base().passage(first["doc"], first["section"])
                self.assertIn(excerpt(passage.text), answer.text)  # a quotation, not a paraphrase
                self.assertIn("[1]", answer.text)
                self.assertTrue(first["references"] or doc == "using-marrow-find.md", first)

    def test_the_who_answer_states_the_threshold(self):
        answer = engine.ask(self.technician, "What is the WHO blast threshold?")
        self.assertIn("20%", answer.text)

    def test_british_spelling_finds_the_same_document(self):
        self.assertEqual(engine.ask(self.technician, "what is a haematogone").sources[0]["doc"], "hematogones.md")
