"""Web form errors that used to be a blank "Bad Request (400)" page (and lost
the upload) are pages that say what was wrong; where the body can be read,
the form comes back with what was typed. The API answers the same bodies with
its error shape and the reason."""

from __future__ import annotations

from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import override_settings
from django.urls import reverse

from diagnostics.models import Case
from tests.api.helpers import ApiTestCase
from tests.diagnostics.upload_helpers import UploadTestCase, case_fields, png_upload
from tests.imagefactory import png_bytes

BLANK = b"<h1>Bad Request (400)</h1>"


def long_file_name_body(fields: dict) -> tuple[bytes, str]:
    """A multipart body (and its content type) with a 1,000-character file name. Written by
    hand: Django's test client would cut the name to 255 characters, a browser does not."""
    boundary = "mfBoundary"
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
             for name, value in fields.items()]
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{"a" * 1000}.png"\r\n'
                 f"Content-Type: image/png\r\n\r\n".encode() + png_bytes(seed=1) + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


class FormErrorTests(UploadTestCase):
    def new_case(self, **overrides):
        return {**case_fields(), "lab": self.lab.pk, **overrides}

    def test_600_files_are_read_up_to_the_limit_and_the_rest_refused_with_the_reason(self):
        files = [png_upload(f"a{i}.png", seed=i, size=(16, 16)) for i in range(600)]
        response = self.client.post(reverse("case_new"), self.new_case(files=files), follow=True)
        self.assertNotIn(BLANK, response.content)
        self.assertContains(response, "Not read: an upload may hold at most 500 images.")
        self.assertEqual(Case.objects.get().images.count(), 500)

    def test_an_11_mb_note_comes_back_with_its_limit(self):
        response = self.client.post(reverse("case_new"), self.new_case(
            clinical_note="x" * 11_000_000, files=[png_upload("a.png", seed=1)]))
        self.assertContains(response, "The clinical note is 11,000,000 characters long; the limit is 5,000",
                            status_code=400)
        self.assertContains(response, 'value="BM-2026-00042"', status_code=400)

    @override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=1024 * 1024)
    def test_text_beyond_the_parser_limit_is_a_page_that_says_so(self):
        response = self.client.post(reverse("case_new"), self.new_case(
            clinical_note="x" * 2_000_000, files=[png_upload("a.png", seed=1)]))
        self.assertContains(response, "text fields add up to more than 1 MB", status_code=400)
        self.assertNotIn(BLANK, response.content)

    def test_a_file_name_over_950_bytes_is_a_page_that_says_so(self):
        response = self.client.generic("POST", reverse("case_new"), *long_file_name_body(self.new_case()))
        self.assertEqual(response.status_code, 400, response.content[:300])
        self.assertContains(response, "file&#x27;s name is too long", status_code=400)

    def test_multipart_without_a_boundary_is_a_page_that_says_so(self):
        response = self.client.generic("POST", reverse("case_new"), b"--x\r\n", content_type="multipart/form-data")
        self.assertContains(response, "no boundary", status_code=400)
        self.assertNotIn(BLANK, response.content)

    def test_an_invalid_hidden_lab_is_a_visible_error(self):
        response = self.client.post(reverse("case_new"), self.new_case(lab="99999", files=[png_upload("a.png", seed=1)]))
        self.assertContains(response, "The lab of this form is not one of yours", status_code=400)
        self.assertFalse(Case.objects.exists())

    def test_a_bad_file_in_the_instant_check_is_a_4xx_with_the_reason(self):
        response = self.client.post(reverse("instant_check"), {
            "lab": self.lab.pk, "image": SimpleUploadedFile("x.png", b"not an image at all")})
        self.assertEqual(response.status_code, 400)
        self.assertContains(response, "not an image", status_code=400)


class ApiFormErrorTests(ApiTestCase):
    def test_a_file_name_over_950_bytes_is_refused_with_the_reason(self):
        response = self.api.generic("POST", reverse("api-cases"), *long_file_name_body(case_fields()))
        error = self.assertApiError(response, 400, "parse_error")
        self.assertIn("header size", error["message"])
        self.assertFalse(Case.objects.exists())

    def test_multipart_without_a_boundary_is_refused_with_the_reason(self):
        response = self.api.generic("POST", reverse("api-cases"), b"--x\r\n", content_type="multipart/form-data")
        error = self.assertApiError(response, 400, "parse_error")
        self.assertIn("boundary", error["message"])

    def test_an_11_mb_note_is_refused_with_its_limit(self):
        response = self.api.post(reverse("api-cases"), {**case_fields(clinical_note="x" * 11_000_000),
                                                        "files": [png_upload("a.png", seed=1)]}, format="multipart")
        error = self.assertApiError(response, 400, "invalid")
        self.assertIn("The clinical note is 11,000,000 characters long; the limit is 5,000", str(error["details"]))
        self.assertFalse(Case.objects.exists())
