"""Playwright + Django live server for the browser tests.

* The live server is Django's ``StaticLiveServerTestCase`` (a transaction
  test: the rows it writes are committed, so a real worker sees them), with
  the static files (htmx, CSS) served from the finders.
* The browser is the system Chromium, headless.
* Playwright's sync API runs an event loop in this thread, which Django's
  async-safety check would take for async code around the ORM calls the test
  makes; ``DJANGO_ALLOW_ASYNC_UNSAFE`` is set for the browser tests only.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import unittest
from pathlib import Path

from django.contrib.staticfiles.testing import StaticLiveServerTestCase

from tests.base import PASSWORD, MediaRootMixin, _Users

ARTIFACTS = Path(__file__).resolve().parent.parent.parent / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"


class BrowserTestCase(MediaRootMixin, _Users, StaticLiveServerTestCase):
    host = "127.0.0.1"
    password = PASSWORD

    @classmethod
    def setUpClass(cls):
        from tests.workerproc import services_unavailable_reason

        if not Path(CHROMIUM).exists():
            raise unittest.SkipTest(f"no Chromium at {CHROMIUM}")
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
        super().setUpClass()
        reason = services_unavailable_reason()
        if reason:
            super().tearDownClass()
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
            raise unittest.SkipTest(reason)
        from playwright.sync_api import sync_playwright

        cls._playwright = sync_playwright().start()
        cls.browser = cls._playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        ARTIFACTS.mkdir(exist_ok=True)

    @classmethod
    def tearDownClass(cls):
        cls.browser.close()
        cls._playwright.stop()
        super().tearDownClass()
        os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)

    def setUp(self):
        from tests.workerproc import purge_broker

        super().setUp()
        self.make_users()
        purge_broker()
        self.tmp = Path(tempfile.mkdtemp(prefix="mf-browser-"))
        self._contexts = []

    def tearDown(self):
        for context in self._contexts:
            context.close()
        shutil.rmtree(self.tmp, ignore_errors=True)
        super().tearDown()

    def url(self, path: str) -> str:
        return self.live_server_url + path

    def new_page(self):
        """A page in a fresh browser context (its own cookies: one user each)."""
        context = self.browser.new_context(viewport={"width": 1360, "height": 900}, accept_downloads=True)
        context.set_default_timeout(30_000)
        self._contexts.append(context)
        return context.new_page()

    def login(self, page, user) -> None:
        page.goto(self.url("/accounts/login/"))
        if not ARTIFACTS.joinpath("login.png").exists():
            self.screenshot(page, "login")
        page.fill("#id_login", user.email)
        page.fill("#id_password", PASSWORD)
        page.click("#login-form button[type=submit]")
        page.wait_for_url(lambda url: "/accounts/login/" not in url)

    def screenshot(self, page, name: str) -> Path:
        """A full-page PNG in test-artifacts/, once every image on the page has loaded
        (a broken image fails the test here rather than hiding in the picture)."""
        # A function, not a bare expression: Playwright evaluates a bare expression with eval(),
        # which the pages' Content-Security-Policy refuses.
        page.wait_for_function(
            "() => Array.from(document.images)"
            ".filter(i => i.loading !== 'lazy' || i.getBoundingClientRect().top < innerHeight)"
            ".every(i => i.complete)"
        )
        broken = page.evaluate("Array.from(document.images).filter(i => i.complete && !i.naturalWidth).map(i => i.src)")
        assert not broken, f"images that did not load on {page.url}: {broken}"
        path = ARTIFACTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path
