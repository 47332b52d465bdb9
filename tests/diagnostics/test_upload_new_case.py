"""A new case with several images: stored, checked, numbered, queued; no model runs in the request."""

from __future__ import annotations

import hashlib
import re

from django.urls import reverse
from PIL import Image

from diagnostics.models import Analysis, AuditEvent, CaseStatus, ImageStatus
from tests.diagnostics.upload_helpers import (
    UploadTestCase,
    jpeg_bytes,
    png_upload,
    stored_files,
    upload,
)
from tests.imagefactory import png_bytes


class NewCaseUploadTests(UploadTestCase):
    def test_images_are_stored_numbered_and_queued_after_commit(self) -> None:
        files = [
            png_upload("field-1.png", seed=1, size=(64, 80)),
            png_upload("field-2.png", seed=2),
            upload("field-3.jpg", jpeg_bytes(seed=3, size=(48, 40)), "image/jpeg"),
        ]
        with self.captureOnCommitCallbacks(execute=False) as callbacks:
            response = self.post_new_case(files)
        case = self.only_case()
        self.assertRedirects(response, reverse("case_detail", args=[case.pk]), fetch_redirect_response=False)
        self.assertEqual(case.status, CaseStatus.QUEUED)
        self.assertEqual(case.created_by, self.technician)
        self.assertEqual(case.accession_number, "BM-2026-00042")

        images = list(case.images.order_by("position"))
        self.assertEqual([image.position for image in images], [1, 2, 3])
        self.assertEqual([image.original_filename for image in images], ["field-1.png", "field-2.png", "field-3.jpg"])
        self.assertEqual([(image.width, image.height) for image in images], [(80, 64), (64, 64), (40, 48)])
        self.assertTrue(all(image.status == ImageStatus.QUEUED for image in images))
        for image, expected in zip(images, [png_bytes(seed=1, size=(64, 80)), png_bytes(seed=2)]):
            with image.file.open("rb") as handle:
                stored = handle.read()
            self.assertEqual(stored, expected)
            self.assertEqual(image.sha256, hashlib.sha256(expected).hexdigest())
        for image in images:
            # Stored under the lab and case, under a random name that keeps only the checked extension.
            self.assertRegex(image.file.name, rf"^labs/{self.lab.pk}/cases/{case.pk}/originals/[0-9a-f]{{32}}\.(png|jpg)$")
            with Image.open(image.file.path) as decoded:
                self.assertEqual(decoded.size, (image.width, image.height))
        self.assertEqual(len(stored_files()), 3)

        batch = case.batches.get()
        self.assertEqual(batch.accepted_count, 3)
        self.assertEqual(batch.rejected, [])
        self.assertEqual(batch.uploaded_by, self.technician)
        verbs = list(AuditEvent.objects.filter(case=case).values_list("verb", flat=True))
        self.assertIn(AuditEvent.Verb.CASE_CREATED, verbs)
        self.assertIn(AuditEvent.Verb.UPLOADED, verbs)

        # The work is queued for after the commit, once, and nothing was analysed in the request.
        self.assertEqual(len(callbacks), 1)
        self.assertEqual(Analysis.objects.count(), 0)

    def test_success_message_and_case_page(self) -> None:
        response = self.post_new_case([png_upload("a.png", seed=5)], follow=True)
        self.assertContains(response, "1 image accepted and queued for analysis.")
        self.assertContains(response, "BM-2026-00042")
        self.assertContains(response, "a.png")

    def test_form_without_files_is_refused(self) -> None:
        response = self.post_new_case([])
        self.assertEqual(response.status_code, 400)
        self.assertContains(response, "This field is required", status_code=400)
        self.assertFalse(self.lab.cases.exists())

    def test_anonymous_is_sent_to_login(self) -> None:
        self.client.logout()
        for method in ("get", "post"):
            response = getattr(self.client, method)(reverse("case_new"))
            self.assertEqual(response.status_code, 302)
            self.assertTrue(re.search(r"/accounts/login/\?next=", response["Location"]), response["Location"])

    def test_user_without_a_lab_cannot_create_cases(self) -> None:
        from tests.factories import UserFactory

        self.client.force_login(UserFactory(username="nolab"))
        self.assertEqual(self.client.get(reverse("case_new")).status_code, 403)

    def test_outsider_cannot_pick_another_lab(self) -> None:
        self.client.force_login(self.outsider)
        data_lab = self.lab.pk  # lab A: not the outsider's
        response = self.client.post(
            reverse("case_new"),
            {"lab": data_lab, "accession_number": "X1", "patient_pseudonym": "P1", "specimen": "peripheral_blood",
             "stain": "Giemsa", "files": [png_upload("a.png", seed=1)]},
        )
        self.assertEqual(response.status_code, 400)
        self.assertFalse(self.lab.cases.exists())
