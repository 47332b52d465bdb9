"""/metrics answers only a scraper with the METRICS_TOKEN bearer token or a
logged-in site admin: a wrong token or a non-admin login gets 403, a request
with no credentials at all gets 404 (the endpoint is not advertised)."""

from __future__ import annotations

from django.core.cache import cache
from django.test import override_settings
from django.urls import reverse

from tests.base import BaseTestCase
from tests.factories import UserFactory

TOKEN = "s3cret-metrics-token-for-tests"


@override_settings(METRICS_TOKEN=TOKEN)
class MetricsAccessTests(BaseTestCase):
    def setUp(self):
        super().setUp()
        cache.clear()
        self.url = reverse("metrics")

    def test_the_token_opens_it(self):
        response = self.client.get(self.url, HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
        self.assertEqual(response.status_code, 200)
        self.assertTrue(response["Content-Type"].startswith("text/plain"))
        self.assertIn(b"marrowfind_images", response.content)

    def test_no_credentials_is_404(self):
        self.assertEqual(self.client.get(self.url).status_code, 404)

    def test_a_wrong_or_malformed_token_is_403(self):
        for header in (f"Bearer {TOKEN}x", "Bearer ", f"Basic {TOKEN}", TOKEN, f"Bearer {TOKEN[:-1]}"):
            self.assertEqual(self.client.get(self.url, HTTP_AUTHORIZATION=header).status_code, 403, header)

    def test_lab_users_are_403_and_a_site_admin_is_let_in(self):
        for user in (self.technician, self.pathologist, self.lab_admin, self.outsider):
            self.client.force_login(user)
            self.assertEqual(self.client.get(self.url).status_code, 403, user.username)
        self.client.force_login(UserFactory(username="siteadmin", site_admin=True))
        self.assertEqual(self.client.get(self.url).status_code, 200)

    def test_only_get(self):
        self.assertEqual(self.client.post(self.url, HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code, 405)


@override_settings(METRICS_TOKEN=None)
class MetricsWithoutTokenTests(BaseTestCase):
    def test_any_token_is_refused_when_none_is_configured(self):
        self.assertEqual(self.client.get(reverse("metrics"), HTTP_AUTHORIZATION="Bearer None").status_code, 403)
        self.assertEqual(self.client.get(reverse("metrics"), HTTP_AUTHORIZATION="Bearer ").status_code, 403)
