"""Every error under /api/ has one JSON shape: 400, 401, 403, 404, 405, 406,
413, 415, 429 and 500 (for 401/403/404/413/415 see also the other files)."""

from __future__ import annotations

import json

from django.conf import settings
from django.test import RequestFactory, override_settings
from django.urls import get_resolver

from api import exceptions as api_exceptions
from tests.api.helpers import ApiTestCase

THROTTLE_SETTINGS = {
    "DEFAULT_THROTTLE_RATES": {"anon": "2/min", "user": "3/min", "upload": "1/min", "token": "1/hour"},
}


class ErrorShapeTests(ApiTestCase):
    def test_unknown_api_address_is_a_json_404(self) -> None:
        error = self.assertApiError(self.api.get("/api/no-such-thing/"), 404, "not_found")
        self.assertEqual(error["details"]["path"], "/api/no-such-thing/")
        error = self.assertApiError(self.api.get("/api/cases"), 404, "not_found")
        self.assertIn("slash", error["details"]["hint"])

    def test_unknown_case_id_is_a_json_404(self) -> None:
        self.assertApiError(self.api.get(self.url("api-case-detail", pk=987654)), 404, "not_found")

    def test_wrong_method_is_405(self) -> None:
        self.assertApiError(self.api.delete(self.url("api-cases")), 405, "method_not_allowed")
        self.assertApiError(self.api.put(self.url("api-models")), 405, "method_not_allowed")

    def test_unacceptable_accept_header_is_406_in_json(self) -> None:
        response = self.api.get(self.url("api-cases"), HTTP_ACCEPT="text/csv")
        self.assertApiError(response, 406, "not_acceptable")

    def test_bad_filter_value_is_400_with_details(self) -> None:
        error = self.assertApiError(self.api.get(self.url("api-cases"), {"status": "lost"}), 400, "invalid")
        self.assertIn("status", error["details"])

    def test_bad_page_is_404(self) -> None:
        self.assertApiError(self.api.get(self.url("api-cases"), {"page": "99"}), 404, "not_found")

    def test_a_server_error_under_api_is_json_and_reveals_nothing(self) -> None:
        request = RequestFactory().get("/api/cases/")
        response = api_exceptions.handler500(request)
        self.assertEqual(response.status_code, 500)
        body = json.loads(response.content)
        self.assertEqual(
            body, {"error": {"code": "server_error", "message": body["error"]["message"], "details": None}}
        )
        self.assertNotIn("Traceback", body["error"]["message"])
        # And it is the handler the project's URLconf really uses.
        self.assertIs(get_resolver().resolve_error_handler(500), api_exceptions.handler500)
        self.assertIs(get_resolver().resolve_error_handler(404), api_exceptions.handler404)

    def test_outside_api_the_error_pages_stay_html(self) -> None:
        response = api_exceptions.handler404(RequestFactory().get("/cases/nothing/"), None)
        self.assertEqual(response.status_code, 404)
        self.assertNotEqual(response.get("Content-Type", "").split(";")[0], "application/json")


@override_settings(REST_FRAMEWORK={**settings.REST_FRAMEWORK, **THROTTLE_SETTINGS})
class ThrottleTests(ApiTestCase):
    def test_user_rate_limit_answers_429_with_retry_after(self) -> None:
        for _ in range(3):
            self.assertEqual(self.api.get(self.url("api-models")).status_code, 200)
        response = self.api.get(self.url("api-models"))
        error = self.assertApiError(response, 429, "throttled")
        self.assertGreater(int(response["Retry-After"]), 0)
        self.assertEqual(error["details"]["retry_after_s"], int(response["Retry-After"]))
        # Another user has their own budget.
        self.assertEqual(self.outsider_api.get(self.url("api-models")).status_code, 200)

    def test_anonymous_rate_limit_on_the_public_schema(self) -> None:
        for _ in range(2):
            self.assertEqual(self.anonymous_api.get(self.url("api-schema")).status_code, 200)
        self.assertApiError(self.anonymous_api.get(self.url("api-schema")), 429, "throttled")

    def test_health_is_never_throttled(self) -> None:
        for _ in range(5):
            self.assertEqual(self.anonymous_api.get(self.url("api-health")).status_code, 200)

    def test_uploads_have_their_own_smaller_budget(self) -> None:
        case, _ = self.make_analysed_case()
        url = self.url("api-case-images", pk=case.pk)
        from tests.api.endpoints import upload_data

        self.assertEqual(self.api.post(url, upload_data(), format="multipart").status_code, 201)
        self.assertApiError(self.api.post(url, upload_data(), format="multipart"), 429, "throttled")


class HugeIdTests(ApiTestCase):
    def test_ids_beyond_a_64_bit_column_are_not_found(self) -> None:
        # Found by the schemathesis run: SQLite raised OverflowError (a 500).
        huge = 10**21
        case, _ = self.make_analysed_case()
        urls = [
            self.url("api-case-detail", pk=huge),
            self.url("api-case-images", pk=huge),
            self.url("api-image-detail", pk=case.pk, image_pk=huge),
            self.url("api-image-file", pk=case.pk, image_pk=huge, kind="cam"),
        ]
        for url in urls:
            with self.subTest(url):
                self.assertApiError(self.api.get(url), 404, "not_found")
        self.assertApiError(self.anonymous_api.get(urls[0]), 401, "not_authenticated")
