"""The instant check: one image stored as a one-off of the user's lab, queued
on the priority queue, analysed with the real ml/ code and a registered model;
its result page and files are lab-scoped."""

from __future__ import annotations

from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import override_settings
from django.urls import reverse

from diagnostics.models import ImageStatus
from instant.models import InstantCheck
from instant.services import claim, run_instant_check
from marrowfind.celery import app
from tests.base import BaseTestCase
from tests.imagefactory import smear_png_bytes
from tests.modelfixtures import register_test_model


def upload(name="smear.png", data=None):
    return SimpleUploadedFile(name, data if data is not None else smear_png_bytes(seed=3, size=(96, 96)), "image/png")


class InstantCheckTests(BaseTestCase):
    def test_upload_stores_the_image_and_queues_it_on_the_priority_queue(self):
        self.client.force_login(self.technician)
        with self.captureOnCommitCallbacks() as callbacks:
            response = self.client.post(reverse("instant_check"), {"image": upload(), "lab": self.lab.pk})
        check = InstantCheck.objects.get()
        self.assertRedirects(response, reverse("instant_result", args=[check.pk]), fetch_redirect_response=False)
        self.assertEqual((check.lab, check.created_by, check.status, check.width), (self.lab, self.technician, "queued", 96))
        self.assertEqual(len(callbacks), 1)  # the task is sent only after the row commits
        route = app.amqp.router.route({}, "instant.tasks.instant_check")
        self.assertEqual(route["queue"].name, "priority")

    def test_not_an_image_is_a_clear_error_and_nothing_is_stored(self):
        self.client.force_login(self.technician)
        response = self.client.post(reverse("instant_check"), {"image": upload("x.png", b"not a png at all"), "lab": self.lab.pk})
        self.assertEqual(response.status_code, 200)
        self.assertTrue(response.context["form"].errors["image"])
        self.assertFalse(InstantCheck.objects.exists())

    def test_missing_file_is_a_clear_error(self):
        self.client.force_login(self.technician)
        response = self.client.post(reverse("instant_check"), {"lab": self.lab.pk})
        self.assertContains(response, "This field is required")

    def test_another_labs_id_in_the_form_is_refused(self):
        self.client.force_login(self.technician)
        response = self.client.post(reverse("instant_check"), {"image": upload(), "lab": self.other_lab.pk})
        self.assertEqual(response.status_code, 200)
        self.assertIn("lab", response.context["form"].errors)
        self.assertFalse(InstantCheck.objects.exists())

    @override_settings(INFERENCE_DEVICE="cpu", INFERENCE_PRECISION="fp32")
    def test_analysis_gives_label_cam_and_counts(self):
        from diagnostics import model_cache

        model_cache.cache.clear()
        version = register_test_model("image")
        self.client.force_login(self.technician)
        with self.captureOnCommitCallbacks():
            self.client.post(reverse("instant_check"), {"image": upload(), "lab": self.lab.pk})
        check = InstantCheck.objects.get()
        self.assertContains(self.client.get(reverse("instant_status", args=[check.pk])), 'hx-trigger="every 1s"')

        done = run_instant_check(check.pk)
        self.assertEqual(done.status, ImageStatus.DONE, done.error)
        self.assertIn(done.label, version.class_names)
        self.assertAlmostEqual(sum(done.probabilities.values()), 1.0, places=4)
        self.assertEqual(done.model_version, version)
        self.assertTrue(done.cam_overlay and done.segmentation_overlay)
        self.assertEqual(set(done.cell_counts), {"wbc", "rbc", "platelet"})
        self.assertGreater(done.cell_counts["rbc"] + done.cell_counts["wbc"], 0)
        self.assertFalse(claim(check.pk))  # a redelivered message does nothing

        status = self.client.get(reverse("instant_status", args=[check.pk]))
        self.assertNotContains(status, "hx-trigger")  # polling stops
        self.assertContains(status, done.label)
        self.assertContains(status, "DEMO")
        cam = self.client.get(reverse("instant_file", args=[check.pk, "cam"]))
        self.assertEqual(cam.status_code, 200)
        self.assertEqual(b"".join(cam.streaming_content)[:8], b"\x89PNG\r\n\x1a\n")

    def test_without_a_model_the_check_fails_with_a_reason(self):
        from diagnostics import model_cache

        model_cache.cache.clear()
        self.client.force_login(self.technician)
        self.client.post(reverse("instant_check"), {"image": upload(), "lab": self.lab.pk})
        check = run_instant_check(InstantCheck.objects.get().pk)
        self.assertEqual(check.status, ImageStatus.FAILED)
        self.assertIn("model", check.error)

    def test_outsider_gets_404_for_page_status_and_files(self):
        self.client.force_login(self.technician)
        self.client.post(reverse("instant_check"), {"image": upload(), "lab": self.lab.pk})
        check = InstantCheck.objects.get()
        self.client.force_login(self.outsider)
        for url in (
            reverse("instant_result", args=[check.pk]),
            reverse("instant_status", args=[check.pk]),
            reverse("instant_file", args=[check.pk, "original"]),
        ):
            self.assertEqual(self.client.get(url).status_code, 404, url)
        self.assertNotContains(self.client.get(reverse("instant_check")), check.original_filename)

    def test_anonymous_is_sent_to_login(self):
        for url in (reverse("instant_check"),):
            response = self.client.get(url)
            self.assertTrue(response["Location"].startswith(reverse("account_login")))
        response = self.client.post(reverse("instant_check"), {"image": upload(), "lab": self.lab.pk})
        self.assertTrue(response["Location"].startswith(reverse("account_login")))
        self.assertFalse(InstantCheck.objects.exists())


class InstantFileServingTests(BaseTestCase):
    def test_nginx_mode_answers_with_x_accel_redirect_after_the_access_check(self):
        self.client.force_login(self.technician)
        self.client.post(reverse("instant_check"), {"image": upload(), "lab": self.lab.pk})
        check = InstantCheck.objects.get()
        with override_settings(MEDIA_SERVE_MODE="nginx", MEDIA_ACCEL_PREFIX="/_protected/"):
            response = self.client.get(reverse("instant_file", args=[check.pk, "original"]))
            self.assertEqual(response["X-Accel-Redirect"], "/_protected/" + check.file.name)
            self.assertEqual(response["Content-Type"], "image/png")
            self.client.force_login(self.outsider)
            self.assertEqual(self.client.get(reverse("instant_file", args=[check.pk, "original"])).status_code, 404)
