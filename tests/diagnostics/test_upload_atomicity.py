"""An upload that fails half-way leaves no half-made case and no stored files.

Two real faults, forced part-way through the third image: the storage fails
(a disk-full OSError from a FileSystemStorage subclass) and the database fails
(a trigger that raises on the third image row). In both cases the case, its
batch, its images and its audit events are gone, and the two files already
written were deleted.
"""

from __future__ import annotations

import errno

from django.core.files.storage import FileSystemStorage
from django.db import DatabaseError, connection
from django.test import override_settings

from diagnostics.models import AuditEvent, Batch, Case, SlideImage
from diagnostics.services import upload as upload_service
from tests.diagnostics.upload_helpers import (
    UploadTestCase,
    case_fields,
    png_upload,
    stored_files,
)


class DiskFullOnThirdFileStorage(FileSystemStorage):
    """A real file-system storage whose disk is full from the third file on."""

    saved = 0

    def _save(self, name, content):
        type(self).saved += 1
        if type(self).saved >= 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return super()._save(name, content)


FAILING_STORAGES = {
    "default": {"BACKEND": f"{__name__}.DiskFullOnThirdFileStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}


def _install_failing_trigger() -> None:
    """A database trigger that refuses the third image row of any case (real DB error)."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                """CREATE FUNCTION mf_test_refuse_third_image() RETURNS trigger AS $$
                   BEGIN IF NEW.position = 3 THEN RAISE EXCEPTION 'forced failure on image 3'; END IF;
                   RETURN NEW; END $$ LANGUAGE plpgsql"""
            )
            cursor.execute(
                "CREATE TRIGGER mf_test_refuse_third BEFORE INSERT ON diagnostics_slideimage "
                "FOR EACH ROW EXECUTE FUNCTION mf_test_refuse_third_image()"
            )
        else:
            cursor.execute(
                "CREATE TRIGGER mf_test_refuse_third BEFORE INSERT ON diagnostics_slideimage "
                "WHEN NEW.position = 3 BEGIN SELECT RAISE(ABORT, 'forced failure on image 3'); END"
            )


class UploadAtomicityTests(UploadTestCase):
    def _files(self):
        return [png_upload(f"f{i}.png", seed=i) for i in range(1, 6)]

    def assertNothingLeft(self) -> None:
        self.assertFalse(Case.objects.filter(lab=self.lab).exists())
        self.assertEqual(Batch.objects.count(), 0)
        self.assertEqual(SlideImage.objects.count(), 0)
        self.assertFalse(AuditEvent.objects.filter(lab=self.lab).exists())
        self.assertEqual(stored_files(), [])

    def test_storage_failure_half_way_through_the_form_post(self) -> None:
        DiskFullOnThirdFileStorage.saved = 0
        with override_settings(STORAGES=FAILING_STORAGES), self.assertRaises(OSError):
            self.post_new_case(self._files())
        self.assertEqual(DiskFullOnThirdFileStorage.saved, 3)  # two files written before the fault
        self.assertNothingLeft()

    def test_database_failure_half_way(self) -> None:
        _install_failing_trigger()
        with self.assertRaises(DatabaseError):
            upload_service.create_case(lab=self.lab, user=self.technician, fields=case_fields(), files=self._files())
        self.assertNothingLeft()

    def test_failure_while_adding_images_keeps_the_case_as_it_was(self) -> None:
        self.post_new_case([png_upload("first.png", seed=100)])
        case = self.only_case()
        before = stored_files()
        DiskFullOnThirdFileStorage.saved = 0
        with override_settings(STORAGES=FAILING_STORAGES), self.assertRaises(OSError):
            self.post_add_images(case, self._files())
        self.assertEqual(list(case.images.values_list("original_filename", flat=True)), ["first.png"])
        self.assertEqual(case.batches.count(), 1)
        self.assertEqual(stored_files(), before)
