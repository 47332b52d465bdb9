"""Two-factor with allauth's TOTP: activation from the secret shown on the
page, and a login that stops at the code step until a valid code is given."""

from __future__ import annotations

from allauth.mfa.models import Authenticator
from django.core.cache import cache
from django.urls import reverse

from review.signout import has_totp, mfa_passed_at
from tests.base import PASSWORD, BaseTestCase
from tests.review.helpers import activate_totp, login_with_password, totp_code


class TotpTests(BaseTestCase):
    def setUp(self):
        super().setUp()
        cache.clear()

    def test_activation_page_in_site_layout_and_activation_with_a_real_code(self):
        login_with_password(self.client, self.pathologist)
        page = self.client.get(reverse("mfa_activate_totp"))
        self.assertTrue(page["Location"].startswith(reverse("account_reauthenticate")))  # allauth asks again
        reauth = self.client.post(page["Location"], {"password": PASSWORD})
        self.assertEqual(reauth.status_code, 302)
        page = self.client.get(reverse("mfa_activate_totp"))
        self.assertEqual(page.status_code, 200)
        self.assertContains(page, "css/review.css")
        secret = page.context["form"].secret
        response = self.client.post(reverse("mfa_activate_totp"), {"code": totp_code(secret)})
        self.assertEqual(response.status_code, 302)
        self.assertTrue(has_totp(self.pathologist))
        self.assertTrue(Authenticator.objects.filter(user=self.pathologist, type="totp").exists())

    def test_login_needs_the_code_and_records_the_mfa_step(self):
        secret = activate_totp(self.pathologist)
        response = self.client.post(reverse("account_login"), {"login": self.pathologist.email, "password": PASSWORD})
        self.assertEqual(response["Location"], reverse("mfa_authenticate"))
        self.assertEqual(self.client.get(reverse("worklist")).status_code, 302)  # not in yet
        wrong = "123456" if totp_code(secret) != "123456" else "654321"
        self.assertEqual(self.client.post(reverse("mfa_authenticate"), {"code": wrong}).status_code, 200)
        self.assertEqual(self.client.post(reverse("mfa_authenticate"), {"code": totp_code(secret)}).status_code, 302)
        response = self.client.get(reverse("worklist"))
        self.assertEqual(response.status_code, 200)
        self.assertIsNotNone(mfa_passed_at(response.wsgi_request, self.pathologist))

    def test_a_used_code_cannot_be_replayed(self):
        secret = activate_totp(self.pathologist)
        code = totp_code(secret)
        self.client.post(reverse("account_login"), {"login": self.pathologist.email, "password": PASSWORD})
        self.assertEqual(self.client.post(reverse("mfa_authenticate"), {"code": code}).status_code, 302)
        other = self.client_class()
        other.post(reverse("account_login"), {"login": self.pathologist.email, "password": PASSWORD})
        self.assertEqual(other.post(reverse("mfa_authenticate"), {"code": code}).status_code, 200)
