"""A question the knowledge base does not cover gets an honest "I don't know"
with what the assistant can answer, no sources, and no language-model call."""

from __future__ import annotations

from django.test import override_settings

from assistant import answers, engine
from assistant.engine import Kind
from tests.assistant.fakellm import FakeChatServer
from tests.base import BaseTestCase

OFF_TOPIC = [
    "What is the capital of France?",
    "What is the recommended dose of vincristine?",
    "How do I bake sourdough bread?",
    "What is the weather today?",
]


class IDontKnowTest(BaseTestCase):
    def test_off_topic_questions(self):
        for question in OFF_TOPIC:
            with self.subTest(question=question):
                answer = engine.ask(self.pathologist, question)
                self.assertEqual(answer.kind, Kind.UNKNOWN)
                self.assertEqual(answer.text, answers.I_DONT_KNOW)
                self.assertTrue(answer.text.startswith("I don't know"))
                self.assertEqual(answer.sources, [])

    def test_no_language_model_call_without_passages(self):
        with FakeChatServer(reply="Paris [1].") as server, override_settings(ASSISTANT_LLM_URL=server.base_url):
            answer = engine.ask(self.pathologist, "What is the capital of France?")
        self.assertEqual(answer.kind, Kind.UNKNOWN)
        self.assertEqual(server.received, [])

    def test_a_case_question_without_a_case_asks_which_case(self):
        answer = engine.ask(self.pathologist, "how many blasts in image 3")
        self.assertEqual(answer.kind, Kind.NEED_CASE)
