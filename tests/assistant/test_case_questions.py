"""Case questions are answered with the numbers in the database rows, through
the chat endpoint a lab member uses (htmx POST) and the engine behind it."""

from __future__ import annotations

import re

from django.urls import reverse

from assistant import engine
from assistant.engine import Kind
from assistant.models import ChatMessage
from diagnostics.models import ImageStatus
from review.models import Review
from tests.base import BaseTestCase
from tests.factories import assistant_case


class CaseQuestionsTest(BaseTestCase):
    @classmethod
    def setUpTestData(cls) -> None:
        super().setUpTestData()
        cls.built = assistant_case()
        cls.case = cls.built.case

    def ask(self, question: str) -> engine.Answer:
        return engine.ask(self.pathologist, question, self.case)

    def test_blasts_in_an_image(self):
        analysis = self.built.analyses[3]
        answer = self.ask("How many blasts in image 3?")
        self.assertEqual(answer.kind, Kind.CASE)
        wbc = analysis.cell_counts["wbc"]
        self.assertIn(f"Image 3 (smear-3.png) has {analysis.blasts} blast(s)", answer.text)
        self.assertIn(f"{100 * analysis.blasts / wbc:.1f}% of its {wbc} white cells", answer.text)

    def test_blasts_not_determined_is_not_zero(self):
        answer = self.ask("how many blasts are in image 2")
        self.assertIn("blasts were not determined", answer.text)
        self.assertNotRegex(answer.text, r"\b0 blast")

    def test_why_an_image_was_called_pro_b_points_to_its_grad_cam(self):
        analysis = self.built.analyses[5]
        answer = self.ask("Why was image 5 called Pro-B?")
        self.assertIn(f"labelled Pro-B ALL by the model {analysis.model_version.name} with probability {analysis.confidence:.2f}", answer.text)
        for p in analysis.probabilities.values():
            self.assertIn(f"{p:.2f}", answer.text)
        self.assertIn("Grad-CAM overlay of image 5", answer.text)
        overlay = [s for s in answer.sources if s["type"] == "overlay"]
        self.assertEqual(overlay[0]["url"], analysis.cam_overlay.url)
        self.assertIn("grad-cam.md", [s.get("doc") for s in answer.sources])
        self.assertIn("not been reviewed", answer.text)

    def test_why_corrects_a_wrong_premise(self):
        answer = self.ask("why was image 2 called Pro-B")
        self.assertIn("did not call image 2 Pro-B ALL: it called it Pre-B ALL", answer.text)
        self.assertIn("below the confidence threshold", answer.text)  # 0.55 < 0.6

    def test_which_images_are_unreviewed(self):
        expected = [
            image.position for image in self.built.images
            if image.status == ImageStatus.DONE and not Review.objects.filter(image=image).exists()
        ]
        answer = self.ask("Which images are unreviewed?")
        self.assertIn(f"{len(expected)} of 5 analysed images", answer.text)
        listed = re.search(r"image\(s\) ([\d, ]+) \[F\]", answer.text).group(1)
        self.assertEqual([int(n) for n in listed.split(",")], expected)
        self.assertIn("image(s) 6 failed", answer.text.lower())

    def test_case_counts_blast_percentage_and_who_flag(self):
        analyses = list(self.built.analyses.values())
        cells = sum(sum(a.cell_counts.values()) for a in analyses)
        determined = [a for a in analyses if a.blasts is not None]
        blasts = sum(a.blasts for a in determined)
        fraction = blasts / sum(a.cell_counts["wbc"] for a in determined)
        self.assertIn(f"{cells} cells counted", self.ask("How many cells were counted in this case?").text)
        self.assertIn(f"{100 * fraction:.1f}%", self.ask("What is the blast percentage?").text)
        flag = self.ask("Is the WHO flag raised?")
        self.assertTrue(flag.text.startswith("Yes" if fraction >= 0.2 else "No"), flag.text)
        self.assertIn("who-blast-threshold.md", [s.get("doc") for s in flag.sources])

    def test_summary_and_distribution(self):
        summary = self.ask("Summarise this case").text
        self.assertIn("6 image(s): 5 analysed, 1 failed", summary)
        self.assertIn("Reviewed: 3 of 5", summary)
        distribution = self.ask("What is the class distribution?").text
        ai, reviewed = distribution.split("After review")
        self.assertIn("Pro-B ALL 2", ai)  # AI: images 4 and 5
        # Image 4 overridden Pro-B -> Pre-B; image 2 (Pre-B at 0.55, unreviewed) waits as Unidentified.
        for expected in ("Pro-B ALL 1", "Pre-B ALL 1", "Unidentified 1", "Early Pre-B ALL 1", "Benign (hematogone) 1"):
            self.assertIn(expected, reviewed)

    def test_an_image_that_does_not_exist_or_failed(self):
        self.assertIn("there is no image 9", self.ask("how many blasts in image 9").text)
        self.assertIn("could not be analysed", self.ask("tell me about image 6").text)

    def test_the_chat_endpoint_answers_and_stores_the_exchange(self):
        self.client.force_login(self.technician)
        response = self.client.post(
            reverse("assistant_ask"), {"question": "how many blasts in image 4", "case": self.case.pk}, HTTP_HX_REQUEST="true"
        )
        self.assertEqual(response.status_code, 200)
        blasts = self.built.analyses[4].blasts
        self.assertContains(response, f"Image 4 (smear-4.png) has {blasts} blast(s)")
        stored = list(ChatMessage.objects.filter(conversation__user=self.technician, conversation__case=self.case))
        self.assertEqual([m.role for m in stored], ["user", "assistant"])
        self.assertEqual(stored[1].sources[0]["type"], "case")
