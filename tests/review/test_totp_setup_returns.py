"""Setting up TOTP from the sign-out page comes back to the sign-out page (a
``next`` path on this site only), and the activation code is spent: it signs
nothing afterwards. The profile page sets the name and credentials a signer is
printed with, for the logged-in user only, and also returns to ``next``."""

from __future__ import annotations

from django.core.cache import cache
from django.urls import reverse

from accounts.services import credentials_of
from review.models import SignOut
from review.signout import has_totp
from tests.base import PASSWORD, BaseTestCase
from tests.factories import analysed_case, review_case
from tests.review.helpers import login_with_password, post_sign_out, totp_code


class TotpSetupReturnsTests(BaseTestCase):
    def setUp(self):
        super().setUp()
        cache.clear()
        self.case, _ = analysed_case(self.lab, n_images=2)
        review_case(self.case, self.pathologist)
        self.sign_out_url = reverse("case_sign_out", args=[self.case.pk])
        login_with_password(self.client, self.pathologist)

    def activate(self, next_url: str) -> tuple[str, object]:
        page = self.client.get(f"{reverse('mfa_activate_totp')}?next={next_url}")
        if page.status_code == 302 and page["Location"].startswith(reverse("account_reauthenticate")):
            self.assertEqual(self.client.post(page["Location"], {"password": PASSWORD}).status_code, 302)
            page = self.client.get(f"{reverse('mfa_activate_totp')}?next={next_url}")
        secret = page.context["form"].secret
        return secret, self.client.post(reverse("mfa_activate_totp"), {"code": totp_code(secret)})

    def test_activation_returns_to_the_sign_out_page_and_its_code_is_spent(self):
        secret, done = self.activate(self.sign_out_url)
        self.assertRedirects(done, self.sign_out_url, fetch_redirect_response=False)
        self.assertTrue(has_totp(self.pathologist))
        self.assertContains(self.client.get(self.sign_out_url), "Two-factor authentication is on.")
        refused = post_sign_out(self.client, self.case, secret)  # the activation code, again
        self.assertEqual(refused.status_code, 400)
        self.assertFalse(SignOut.objects.exists())

    def test_a_next_on_another_site_is_ignored(self):
        _, done = self.activate("https://evil.example.org/phish")
        self.assertEqual(done.status_code, 302)
        self.assertNotIn("evil.example.org", done["Location"])

    def test_profile_sets_name_and_credentials_and_goes_back(self):
        response = self.client.post(reverse("profile"), {"first_name": "Patricia", "last_name": "Okafor",
                                                         "credentials": "MD,  FRCPath", "next": self.sign_out_url})
        self.assertRedirects(response, self.sign_out_url, fetch_redirect_response=False)
        self.pathologist.refresh_from_db()
        self.assertEqual(self.pathologist.get_full_name(), "Patricia Okafor")
        self.assertEqual(credentials_of(self.pathologist), "MD, FRCPath")
        self.assertContains(self.client.get(self.sign_out_url), "Patricia Okafor, MD, FRCPath")
        too_long = self.client.post(reverse("profile"), {"credentials": "x" * 121})
        self.assertEqual(too_long.status_code, 400)
        self.assertEqual(credentials_of(self.pathologist), "MD, FRCPath")
        # Another user's profile cannot be reached: the page is always the logged-in user's own.
        self.client.force_login(self.outsider)
        page = self.client.get(reverse("profile"))
        self.assertNotContains(page, "Okafor")
        self.assertEqual(page.context["form"].initial["credentials"], "")

    def test_anonymous_is_sent_to_login(self):
        self.client.logout()
        response = self.client.get(reverse("profile"))
        self.assertEqual(response.status_code, 302)
        self.assertTrue(response["Location"].startswith(reverse("account_login")))
