"""Shared pieces of the API tests: token clients for each role, a case with
real analysis results and overlay files, and the error-shape assertion."""

from __future__ import annotations

from typing import Any

from django.core.cache import cache
from django.test import override_settings
from django.urls import reverse
from rest_framework.test import APIClient

from apitokens import services as api_tokens
from diagnostics.models import ModelVersion
from tests.base import BaseTestCase
from tests.factories import ModelVersionFactory, analysed_case, review_case


def token_client(user) -> APIClient:
    """An API client that authenticates as ``user`` with a real token, as a LIS would."""
    key = api_tokens.issue(user).key  # stored hashed: the clear key exists only here
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    client.token_key = key
    return client


# The users' passwords are hashed in every setUp; the fast hasher keeps that
# from dominating the run (no test here is about password hashing).
@override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"])
class ApiTestCase(BaseTestCase):
    """Lab A's technician, pathologist and lab B's outsider, each with a token client.

    Throttle counters live in the cache, which outlives a test: it is cleared
    so that one test's requests never throttle the next."""

    def setUp(self) -> None:
        super().setUp()
        cache.clear()
        self.api = token_client(self.technician)
        self.outsider_api = token_client(self.outsider)
        self.anonymous_api = APIClient()

    def tearDown(self) -> None:
        cache.clear()
        super().tearDown()

    def assertApiError(self, response, status_code: int, code: str | None = None) -> dict[str, Any]:
        """The stable error shape: {"error": {"code", "message", "details"}}, as JSON."""
        self.assertEqual(response.status_code, status_code, getattr(response, "content", b"")[:500])
        self.assertEqual(response["Content-Type"].split(";")[0], "application/json")
        body = response.json()
        self.assertEqual(set(body), {"error"})
        self.assertEqual(set(body["error"]), {"code", "message", "details"})
        self.assertIsInstance(body["error"]["code"], str)
        self.assertTrue(body["error"]["message"])
        if code is not None:
            self.assertEqual(body["error"]["code"], code, body)
        return body["error"]

    def make_analysed_case(self, *, lab=None, images: int = 2):
        """A case awaiting review (tests.factories.analysed_case) whose images are Pre-B calls at 0.7
        by the active image model, with CAM and segmentation overlays (real PNG files), and a
        pathologist's review of image 1 as Pro-B. Returns ``(case, [(image, analysis), ...])``."""
        model = ModelVersion.objects.filter(task="image", is_active=True).first() or ModelVersionFactory(is_active=True)
        built = analysed_case(lab or self.lab, labels=["Pre"] * images, confidences=0.7, model=model,
                              created_by=self.technician)
        review_case(built, self.pathologist, {1: "Pro"}, only={1})
        return built.case, [(image, built.analyses[image.position]) for image in built.images]

    @staticmethod
    def url(name: str, **kwargs: Any) -> str:
        return reverse(name, kwargs=kwargs)
