"""A loopback SITE_URL outside debug is warned about (reports.W001) at start-up and by
`check --deploy`: the QR codes printed on reports would open nowhere but the server."""

from __future__ import annotations

import io
import os
import secrets
import subprocess
import sys
from pathlib import Path

from django.core.management import call_command
from django.test import SimpleTestCase, override_settings

from reports.checks import is_loopback_url, site_url_reachable_from_paper

REPO_ROOT = Path(__file__).resolve().parents[2]


class LoopbackSiteUrlCheckTests(SimpleTestCase):
    def test_loopback_addresses_are_recognised(self):
        for url in ("http://localhost:8000", "http://127.0.0.1:8000", "https://127.8.9.10", "http://[::1]:8000",
                    "http://LOCALHOST.", "http://app.localhost:8000"):
            with self.subTest(url):
                self.assertTrue(is_loopback_url(url))
        for url in ("https://marrowfind.example.org", "http://10.0.0.5:8000", "http://192.168.1.20", "http://[2001:db8::1]", ""):
            with self.subTest(url):
                self.assertFalse(is_loopback_url(url))

    @override_settings(DEBUG=False, SITE_URL="http://127.0.0.1:8000")
    def test_the_start_up_checks_warn_outside_debug(self):
        warnings = site_url_reachable_from_paper(None)
        self.assertEqual([w.id for w in warnings], ["reports.W001"])
        self.assertIn("http://127.0.0.1:8000", warnings[0].msg)
        err = io.StringIO()
        call_command("check", stdout=io.StringIO(), stderr=err)  # what migrate and runserver run first
        self.assertIn("reports.W001", err.getvalue())

    def test_no_warning_in_debug_or_for_a_public_address(self):
        with override_settings(DEBUG=True, SITE_URL="http://localhost:8000"):
            self.assertEqual(site_url_reachable_from_paper(None), [])
        with override_settings(DEBUG=False, SITE_URL="https://marrowfind.example.org"):
            self.assertEqual(site_url_reachable_from_paper(None), [])

    def test_check_deploy_fails_on_the_warning_with_production_settings(self):
        env = {key: value for key, value in os.environ.items()
               if key not in ("DEBUG", "SECURE_HTTPS", "STATIC_STORAGE", "SITE_URL")}
        env.update({
            "DJANGO_SETTINGS_MODULE": "marrowfind.settings",
            "MARROWFIND_VAR_DIR": os.environ.get("MARROWFIND_VAR_DIR", "/tmp"),
            "DATABASE_URL": "postgres://marrowfind:secret@db.internal:5432/marrowfind",
            "CELERY_BROKER_URL": "redis://redis.internal:6379/0",
            "SECRET_KEY": secrets.token_urlsafe(50),
            "DEBUG": "0",
            "ALLOWED_HOSTS": "marrowfind.example.org",
            "CSRF_TRUSTED_ORIGINS": "https://marrowfind.example.org",
            "SITE_URL": "http://127.0.0.1:8000",
        })
        result = subprocess.run(
            [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
            cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=180, check=False,
        )
        self.assertNotEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertIn("reports.W001", result.stderr)
        self.assertIn("will not open on any other device", result.stderr)
        self.assertEqual(result.stderr.count("(reports.W001)"), 1)
        self.assertIn("System check identified 1 issue", result.stdout + result.stderr)
