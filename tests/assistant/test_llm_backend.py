"""The optional language-model path, through a real OpenAI-compatible HTTP
server on 127.0.0.1: what it receives (only the retrieved passages and the
case facts), that a cited answer survives, and every fallback."""

from __future__ import annotations

import json

from django.test import override_settings

from assistant import engine, knowledge
from assistant.engine import Kind
from tests.assistant.fakellm import FakeChatServer
from tests.base import BaseTestCase
from tests.factories import assistant_case

QUESTION = "What does Early Pre-B mean?"


class LLMBackendTest(BaseTestCase):
    @classmethod
    def setUpTestData(cls) -> None:
        super().setUpTestData()
        cls.built = assistant_case()
        cls.case = cls.built.case

    def ask_through(self, server: FakeChatServer, question: str = QUESTION, case=None, **settings):
        with override_settings(ASSISTANT_LLM_URL=server.base_url, ASSISTANT_LLM_MODEL="test-model",
                               ASSISTANT_LLM_API_KEY="sk-test", **settings):
            return engine.ask(self.pathologist, question, case)

    def test_receives_only_the_passages_and_case_facts_and_its_citations_survive(self):
        reply = "Early Pre-B ALL blasts express CD10 but no cytoplasmic µ heavy chain [1]. This case has 6 images [F]."
        with FakeChatServer(reply=reply) as server:
            answer = self.ask_through(server, case=self.case)
        self.assertEqual(len(server.received), 1)
        request = server.received[0]
        self.assertEqual(request.path, "/v1/chat/completions")
        self.assertEqual(request.headers["Authorization"], "Bearer sk-test")
        self.assertEqual(request.body["model"], "test-model")
        prompt = request.user_prompt

        hits = knowledge.knowledge_base().search(QUESTION)
        for number, hit in enumerate(hits, start=1):
            self.assertIn(f"[{number}] {hit.passage.title} - {hit.passage.heading}", prompt)
            self.assertIn(hit.passage.text, prompt)
        retrieved = {(h.passage.doc, h.passage.heading) for h in hits}
        for passage in knowledge.knowledge_base().passages:
            if (passage.doc, passage.heading) not in retrieved:
                self.assertNotIn(passage.text, prompt)
        facts_json = prompt.split("Case facts from the laboratory database (JSON):\n", 1)[1].split("\n", 1)[0]
        facts = json.loads(facts_json)
        self.assertEqual([i["image"] for i in facts["images"]], [1, 2, 3, 4, 5, 6])
        self.assertEqual(facts["images"][2]["blasts"], self.built.analyses[3].blasts)
        for private in (self.case.patient_pseudonym, self.case.accession_number, "Confidential", "smear-1.png"):
            self.assertNotIn(private, json.dumps(request.body))

        self.assertEqual(answer.kind, Kind.LLM)
        self.assertEqual(answer.text, reply)
        self.assertEqual(answer.sources[0]["ref"], hits[0].passage.ref)
        self.assertEqual(answer.sources[-1]["type"], "case")

    def fallback(self, server: FakeChatServer, reason: str, **settings) -> engine.Answer:
        with server:
            answer = self.ask_through(server, **settings)
        self.assertEqual(len(server.received), 1)
        self.assertEqual(answer.kind, Kind.KNOWLEDGE)
        self.assertIn("[1]", answer.text)
        self.assertIn(reason, answer.note)
        return answer

    def test_an_uncited_answer_is_rejected(self):
        self.fallback(FakeChatServer(reply="It is a subtype of leukemia."), "cited no source")

    def test_citing_a_source_it_was_not_given_is_rejected(self):
        self.fallback(FakeChatServer(reply="It is common [9]."), "it was not given")

    def test_a_number_from_nowhere_is_rejected(self):
        self.fallback(FakeChatServer(reply="About 73% of children have it [1]."), "numbers found in no source")

    def test_server_error_and_timeout_fall_back(self):
        self.fallback(FakeChatServer(status=500), "HTTP 500")
        self.fallback(FakeChatServer(reply="late [1]", delay_s=2.5), "no answer within 1 s", ASSISTANT_LLM_TIMEOUT_S=1.0)

    def test_case_questions_never_go_to_the_model(self):
        with FakeChatServer(reply="Image 3 has 99 blasts [F].") as server:
            answer = self.ask_through(server, "how many blasts in image 3", case=self.case)
        self.assertEqual(server.received, [])
        self.assertEqual(answer.kind, Kind.CASE)
        self.assertNotIn("99", answer.text)
