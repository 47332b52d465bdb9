"""POST /api/cases/: a case with its first images through the upload service,
with the web page's checks: bad files listed, good ones kept, all or nothing."""

from __future__ import annotations

from django.test import override_settings

from diagnostics.models import AuditEvent, Case, CaseStatus, Membership, Role
from tests.api.helpers import ApiTestCase
from tests.diagnostics.upload_helpers import (
    case_fields,
    make_zip,
    png_upload,
    stored_files,
    upload,
)
from tests.imagefactory import png_bytes


class CaseCreateTests(ApiTestCase):
    def post(self, files, client=None, **fields):
        data = {**case_fields(**fields), "files": files}
        return (client or self.api).post(self.url("api-cases"), data, format="multipart")

    def test_good_files_make_a_queued_case_and_bad_ones_are_listed(self) -> None:
        files = [
            png_upload("a.png", seed=1),
            png_upload("b.png", seed=2),
            upload("broken.png", png_bytes(seed=3)[:60], "image/png"),
        ]
        with self.captureOnCommitCallbacks(execute=False) as callbacks:
            response = self.post(files)
        self.assertEqual(response.status_code, 201, response.content)
        body = response.json()
        case = Case.objects.get(pk=body["case"]["id"])
        self.assertEqual(case.lab, self.lab)
        self.assertEqual(case.created_by, self.technician)
        self.assertEqual(case.status, CaseStatus.QUEUED)
        self.assertEqual(body["case"]["status"], "queued")
        self.assertEqual(body["case"]["lab"], self.lab.slug)
        self.assertEqual(body["case"]["image_count"], 2)
        self.assertEqual(
            [item["original_filename"] for item in body["batch"]["accepted"]],
            ["a.png", "b.png"],
        )
        self.assertEqual([item["position"] for item in body["batch"]["accepted"]], [1, 2])
        self.assertEqual(
            [(r["filename"], r["code"]) for r in body["batch"]["rejected"]],
            [("broken.png", "truncated")],
        )
        self.assertTrue(body["batch"]["rejected"][0]["reason"])
        self.assertEqual(
            response["Location"],
            "http://testserver" + self.url("api-case-detail", pk=case.pk),
        )
        self.assertTrue(body["case"]["links"]["progress"].endswith(self.url("api-case-progress", pk=case.pk)))
        self.assertEqual(len(callbacks), 1, "the analysis is queued once, after the commit")
        self.assertTrue(
            AuditEvent.objects.filter(case=case, verb=AuditEvent.Verb.CASE_CREATED, actor=self.technician).exists()
        )

    def test_a_zip_of_images_is_unpacked(self) -> None:
        archive = make_zip(
            [
                ("day1/x.png", png_bytes(seed=11)),
                ("day1/y.png", png_bytes(seed=12)),
                ("../evil.png", png_bytes(seed=13)),
            ]
        )
        response = self.post([upload("case.zip", archive, "application/zip")])
        self.assertEqual(response.status_code, 201, response.content)
        body = response.json()
        self.assertEqual(len(body["batch"]["accepted"]), 2)
        self.assertEqual([r["code"] for r in body["batch"]["rejected"]], ["unsafe_path"])

    def test_duplicate_accession_is_a_conflict_and_writes_nothing(self) -> None:
        self.assertEqual(self.post([png_upload("a.png", seed=1)]).status_code, 201)
        files_before = stored_files()
        response = self.post([png_upload("c.png", seed=5)])
        error = self.assertApiError(response, 409, "duplicate_accession")
        self.assertIn("BM-2026-00042", error["message"])
        self.assertEqual(Case.objects.filter(lab=self.lab).count(), 1)
        self.assertEqual(stored_files(), files_before)

    def test_no_usable_file_creates_nothing_and_says_why(self) -> None:
        files_before = stored_files()
        response = self.post(
            [
                upload("notes.txt", b"hello", "text/plain"),
                upload("empty.png", b"", "image/png"),
            ]
        )
        error = self.assertApiError(response, 400, "no_usable_images")
        self.assertEqual(
            {r["filename"] for r in error["details"]["rejected"]},
            {"notes.txt", "empty.png"},
        )
        self.assertFalse(Case.objects.exists())
        self.assertEqual(stored_files(), files_before)

    def test_missing_fields_and_files_are_field_errors(self) -> None:
        response = self.api.post(self.url("api-cases"), {"specimen": "plasma"}, format="multipart")
        error = self.assertApiError(response, 400, "invalid")
        self.assertEqual(
            set(error["details"]),
            {"accession_number", "patient_pseudonym", "specimen", "files"},
        )
        self.assertFalse(Case.objects.exists())

    def test_oversized_form_fields_are_413(self) -> None:
        with override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=1000):
            response = self.post([png_upload("a.png", seed=1)], clinical_note="x" * 5000)
        self.assertApiError(response, 413, "payload_too_large")
        self.assertFalse(Case.objects.exists())

    def test_json_is_refused_with_415(self) -> None:
        response = self.api.post(self.url("api-cases"), case_fields(), format="json")
        self.assertApiError(response, 415, "unsupported_media_type")

    def test_members_of_several_labs_name_the_lab(self) -> None:
        Membership.objects.create(user=self.technician, lab=self.other_lab, role=Role.TECHNICIAN)
        error = self.assertApiError(self.post([png_upload("a.png", seed=1)]), 400, "invalid")
        self.assertIn("lab", error["details"])
        response = self.post([png_upload("a.png", seed=1)], lab=self.other_lab.slug)
        self.assertEqual(response.status_code, 201, response.content)
        self.assertEqual(Case.objects.get().lab, self.other_lab)
