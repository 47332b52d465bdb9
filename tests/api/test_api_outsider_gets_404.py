"""A member of another lab gets 404 (never 403) for every object endpoint of a
lab A case, and lab A's cases never show up in their lists."""

from __future__ import annotations

from diagnostics.models import Case, SlideImage
from tests.api.endpoints import call, case_endpoints, upload_data
from tests.api.helpers import ApiTestCase
from tests.diagnostics.upload_helpers import case_fields


class OutsiderTests(ApiTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.case, made = self.make_analysed_case()
        self.image = made[0][0]

    def test_every_case_endpoint_is_not_found_for_an_outsider(self) -> None:
        images_before = SlideImage.objects.count()
        for endpoint in case_endpoints(self.case, self.image):
            with self.subTest(endpoint.label):
                self.assertApiError(call(self.outsider_api, endpoint), 404, "not_found")
        self.assertEqual(
            SlideImage.objects.count(),
            images_before,
            "an outsider's upload went through",
        )

    def test_the_same_endpoints_answer_a_member(self) -> None:
        # Proves the 404s above are about the lab, not broken URLs.
        for endpoint in case_endpoints(self.case, self.image):
            if endpoint.label == "report":
                continue  # no report yet: 404 no_report, tested in test_api_report.py
            with self.subTest(endpoint.label):
                response = call(self.api, endpoint)
                self.assertIn(response.status_code, (200, 201), endpoint.label)

    def test_a_report_of_another_lab_is_not_found_not_missing(self) -> None:
        # "no_report" would reveal that the case exists.
        endpoint = next(e for e in case_endpoints(self.case, self.image) if e.label == "report")
        self.assertApiError(call(self.outsider_api, endpoint), 404, "not_found")

    def test_an_image_of_lab_a_under_an_outsider_case_id_is_not_found(self) -> None:
        own_case, own_made = self.make_analysed_case(lab=self.other_lab)
        response = self.outsider_api.get(self.url("api-image-detail", pk=own_case.pk, image_pk=self.image.pk))
        self.assertApiError(response, 404, "not_found")
        response = self.outsider_api.get(self.url("api-image-detail", pk=own_case.pk, image_pk=own_made[0][0].pk))
        self.assertEqual(response.status_code, 200)

    def test_lists_never_show_another_labs_cases(self) -> None:
        own_case, _ = self.make_analysed_case(lab=self.other_lab)
        response = self.outsider_api.get(self.url("api-cases"))
        self.assertEqual(response.status_code, 200)
        self.assertEqual([item["id"] for item in response.json()["results"]], [own_case.pk])
        response = self.outsider_api.get(self.url("api-cases"), {"accession_number": self.case.accession_number})
        self.assertEqual(response.json()["results"], [])

    def test_an_outsider_cannot_create_a_case_in_lab_a(self) -> None:
        data = {
            **case_fields(accession_number="BM-OUT-1"),
            "lab": self.lab.slug,
            **upload_data(),
        }
        error = self.assertApiError(
            self.outsider_api.post(self.url("api-cases"), data, format="multipart"),
            400,
            "invalid",
        )
        self.assertIn("lab", error["details"])
        self.assertFalse(Case.objects.filter(accession_number="BM-OUT-1").exists())
