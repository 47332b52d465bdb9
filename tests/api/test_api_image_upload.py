"""POST /api/cases/{id}/images/: more images for a case, same checks as the web page."""

from __future__ import annotations

from diagnostics.models import Batch, CaseStatus, ImageStatus
from tests.api.helpers import ApiTestCase
from tests.diagnostics.upload_helpers import png_upload, upload
from tests.factories import BatchFactory, CaseFactory, SlideImageFactory
from tests.imagefactory import png_bytes


class ImageUploadTests(ApiTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.case = CaseFactory(lab=self.lab, status=CaseStatus.AWAITING_REVIEW)
        self.first = SlideImageFactory(
            batch=BatchFactory(case=self.case),
            case=self.case,
            position=1,
            status=ImageStatus.DONE,
        )

    def post(self, files, case=None):
        url = self.url("api-case-images", pk=(case or self.case).pk)
        return self.api.post(url, {"files": files}, format="multipart")

    def test_images_are_added_after_the_last_one_and_the_case_requeued(self) -> None:
        with self.captureOnCommitCallbacks(execute=False) as callbacks:
            response = self.post([png_upload("more-1.png", seed=21), png_upload("more-2.png", seed=22)])
        self.assertEqual(response.status_code, 201, response.content)
        body = response.json()
        self.assertEqual([item["position"] for item in body["accepted"]], [2, 3])
        self.assertEqual(body["rejected"], [])
        self.assertEqual(Batch.objects.get(pk=body["id"]).uploaded_by, self.technician)
        self.case.refresh_from_db()
        self.assertEqual(self.case.status, CaseStatus.QUEUED)
        self.assertEqual(len(callbacks), 1)

    def test_a_duplicate_of_an_image_in_the_case_is_refused(self) -> None:
        with self.first.file.open("rb") as handle:
            same = handle.read()
        response = self.post([upload("again.png", same, "image/png"), png_upload("new.png", seed=31)])
        self.assertEqual(response.status_code, 201, response.content)
        self.assertEqual(
            [(r["filename"], r["code"]) for r in response.json()["rejected"]],
            [("again.png", "duplicate")],
        )

    def test_all_files_refused_is_an_error_naming_the_recorded_batch(self) -> None:
        response = self.post([upload("x.png", b"\x89PNG\r\n\x1a\n" + b"0" * 20, "image/png")])
        error = self.assertApiError(response, 400, "no_usable_images")
        batch = Batch.objects.get(pk=error["details"]["batch"])
        self.assertEqual(batch.accepted_count, 0)
        self.assertEqual([r["filename"] for r in error["details"]["rejected"]], ["x.png"])

    def test_a_signed_out_case_takes_no_more_images(self) -> None:
        self.case.status = CaseStatus.SIGNED_OUT
        self.case.save()
        self.assertApiError(self.post([png_upload("late.png", seed=41)]), 409, "case_closed")
        self.assertEqual(self.case.images.count(), 1)

    def test_too_many_files_in_one_request_is_413(self) -> None:
        from django.test import override_settings

        files = [upload(f"f{i}.png", png_bytes(seed=i), "image/png") for i in range(4)]
        with override_settings(DATA_UPLOAD_MAX_NUMBER_FILES=3):
            self.assertApiError(self.post(files), 413, "payload_too_large")
        self.assertEqual(self.case.images.count(), 1)
