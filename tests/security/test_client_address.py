"""One client-address rule (``TRUSTED_PROXY_COUNT``) for allauth's login limits,
the DRF throttles and the lock-outs, tested without and with a proxy.

* Without a proxy (0) a client-written ``X-Forwarded-For`` is ignored: forging a
  new address per attempt neither escapes a limit nor spends someone else's.
* Behind one proxy (nginx appends ``$remote_addr``), the right-most entry is
  the client; entries a client wrote further left are ignored.
* Failed logins lock out one account from one address: a colleague behind the
  same NAT still logs in, and the locked account from its own address too.
"""

from __future__ import annotations

from django.conf import settings
from django.core.cache import cache
from django.test import RequestFactory, override_settings
from django.urls import reverse
from rest_framework.test import APIClient

from marrowfind.clientip import client_ip
from tests.base import PASSWORD, BaseTestCase

NGINX = "10.0.0.2"  # the proxy's own address, gunicorn's REMOTE_ADDR behind it
ANON_3_PER_MIN = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {
    **settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "anon": "3/min"}}


def request(remote: str, xff: str | None = None):
    extra = {"REMOTE_ADDR": remote}
    if xff is not None:
        extra["HTTP_X_FORWARDED_FOR"] = xff
    return RequestFactory().get("/", **extra)


class ClientAddressRuleTests(BaseTestCase):
    @override_settings(TRUSTED_PROXY_COUNT=0)
    def test_without_a_proxy_x_forwarded_for_is_ignored(self):
        self.assertEqual(client_ip(request("198.51.100.7", "203.0.113.9")), "198.51.100.7")

    @override_settings(TRUSTED_PROXY_COUNT=1)
    def test_behind_one_proxy_the_last_entry_is_the_client(self):
        self.assertEqual(client_ip(request(NGINX, "198.51.100.7")), "198.51.100.7")
        # The client wrote "203.0.113.9" itself; nginx appended the real address.
        self.assertEqual(client_ip(request(NGINX, "203.0.113.9, 198.51.100.7")), "198.51.100.7")

    @override_settings(TRUSTED_PROXY_COUNT=2)
    def test_behind_two_proxies_the_second_from_the_right(self):
        self.assertEqual(client_ip(request(NGINX, "203.0.113.9, 198.51.100.7, 10.0.0.1")), "198.51.100.7")

    @override_settings(TRUSTED_PROXY_COUNT=1)
    def test_a_request_that_skipped_the_proxy_is_its_connection_address(self):
        self.assertEqual(client_ip(request("198.51.100.7")), "198.51.100.7")
        self.assertEqual(client_ip(request(NGINX, "not-an-address")), NGINX)


class LoginLockOutTests(BaseTestCase):
    def setUp(self):
        super().setUp()
        cache.clear()

    def login(self, email, password, remote, xff=None):
        extra = {"REMOTE_ADDR": remote}
        if xff is not None:
            extra["HTTP_X_FORWARDED_FOR"] = xff
        self.client.logout()
        return self.client.post(reverse("account_login"), {"login": email, "password": password}, **extra)

    def assertLockedOut(self, response):
        self.assertContains(response, "Too many failed login attempts")
        self.assertNotIn("_auth_user_id", self.client.session)

    def assertLoggedIn(self, response):
        self.assertEqual(response.status_code, 302, response.content[:300])
        self.assertIn("_auth_user_id", self.client.session)

    def brute_force(self, email, remote, xff_for_attempt=lambda i: None, attempts=5):
        for attempt in range(attempts):
            self.assertEqual(self.login(email, f"wrong {attempt}", remote, xff_for_attempt(attempt)).status_code, 200)

    @override_settings(TRUSTED_PROXY_COUNT=0)
    def test_without_a_proxy_a_forged_header_does_not_escape_the_lock_out(self):
        self.brute_force(self.technician.email, "198.51.100.7", xff_for_attempt=lambda i: f"203.0.113.{i}")
        self.assertLockedOut(self.login(self.technician.email, PASSWORD, "198.51.100.7", "203.0.113.200"))

    @override_settings(TRUSTED_PROXY_COUNT=0)
    def test_without_a_proxy_a_colleague_on_the_same_address_still_logs_in(self):
        self.brute_force(self.technician.email, "198.51.100.7")
        self.assertLoggedIn(self.login(self.pathologist.email, PASSWORD, "198.51.100.7"))

    @override_settings(TRUSTED_PROXY_COUNT=1)
    def test_behind_the_proxy_the_lock_out_is_per_account_and_client_address(self):
        attacker, colleague_nat, victim_home = "198.51.100.7", "198.51.100.7", "192.0.2.44"
        self.brute_force(self.technician.email, NGINX, xff_for_attempt=lambda i: f"203.0.113.{i}, {attacker}")
        # The attacker is locked out of that account, whatever it writes in the header...
        self.assertLockedOut(self.login(self.technician.email, PASSWORD, NGINX, f"192.0.2.44, {attacker}"))
        # ...a colleague behind the same NAT is not...
        self.assertLoggedIn(self.login(self.pathologist.email, PASSWORD, NGINX, colleague_nat))
        # ...nor the account's owner from another address.
        self.assertLoggedIn(self.login(self.technician.email, PASSWORD, NGINX, victim_home))

    @override_settings(TRUSTED_PROXY_COUNT=0)
    def test_without_a_proxy_everyone_behind_nginx_would_share_one_address(self):
        """The reason for the setting: with 0, nginx's address is every client's."""
        self.brute_force(self.technician.email, NGINX, xff_for_attempt=lambda i: "198.51.100.7")
        self.assertLockedOut(self.login(self.technician.email, PASSWORD, NGINX, "192.0.2.44"))


@override_settings(REST_FRAMEWORK=ANON_3_PER_MIN)
class ApiThrottleAddressTests(BaseTestCase):
    def setUp(self):
        super().setUp()
        cache.clear()

    def get_schema(self, remote, xff=None):
        extra = {"REMOTE_ADDR": remote}
        if xff is not None:
            extra["HTTP_X_FORWARDED_FOR"] = xff
        return APIClient().get(reverse("api-schema"), **extra)

    @override_settings(TRUSTED_PROXY_COUNT=0)
    def test_without_a_proxy_forging_the_header_does_not_reset_the_budget(self):
        for i in range(3):
            self.assertEqual(self.get_schema("198.51.100.7", f"203.0.113.{i}").status_code, 200)
        self.assertEqual(self.get_schema("198.51.100.7", "203.0.113.99").status_code, 429)
        self.assertEqual(self.get_schema("192.0.2.44").status_code, 200)  # another client: own budget

    @override_settings(TRUSTED_PROXY_COUNT=1)
    def test_behind_the_proxy_each_client_has_its_own_budget(self):
        for i in range(3):
            self.assertEqual(self.get_schema(NGINX, f"203.0.113.{i}, 198.51.100.7").status_code, 200)
        self.assertEqual(self.get_schema(NGINX, "203.0.113.99, 198.51.100.7").status_code, 429)
        self.assertEqual(self.get_schema(NGINX, "192.0.2.44").status_code, 200)
