"""Originals and overlays are served only to members of the owning lab; 404 for everyone else."""

from __future__ import annotations

from django.test import override_settings

from diagnostics.models import ImageStatus
from tests.base import BaseTestCase
from tests.factories import analysed_case


class MediaAccessTests(BaseTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.case = analysed_case(self.lab, labels=["Pro", "Benign", "Pre"], blasts=[5, 3, None], failed=(3,)).case
        self.image = self.case.images.get(position=1)
        self.analysis = self.image.analyses.get()
        self.urls = {
            "original": self.image.file.url,
            "cam": self.analysis.cam_overlay.url,
            "segmentation": self.analysis.segmentation_overlay.url,
        }

    def _bytes(self, field) -> bytes:
        with field.open("rb") as handle:
            return handle.read()

    def test_lab_members_get_the_files(self) -> None:
        self.client.force_login(self.pathologist)
        for kind, field in (("original", self.image.file), ("cam", self.analysis.cam_overlay),
                            ("segmentation", self.analysis.segmentation_overlay)):
            response = self.client.get(self.urls[kind])
            self.assertEqual(response.status_code, 200, kind)
            self.assertEqual(response["Content-Type"], "image/png")
            self.assertEqual(response["Cache-Control"], "no-store")  # patient data: never kept by a cache
            self.assertEqual(b"".join(response.streaming_content), self._bytes(field), kind)

    def test_outsider_gets_404_for_image_and_overlays(self) -> None:
        self.client.force_login(self.outsider)
        for kind, url in self.urls.items():
            self.assertEqual(self.client.get(url).status_code, 404, kind)

    def test_anonymous_is_sent_to_login(self) -> None:
        for kind, url in self.urls.items():
            response = self.client.get(url)
            self.assertEqual(response.status_code, 302, kind)
            self.assertIn("/accounts/login/", response["Location"])

    def test_paths_that_name_no_owned_file_are_404(self) -> None:
        self.client.force_login(self.pathologist)
        name = self.image.file.name
        other_lab = name.replace(f"labs/{self.lab.pk}/", f"labs/{self.other_lab.pk}/", 1)
        for path in [
            f"/protected-media/{name}x",
            f"/protected-media/{other_lab}",
            f"/protected-media/labs/{self.lab.pk}/cases/{self.case.pk}/originals/../../../../secret_key",
            "/protected-media/../marrowfind.sqlite3",
            "/protected-media/secret_key",
        ]:
            self.assertEqual(self.client.get(path).status_code, 404, path)

    def test_a_missing_file_is_404(self) -> None:
        self.client.force_login(self.pathologist)
        self.image.file.storage.delete(self.image.file.name)
        self.assertEqual(self.client.get(self.urls["original"]).status_code, 404)

    @override_settings(MEDIA_SERVE_MODE="nginx", MEDIA_ACCEL_PREFIX="/_protected/")
    def test_nginx_mode_answers_with_x_accel_redirect(self) -> None:
        self.client.force_login(self.technician)
        response = self.client.get(self.urls["cam"])
        self.assertEqual(response.status_code, 200)
        self.assertEqual(response["X-Accel-Redirect"], "/_protected/" + self.analysis.cam_overlay.name)
        self.assertEqual(response.content, b"")
        self.client.force_login(self.outsider)
        response = self.client.get(self.urls["cam"])
        self.assertEqual(response.status_code, 404)
        self.assertNotIn("X-Accel-Redirect", response)

    def test_failed_image_original_is_still_viewable_by_the_lab(self) -> None:
        failed = self.case.images.get(status=ImageStatus.FAILED)
        self.client.force_login(self.technician)
        self.assertEqual(self.client.get(failed.file.url).status_code, 200)
