"""An anonymous caller gets 401 with ``WWW-Authenticate: Token`` and the error
shape from every endpoint except the public health, schema and docs pages."""

from __future__ import annotations

from rest_framework.test import APIClient

from diagnostics.models import Case
from tests.api.endpoints import call, case_endpoints, global_endpoints
from tests.api.helpers import ApiTestCase
from tests.factories import UserFactory


class AnonymousTests(ApiTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.case, made = self.make_analysed_case()
        self.image = made[0][0]

    def test_every_endpoint_needs_credentials(self) -> None:
        cases_before = Case.objects.count()
        for endpoint in [*case_endpoints(self.case, self.image), *global_endpoints()]:
            with self.subTest(endpoint.label):
                response = call(self.anonymous_api, endpoint)
                self.assertApiError(response, 401, "not_authenticated")
                self.assertEqual(response["WWW-Authenticate"], "Token")
        self.assertEqual(Case.objects.count(), cases_before)

    def test_a_wrong_token_is_refused(self) -> None:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION="Token " + "0" * 40)
        for endpoint in [*case_endpoints(self.case, self.image), *global_endpoints()]:
            with self.subTest(endpoint.label):
                self.assertApiError(call(client, endpoint), 401, "authentication_failed")

    def test_an_account_without_a_lab_is_forbidden(self) -> None:
        from tests.api.helpers import token_client

        loner = token_client(UserFactory(username="loner"))
        self.assertApiError(loner.get(self.url("api-cases")), 403, "no_lab")
        self.assertApiError(loner.get(self.url("api-case-detail", pk=self.case.pk)), 403, "no_lab")

    def test_health_schema_and_docs_are_public(self) -> None:
        self.assertEqual(
            self.anonymous_api.get(self.url("api-health")).json(),
            {"status": "ok", "database": "ok"},
        )
        self.assertEqual(self.anonymous_api.get(self.url("api-schema")).status_code, 200)
        self.assertEqual(self.anonymous_api.get(self.url("api-docs")).status_code, 200)
