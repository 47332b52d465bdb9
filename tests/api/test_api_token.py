"""Issuing, rotating and revoking API tokens: over the API (signed-in session
or current token) and with ``manage.py api_token``."""

from __future__ import annotations

from io import StringIO

from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from apitokens.models import ApiToken, digest
from diagnostics.models import AuditEvent
from tests.api.helpers import ApiTestCase


def client_with(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


class TokenApiTests(ApiTestCase):
    def test_a_signed_in_session_issues_a_working_token(self) -> None:
        ApiToken.objects.filter(user=self.pathologist).delete()
        session = APIClient(enforce_csrf_checks=True)
        session.force_login(self.pathologist)
        # A session POST without the CSRF token is refused: a third-party page cannot mint tokens.
        self.assertApiError(session.post(self.url("api-token")), 403, "permission_denied")
        session.get(self.url("worklist"))  # the CSRF cookie, as a browser gets it
        response = session.post(self.url("api-token"), HTTP_X_CSRFTOKEN=session.cookies["csrftoken"].value)
        self.assertEqual(response.status_code, 201, response.content)
        key = response.json()["token"]
        stored = ApiToken.objects.get(user=self.pathologist)
        self.assertEqual(stored.digest, digest(key))
        self.assertNotIn(key, stored.digest)  # only the digest is stored
        self.assertEqual(client_with(key).get(self.url("api-cases")).status_code, 200)
        self.assertTrue(AuditEvent.objects.filter(actor=self.pathologist, detail__action="api_token_issued").exists())

    def test_rotation_revokes_the_old_token(self) -> None:
        old = self.api.token_key
        response = self.api.post(self.url("api-token"))
        self.assertEqual(response.status_code, 201)
        new = response.json()["token"]
        self.assertNotEqual(new, old)
        self.assertApiError(client_with(old).get(self.url("api-cases")), 401, "authentication_failed")
        self.assertEqual(client_with(new).get(self.url("api-cases")).status_code, 200)

    def test_delete_revokes(self) -> None:
        key = self.api.token_key
        self.assertEqual(self.api.delete(self.url("api-token")).status_code, 204)
        self.assertApiError(client_with(key).get(self.url("api-cases")), 401, "authentication_failed")

    def test_a_deactivated_account_token_stops_working(self) -> None:
        self.technician.is_active = False
        self.technician.save()
        self.assertApiError(self.api.get(self.url("api-cases")), 401, "authentication_failed")


class TokenCommandTests(ApiTestCase):
    def run_command(self, *args: str) -> str:
        out = StringIO()
        call_command("api_token", *args, stdout=out, stderr=StringIO())
        return out.getvalue().strip()

    def test_prints_a_token_once_then_only_rotates(self) -> None:
        ApiToken.objects.filter(user=self.lab_admin).delete()
        first = self.run_command(self.lab_admin.email)
        self.assertEqual(client_with(first).get(self.url("api-models")).status_code, 200)
        with self.assertRaisesMessage(CommandError, "stored hashed and cannot be shown again"):
            self.run_command(self.lab_admin.email.upper())
        rotated = self.run_command(self.lab_admin.email, "--rotate")
        self.assertNotEqual(rotated, first)
        self.assertFalse(ApiToken.objects.filter(digest=digest(first)).exists())
        self.assertApiError(client_with(first).get(self.url("api-models")), 401, "authentication_failed")

    def test_revoke_and_unknown_user(self) -> None:
        self.run_command(self.lab_admin.email)
        self.run_command(self.lab_admin.email, "--revoke")
        self.assertFalse(ApiToken.objects.filter(user=self.lab_admin).exists())
        with self.assertRaises(CommandError):
            self.run_command("nobody@example.org")
