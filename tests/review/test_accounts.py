"""Accounts: email login, no open sign-up, password reset by email, and the
allauth login rate limit locking out a guesser."""

from __future__ import annotations

import re

from django.core import mail
from django.core.cache import cache
from django.urls import reverse

from tests.base import PASSWORD, BaseTestCase

NEW_PASSWORD = "another long password 9"


class AccountTests(BaseTestCase):
    def setUp(self):
        super().setUp()
        cache.clear()

    def test_login_by_email(self):
        response = self.client.post(reverse("account_login"), {"login": self.technician.email, "password": PASSWORD})
        self.assertRedirects(response, reverse("worklist"), fetch_redirect_response=False)

    def test_login_page_is_styled_and_offers_no_sign_up(self):
        response = self.client.get(reverse("account_login"))
        self.assertContains(response, "css/review.css")
        self.assertContains(response, "no open sign-up")
        self.assertNotContains(response, reverse("account_signup"))

    def test_sign_up_is_closed(self):
        response = self.client.post(
            reverse("account_signup"), {"email": "new@x.org", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD}
        )
        self.assertContains(response, "Sign Up Closed")
        from django.contrib.auth import get_user_model

        self.assertFalse(get_user_model().objects.filter(email="new@x.org").exists())

    def test_password_reset_by_email(self):
        self.client.post(reverse("account_reset_password"), {"email": self.technician.email})
        self.assertEqual(len(mail.outbox), 1)
        link = re.search(r"http://testserver(/accounts/password/reset/key/\S+)", mail.outbox[0].body).group(1)
        page = self.client.get(link, follow=True)
        target = page.redirect_chain[-1][0] if page.redirect_chain else link
        self.client.post(target, {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
        self.technician.refresh_from_db()
        self.assertTrue(self.technician.check_password(NEW_PASSWORD))

    def test_failed_logins_lock_out_even_the_right_password(self):
        for _ in range(5):
            response = self.client.post(reverse("account_login"), {"login": self.technician.email, "password": "wrong guess"})
            self.assertEqual(response.status_code, 200)
        response = self.client.post(reverse("account_login"), {"login": self.technician.email, "password": PASSWORD})
        self.assertEqual(response.status_code, 200)
        self.assertContains(response, "Too many failed login attempts")
        self.assertNotIn("_auth_user_id", self.client.session)
