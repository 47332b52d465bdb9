"""The Django admin is no way around the login's rate limits and two-factor,
and shows no TOTP secret and no API token."""

from __future__ import annotations

from allauth.mfa.models import Authenticator
from django.contrib.auth.hashers import make_password
from django.core.cache import cache
from django.test import override_settings
from django.urls import reverse

from apitokens import services as api_tokens
from apitokens.models import ApiToken
from tests.base import PASSWORD, BaseTestCase
from tests.review.helpers import activate_totp, login_with_password, login_with_totp


@override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"])
class AdminTwoFactorTests(BaseTestCase):
    def setUp(self):
        super().setUp()
        cache.clear()
        self.lab_admin.is_staff = self.lab_admin.is_superuser = True
        self.lab_admin.password = make_password(PASSWORD)
        self.lab_admin.save()

    def test_the_admin_login_page_is_the_site_login(self):
        response = self.client.get(reverse("admin:login") + "?next=/admin/diagnostics/case/")
        self.assertRedirects(response, reverse("account_login") + "?next=/admin/diagnostics/case/",
                             fetch_redirect_response=False)

    def test_admin_login_with_the_password_alone_is_refused(self):
        activate_totp(self.lab_admin)
        response = self.client.post(reverse("admin:login"), {"username": self.lab_admin.username, "password": PASSWORD})
        self.assertEqual(response.status_code, 302)
        self.assertTrue(response["Location"].startswith(reverse("account_login")))
        self.assertNotIn("_auth_user_id", self.client.session)
        self.assertEqual(self.client.get(reverse("admin:index")).status_code, 302)

    def test_a_staff_session_without_two_factor_does_not_open_the_admin(self):
        login_with_password(self.client, self.lab_admin)  # no authenticator: the password alone logs in
        response = self.client.get(reverse("admin:index"), follow=True)
        self.assertEqual(response.status_code, 403)
        self.assertContains(response, "needs two-factor sign-in", status_code=403)
        self.assertEqual(self.client.get(reverse("admin:diagnostics_case_changelist")).status_code, 302)

    def test_a_staff_session_that_passed_two_factor_opens_the_admin(self):
        secret = activate_totp(self.lab_admin)
        login_with_totp(self.client, self.lab_admin, secret)
        self.assertEqual(self.client.get(reverse("admin:index")).status_code, 200)
        self.assertEqual(self.client.get(reverse("admin:diagnostics_case_changelist")).status_code, 200)

    def test_a_non_staff_member_with_two_factor_does_not_open_it(self):
        secret = activate_totp(self.pathologist)
        login_with_totp(self.client, self.pathologist, secret)
        self.assertEqual(self.client.get(reverse("admin:index"), follow=True).status_code, 403)

    def test_fifty_wrong_passwords_are_rate_limited(self):
        answered = []
        for attempt in range(50):
            # The admin form no longer checks passwords at all...
            admin = self.client.post(reverse("admin:login"), {"username": self.lab_admin.username, "password": f"x{attempt}"})
            self.assertEqual(admin.status_code, 302)
            # ...and the one login that does locks the guesser out after 5.
            response = self.client.post(reverse("account_login"), {"login": self.lab_admin.email, "password": f"x{attempt}"})
            # Refused: the lock-out of this account (the form says so), or after 30 tries
            # allauth's per-address limit on the login page itself (429).
            refused = response.status_code == 429 or "Too many failed login attempts" in response.content.decode()
            answered.append(not refused)
        self.assertEqual(answered, [True] * 5 + [False] * 45)
        response = self.client.post(reverse("account_login"), {"login": self.lab_admin.email, "password": PASSWORD})
        self.assertEqual(response.status_code, 429)  # even the right password, from this address
        self.assertNotIn("_auth_user_id", self.client.session)

    def test_no_totp_secret_and_no_api_token_is_shown(self):
        secret = activate_totp(self.lab_admin)
        victim_secret = activate_totp(self.pathologist)
        victim_token = api_tokens.issue(self.pathologist).key
        login_with_totp(self.client, self.lab_admin, secret)
        authenticator = Authenticator.objects.get(user=self.pathologist, type="totp")
        token = ApiToken.objects.get(user=self.pathologist)
        pages = [
            reverse("admin:mfa_authenticator_changelist"),
            reverse("admin:mfa_authenticator_change", args=[authenticator.pk]),
            reverse("admin:apitokens_apitoken_changelist"),
            reverse("admin:apitokens_apitoken_change", args=[token.pk]),
        ]
        for url in pages:
            with self.subTest(url=url):
                page = self.client.get(url)
                self.assertEqual(page.status_code, 200)
                body = page.content.decode()
                self.assertNotIn(victim_secret, body)
                self.assertNotIn(secret, body)
                self.assertNotIn(victim_token, body)
                self.assertNotIn(token.digest, body)
        self.assertEqual(self.client.get("/admin/authtoken/tokenproxy/").status_code, 404)
        # Nothing can be edited into them either.
        self.assertEqual(self.client.post(pages[1], {"data": "{}"}).status_code, 403)
