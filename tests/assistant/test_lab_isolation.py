"""Asked about another lab's case, the assistant reveals nothing: the same
refusal as for a case that does not exist, whether named by accession number
or by id; the case panel and chat endpoint give outsiders 404; each user sees
only their own conversation."""

from __future__ import annotations

from django.conf import settings
from django.urls import reverse

from assistant import engine
from assistant.engine import Kind
from assistant.models import ChatMessage
from tests.base import BaseTestCase
from tests.factories import assistant_case


class AssistantLabIsolationTest(BaseTestCase):
    @classmethod
    def setUpTestData(cls) -> None:
        super().setUpTestData()
        cls.built = assistant_case()
        cls.case = cls.built.case

    def test_other_labs_case_by_accession_is_refused_like_a_missing_one(self):
        accession = self.case.accession_number
        for question in (f"Summarise case {accession}", f"how many blasts in image 3 of {accession}?",
                         f"Which images of case {accession} are unreviewed?"):
            with self.subTest(question=question):
                answer = engine.ask(self.outsider, question)
                missing = engine.ask(self.outsider, question.replace(accession, "BM-1999-99999"))
                self.assertEqual(answer.kind, Kind.REFUSED)
                self.assertEqual(answer.text, missing.text.replace("BM-1999-99999", accession))
                self.assertEqual(answer.sources, [])
                for analysis in self.built.analyses.values():
                    self.assertNotIn(analysis.image.original_filename, answer.text)

    def test_other_labs_case_by_id_is_refused(self):
        answer = engine.ask(self.outsider, f"give me a summary of case {self.case.pk}")
        self.assertEqual(answer.kind, Kind.REFUSED)
        self.assertNotIn(self.case.accession_number, answer.text)

    def test_a_member_gets_the_answer(self):
        answer = engine.ask(self.pathologist, f"Summarise case {self.case.accession_number}")
        self.assertEqual(answer.kind, Kind.CASE)
        self.assertIn("5 analysed, 1 failed", answer.text)

    def test_outsider_gets_404_from_panel_and_chat(self):
        self.client.force_login(self.outsider)
        self.assertEqual(self.client.get(reverse("case_assistant_panel", args=[self.case.pk])).status_code, 404)
        response = self.client.post(reverse("assistant_ask"), {"question": "summary", "case": self.case.pk})
        self.assertEqual(response.status_code, 404)
        self.assertFalse(ChatMessage.objects.filter(conversation__user=self.outsider).exists())

    def test_anonymous_is_sent_to_login(self):
        login = reverse(settings.LOGIN_URL)
        for response in (self.client.get(reverse("assistant")),
                         self.client.get(reverse("case_assistant_panel", args=[self.case.pk])),
                         self.client.post(reverse("assistant_ask"), {"question": "hello"})):
            self.assertEqual(response.status_code, 302)
            self.assertTrue(response["Location"].startswith(login))

    def test_conversations_are_per_user(self):
        self.client.force_login(self.pathologist)
        self.client.post(reverse("assistant_ask"), {"question": "Which images are unreviewed?", "case": self.case.pk})
        mine = self.client.get(reverse("case_assistant_panel", args=[self.case.pk]))
        self.assertContains(mine, "Which images are unreviewed?")
        self.client.force_login(self.technician)
        theirs = self.client.get(reverse("case_assistant_panel", args=[self.case.pk]))
        self.assertNotContains(theirs, "Which images are unreviewed?")
