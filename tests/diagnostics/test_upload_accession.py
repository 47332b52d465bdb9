"""A duplicate accession number is a form error: nothing is written and nothing of the existing case changes."""

from __future__ import annotations

from diagnostics.models import Case
from diagnostics.services import upload as upload_service
from tests.diagnostics.upload_helpers import (
    UploadTestCase,
    case_fields,
    png_upload,
    stored_files,
)
from tests.factories import CaseFactory


class DuplicateAccessionTests(UploadTestCase):
    def test_duplicate_accession_is_a_form_error_and_nothing_is_lost(self) -> None:
        self.post_new_case([png_upload("a.png", seed=1)], patient_pseudonym="P-FIRST")
        existing = self.only_case()
        files_before = stored_files()
        response = self.post_new_case([png_upload("b.png", seed=2)], patient_pseudonym="P-SECOND")
        self.assertEqual(response.status_code, 400)
        self.assertContains(response, "Accession number BM-2026-00042 already exists in Lab A.", status_code=400)
        # What the user typed is still in the form.
        self.assertContains(response, 'value="P-SECOND"', status_code=400)
        existing.refresh_from_db()
        self.assertEqual(existing.patient_pseudonym, "P-FIRST")
        self.assertEqual(list(existing.images.values_list("original_filename", flat=True)), ["a.png"])
        self.assertEqual(Case.objects.filter(lab=self.lab).count(), 1)
        self.assertEqual(stored_files(), files_before)

    def test_service_refuses_before_reading_any_file(self) -> None:
        CaseFactory(lab=self.lab, accession_number="BM-2026-00042")
        with self.assertRaises(upload_service.DuplicateAccessionError):
            upload_service.create_case(
                lab=self.lab, user=self.technician, fields=case_fields(), files=[png_upload("a.png", seed=1)]
            )
        self.assertEqual(stored_files(), [])

    def test_same_accession_in_another_lab_is_fine(self) -> None:
        CaseFactory(lab=self.other_lab, accession_number="BM-2026-00042")
        self.post_new_case([png_upload("a.png", seed=1)])
        self.assertEqual(self.only_case().accession_number, "BM-2026-00042")

    def test_surrounding_spaces_do_not_make_a_new_number(self) -> None:
        self.post_new_case([png_upload("a.png", seed=1)])
        response = self.post_new_case([png_upload("b.png", seed=2)], accession_number="  BM-2026-00042 ")
        self.assertEqual(response.status_code, 400)
        self.assertEqual(Case.objects.filter(lab=self.lab).count(), 1)
