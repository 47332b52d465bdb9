"""Limits and one-time codes hold across web processes: they live in the shared
cache (the database cache here, no CACHE_URL; Redis in production), not in each
process's memory.

Two real gunicorn processes on the test database: a TOTP code used to log in
through one is refused by the other, and failed logins counted by both add up.
"""

from __future__ import annotations

import re

import pytest
import requests

from tests.base import PASSWORD, BaseTransactionTestCase
from tests.review.helpers import activate_totp, totp_code_with_time_left
from tests.webproc import run_web
from tests.workerproc import require_services

pytestmark = [pytest.mark.services, pytest.mark.slow]


def form_post(session: requests.Session, url: str, data: dict) -> requests.Response:
    page = session.get(url, timeout=30)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    return session.post(url, data={**data, "csrfmiddlewaretoken": token}, timeout=30, allow_redirects=False)


def password_step(web, email: str, password: str) -> tuple[requests.Session, requests.Response]:
    session = requests.Session()
    # One site name for both processes, as behind one load balancer (allauth's
    # login-failure key includes the site's domain, here host:port otherwise).
    session.headers["Host"] = "localhost"
    return session, form_post(session, web.url + "/accounts/login/", {"login": email, "password": password})


class SharedLimitsTests(BaseTransactionTestCase):
    def setUp(self):
        require_services()
        super().setUp()

    def test_a_totp_code_is_accepted_once_across_two_web_processes(self):
        secret = activate_totp(self.pathologist)
        with run_web() as web_a, run_web() as web_b:
            first, response = password_step(web_a, self.pathologist.email, PASSWORD)
            self.assertEqual(response.headers.get("Location"), "/accounts/2fa/authenticate/")
            second, response = password_step(web_b, self.pathologist.email, PASSWORD)
            self.assertEqual(response.headers.get("Location"), "/accounts/2fa/authenticate/")

            # The servers accept only the current period's code: take one with time left to use
            # it twice (a code taken before the password steps could expire in between).
            code = totp_code_with_time_left(secret)
            accepted = form_post(first, web_a.url + "/accounts/2fa/authenticate/", {"code": code})
            self.assertEqual(accepted.status_code, 302, accepted.text[:500])
            self.assertEqual(first.get(web_a.url + "/", timeout=30, allow_redirects=False).status_code, 200)

            replayed = form_post(second, web_b.url + "/accounts/2fa/authenticate/", {"code": code})
            self.assertEqual(replayed.status_code, 200)  # the form again, with its error
            self.assertIn("Incorrect code", replayed.text)
            self.assertEqual(second.get(web_b.url + "/", timeout=30, allow_redirects=False).status_code, 302)

    def test_failed_logins_counted_by_two_processes_add_up(self):
        with run_web() as web_a, run_web() as web_b:
            for attempt in range(5):
                web = (web_a, web_b)[attempt % 2]
                _, response = password_step(web, self.technician.email, f"wrong {attempt}")
                self.assertEqual(response.status_code, 200)
                self.assertNotIn("Too many failed login attempts", response.text)
            for web in (web_a, web_b):
                _, response = password_step(web, self.technician.email, PASSWORD)
                self.assertIn("Too many failed login attempts", response.text)
