"""Per-image results: label, probabilities, low-confidence flag, counts,
blasts, the newest review, and file links that serve the real files."""

from __future__ import annotations

from diagnostics.models import Analysis, ImageStatus
from tests.api.helpers import ApiTestCase
from tests.factories import ModelVersionFactory


def body_bytes(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


class ImageResultTests(ApiTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.case, self.made = self.make_analysed_case()

    def test_image_list_has_each_images_result_and_review(self) -> None:
        response = self.api.get(self.url("api-case-images", pk=self.case.pk))
        self.assertEqual(response.status_code, 200)
        body = response.json()
        self.assertEqual(body["count"], 2)
        first, second = body["results"]
        self.assertEqual([first["position"], second["position"]], [1, 2])
        analysis = first["analysis"]
        self.assertEqual(analysis["label"], "Pre")
        self.assertEqual(analysis["probabilities"], {"Benign": 0.1, "Early": 0.1, "Pre": 0.7, "Pro": 0.1})
        self.assertFalse(analysis["low_confidence"])
        self.assertEqual(analysis["cell_counts"], {"wbc": 10, "rbc": 40, "platelet": 3})
        self.assertIsNone(analysis["blasts"])
        self.assertEqual(analysis["model_version"]["sha256"], self.made[0][1].model_version.sha256)
        # Image 1 was relabelled by the pathologist: the review's label is the current one.
        self.assertEqual(first["review"]["label"], "Pro")
        self.assertFalse(first["review"]["agrees_with_ai"])
        self.assertEqual(first["review"]["reviewer"], self.pathologist.email)
        self.assertEqual(first["current_label"], "Pro")
        self.assertIsNone(second["review"])
        self.assertEqual(second["current_label"], "Pre")

    def test_an_excluded_image_says_why_and_has_no_current_label(self) -> None:
        import uuid

        from review.services import record_review

        image, _ = self.made[1]
        record_review(image=image, reviewer=self.pathologist, exclusion="out_of_focus", submission_token=uuid.uuid4())
        result = self.api.get(self.url("api-image-detail", pk=self.case.pk, image_pk=image.pk)).json()
        self.assertEqual((result["review"]["label"], result["review"]["exclusion"]), ("", "out_of_focus"))
        self.assertIsNone(result["current_label"])
        first = self.api.get(self.url("api-image-detail", pk=self.case.pk, image_pk=self.made[0][0].pk)).json()
        self.assertEqual(first["review"]["exclusion"], "")

    def test_file_links_serve_the_stored_original_and_overlays(self) -> None:
        image, analysis = self.made[0]
        result = self.api.get(self.url("api-image-detail", pk=self.case.pk, image_pk=image.pk)).json()
        expected = {"original": image.file, "cam": analysis.cam_overlay, "segmentation": analysis.segmentation_overlay}
        for kind, fieldfile in expected.items():
            with self.subTest(kind):
                url = result["files"][kind]
                self.assertTrue(url.startswith("http://testserver/api/"), url)
                response = self.api.get(url)
                self.assertEqual(response.status_code, 200)
                self.assertEqual(response["Content-Type"], "image/png")
                with fieldfile.open("rb") as handle:
                    self.assertEqual(body_bytes(response), handle.read())

    def test_a_pending_image_has_no_analysis_and_no_overlay_links(self) -> None:
        image, analysis = self.made[1]
        Analysis.objects.filter(pk=analysis.pk).delete()
        image.status = ImageStatus.QUEUED
        image.save()
        result = self.api.get(self.url("api-image-detail", pk=self.case.pk, image_pk=image.pk)).json()
        self.assertEqual(result["status"], "queued")
        self.assertIsNone(result["analysis"])
        self.assertIsNone(result["current_label"])
        self.assertIsNone(result["files"]["cam"])
        self.assertIsNotNone(result["files"]["original"])
        missing = self.api.get(self.url("api-image-file", pk=self.case.pk, image_pk=image.pk, kind="cam"))
        self.assertApiError(missing, 404, "not_found")

    def test_a_failed_image_carries_its_reason(self) -> None:
        image, analysis = self.made[1]
        Analysis.objects.filter(pk=analysis.pk).delete()
        image.status, image.error_code, image.error = ImageStatus.FAILED, "truncated", "The file is truncated."
        image.save()
        result = self.api.get(self.url("api-image-detail", pk=self.case.pk, image_pk=image.pk)).json()
        self.assertEqual((result["status"], result["error_code"]), ("failed", "truncated"))
        self.assertEqual(result["error"], "The file is truncated.")

    def test_the_newest_analysis_is_the_one_shown(self) -> None:
        image, _ = self.made[1]
        newer_model = ModelVersionFactory(name="newer")
        Analysis.objects.create(
            image=image,
            model_version=newer_model,
            label="Benign",
            probabilities={"Benign": 0.5, "Early": 0.2, "Pre": 0.2, "Pro": 0.1},
            confidence=0.5,
            low_confidence=True,
            cell_counts={"wbc": 1},
            timings={},
        )
        result = self.api.get(self.url("api-image-detail", pk=self.case.pk, image_pk=image.pk)).json()
        self.assertEqual(result["analysis"]["model_version"]["name"], "newer")
        self.assertTrue(result["analysis"]["low_confidence"])

    def test_an_unknown_file_kind_is_not_found(self) -> None:
        image, _ = self.made[0]
        response = self.api.get(self.url("api-image-file", pk=self.case.pk, image_pk=image.pk, kind="secret"))
        self.assertApiError(response, 404, "not_found")
