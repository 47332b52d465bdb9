"""Adding images to an existing case: numbering continues, the case is queued again; lab isolation."""

from __future__ import annotations

from django.urls import reverse

from diagnostics.models import CaseStatus
from tests.diagnostics.upload_helpers import UploadTestCase, png_upload


class AddImagesTests(UploadTestCase):
    def test_numbering_continues_and_the_finished_case_is_queued_again(self) -> None:
        self.post_new_case([png_upload("a.png", seed=1), png_upload("b.png", seed=2)])
        case = self.only_case()
        case.status = CaseStatus.AWAITING_REVIEW
        case.save()
        with self.captureOnCommitCallbacks(execute=False) as callbacks:
            response = self.post_add_images(case, [png_upload("c.png", seed=3)])
        self.assertRedirects(response, reverse("case_detail", args=[case.pk]), fetch_redirect_response=False)
        case.refresh_from_db()
        self.assertEqual(case.status, CaseStatus.QUEUED)
        self.assertEqual(list(case.images.order_by("position").values_list("position", "original_filename")), [(1, "a.png"), (2, "b.png"), (3, "c.png")])
        self.assertEqual(case.batches.count(), 2)
        self.assertEqual(len(callbacks), 1)

    def test_a_batch_with_only_bad_files_is_recorded_and_nothing_is_queued(self) -> None:
        self.post_new_case([png_upload("a.png", seed=1)])
        case = self.only_case()
        case.status = CaseStatus.AWAITING_REVIEW
        case.save()
        with self.captureOnCommitCallbacks(execute=False) as callbacks:
            self.post_add_images(case, [png_upload("a-again.png", seed=1)])
        case.refresh_from_db()
        self.assertEqual(case.status, CaseStatus.AWAITING_REVIEW)
        self.assertEqual(callbacks, [])
        self.assertEqual(case.batches.order_by("-pk").first().rejected[0]["code"], "duplicate")

    def test_signed_out_case_takes_no_more_images(self) -> None:
        self.post_new_case([png_upload("a.png", seed=1)])
        case = self.only_case()
        case.status = CaseStatus.SIGNED_OUT
        case.save()
        response = self.post_add_images(case, [png_upload("b.png", seed=2)])
        self.assertContains(response, "signed out", status_code=400)
        self.assertEqual(case.images.count(), 1)

    def test_outsider_gets_404_and_anonymous_the_login_page(self) -> None:
        self.post_new_case([png_upload("a.png", seed=1)])
        case = self.only_case()
        url = reverse("case_add_images", args=[case.pk])
        self.client.force_login(self.outsider)
        self.assertEqual(self.client.get(url).status_code, 404)
        self.assertEqual(self.client.post(url, {"files": [png_upload("x.png", seed=9)]}).status_code, 404)
        self.client.logout()
        response = self.client.post(url, {"files": [png_upload("x.png", seed=9)]})
        self.assertEqual(response.status_code, 302)
        self.assertIn("/accounts/login/", response["Location"])
        self.assertEqual(case.images.count(), 1)
