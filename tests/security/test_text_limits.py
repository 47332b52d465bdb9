"""Every free-text field has a length limit, with the same message on the web
form and the API; the largest allowed clinical note still makes a report."""

from __future__ import annotations

from django.urls import reverse

from diagnostics.models import Case
from marrowfind import textlimits
from reports import services as report_service
from tests.api.helpers import ApiTestCase
from tests.diagnostics.upload_helpers import UploadTestCase, case_fields, png_upload
from tests.factories import analysed_case

NOTE_300_KB = "x" * 300_000
MESSAGE = "The clinical note is 300,000 characters long; the limit is 5,000 characters."


class WebFormLimitTests(UploadTestCase):
    def test_a_300_kb_note_is_refused_with_its_limit_and_the_form_keeps_the_input(self):
        response = self.post_new_case([png_upload("a.png", seed=1)], clinical_note=NOTE_300_KB)
        self.assertContains(response, MESSAGE, status_code=400)  # the form again, saying why
        self.assertContains(response, 'value="BM-2026-00042"', status_code=400)  # what was typed is kept
        self.assertFalse(Case.objects.exists())

    def test_a_review_comment_over_its_limit(self):
        from review.forms import ReviewForm

        form = ReviewForm({"label": "Pre", "comment": "x" * 2001, "submission_token": "0" * 32}, class_names=["Pre"])
        self.assertFalse(form.is_valid())
        self.assertEqual(form.errors["comment"], ["The comment is 2,001 characters long; the limit is 2,000 characters."])


class ApiLimitTests(ApiTestCase):
    def test_a_300_kb_note_is_refused_with_the_same_message(self):
        data = {**case_fields(clinical_note=NOTE_300_KB), "files": [png_upload("a.png", seed=1)]}
        response = self.api.post(reverse("api-cases"), data, format="multipart")
        error = self.assertApiError(response, 400, "invalid")
        self.assertEqual(error["details"]["clinical_note"], [MESSAGE])
        self.assertFalse(Case.objects.exists())

    def test_the_largest_allowed_note_is_accepted(self):
        note = "x" * textlimits.CLINICAL_NOTE_CHARS
        data = {**case_fields(clinical_note=note), "files": [png_upload("a.png", seed=1)]}
        self.assertEqual(self.api.post(reverse("api-cases"), data, format="multipart").status_code, 201)


class LargestNoteRendersTests(ApiTestCase):
    def test_a_report_renders_with_the_largest_allowed_note(self):
        # Words of the longest kind a note holds, so the PDF lays out real lines.
        note = ("Hb 7.2 g/dL, WBC 31 x10^9/L, platelets 22; circulating blasts on film; query B-ALL. "
                * 100)[: textlimits.CLINICAL_NOTE_CHARS]
        built = analysed_case(self.lab, drawn=True, labels=["Pre", "Pro"], clinical_note=note)
        report = report_service.create_draft_report(built.case, self.pathologist)
        self.assertTrue(bytes(report.pdf).startswith(b"%PDF"))
