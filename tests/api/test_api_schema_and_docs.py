"""The OpenAPI schema is valid and complete, and the docs page uses only
self-hosted assets (no CDN: sites run without internet)."""

from __future__ import annotations

import re
from io import StringIO

import yaml
from django.contrib.staticfiles import finders
from django.core.management import call_command

from tests.api.helpers import ApiTestCase

EXPECTED_OPERATIONS = {
    ("/api/cases/", "get"),
    ("/api/cases/", "post"),
    ("/api/cases/{id}/", "get"),
    ("/api/cases/{id}/images/", "get"),
    ("/api/cases/{id}/images/", "post"),
    ("/api/cases/{id}/images/{image_pk}/", "get"),
    ("/api/cases/{id}/images/{image_pk}/files/{kind}/", "get"),
    ("/api/cases/{id}/progress/", "get"),
    ("/api/cases/{id}/summary/", "get"),
    ("/api/cases/{id}/report/", "get"),
    ("/api/cases/{id}/report/draft/", "post"),
    ("/api/cases/{id}/report/draft/{report_id}/", "get"),
    ("/api/models/", "get"),
    ("/api/token/", "post"),
    ("/api/token/", "delete"),
    ("/api/health/", "get"),
}


class SchemaTests(ApiTestCase):
    def test_schema_generates_without_warnings_and_validates(self) -> None:
        out = StringIO()
        call_command("spectacular", "--validate", "--fail-on-warn", stdout=out)
        schema = yaml.safe_load(out.getvalue())
        operations = {(path, method) for path, item in schema["paths"].items() for method in item}
        self.assertEqual(operations, EXPECTED_OPERATIONS)

    def test_every_operation_documents_the_error_shape(self) -> None:
        schema = yaml.safe_load(self.anonymous_api.get(self.url("api-schema")).content)
        for path, item in schema["paths"].items():
            for method, operation in item.items():
                if path == "/api/health/":
                    continue
                with self.subTest(f"{method.upper()} {path}"):
                    for code in ("401", "429"):
                        ref = operation["responses"][code]["content"]["application/json"]["schema"]["$ref"]
                        self.assertEqual(ref, "#/components/schemas/Error")
                    self.assertTrue({"tokenAuth": []} in operation["security"])
        error = schema["components"]["schemas"]["ErrorDetail"]
        self.assertEqual(set(error["required"]), {"code", "message", "details"})

    def test_uploads_are_documented_as_multipart_binary_files(self) -> None:
        schema = yaml.safe_load(self.anonymous_api.get(self.url("api-schema")).content)
        body = schema["paths"]["/api/cases/"]["post"]["requestBody"]["content"]
        self.assertEqual(list(body), ["multipart/form-data"])
        files = schema["components"]["schemas"]["CaseCreateRequest"]["properties"]["files"]
        self.assertEqual((files["type"], files["items"]["format"]), ("array", "binary"))


class DocsPageTests(ApiTestCase):
    def test_swagger_ui_loads_only_self_hosted_files(self) -> None:
        response = self.anonymous_api.get(self.url("api-docs"))
        self.assertEqual(response.status_code, 200)
        html = response.content.decode()
        # The init script is its own file (the CSP forbids inline scripts); it points at the schema.
        self.assertIn('<script src="/api/docs/?script=">', html)
        self.assertIn(self.url("api-schema"), self.anonymous_api.get(self.url("api-docs") + "?script=").content.decode())
        external = re.findall(r"""(?:src|href)=["'](https?:)?//""", html)
        self.assertEqual(external, [], "the docs page must not load anything from another site")
        assets = re.findall(r"""(?:src|href)=["']/static/([^"'?]+)""", html)
        self.assertTrue(any("swagger-ui" in asset for asset in assets), assets)
        for asset in assets:
            with self.subTest(asset):
                self.assertIsNotNone(finders.find(asset), f"{asset} is not a shipped static file")
