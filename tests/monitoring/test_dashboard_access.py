"""Only site admins (is_staff) see the monitoring dashboard: anonymous visitors
are sent to log in, every lab role (even a lab admin) and outsiders get 404."""

from __future__ import annotations

from django.core.cache import cache
from django.urls import reverse

from tests.base import BaseTestCase
from tests.factories import UserFactory

PAGES = ("monitoring_dashboard", "monitoring_panels", "monitoring_data")


class DashboardAccessTests(BaseTestCase):
    def setUp(self):
        super().setUp()
        cache.clear()
        self.site_admin = UserFactory(username="siteadmin", site_admin=True)

    def test_anonymous_is_sent_to_login(self):
        for name in PAGES:
            response = self.client.get(reverse(name))
            self.assertEqual(response.status_code, 302, name)
            self.assertIn(reverse("account_login"), response["Location"], name)

    def test_lab_members_and_outsiders_get_404(self):
        for user in (self.technician, self.pathologist, self.lab_admin, self.outsider):
            self.client.force_login(user)
            for name in PAGES:
                self.assertEqual(self.client.get(reverse(name)).status_code, 404, f"{user.username} {name}")

    def test_site_admin_sees_the_page_the_fragment_and_the_json(self):
        self.client.force_login(self.site_admin)
        page = self.client.get(reverse("monitoring_dashboard"))
        self.assertEqual(page.status_code, 200)
        self.assertContains(page, 'id="throughput-chart"')
        self.assertContains(page, 'id="monitoring-chart-data"')
        self.assertContains(page, "vendor/chart-4.6.1.umd.min.js")  # self-hosted, no CDN
        self.assertNotContains(page, "cdn.")
        fragment = self.client.get(reverse("monitoring_panels"))
        self.assertEqual(fragment.status_code, 200)
        self.assertContains(fragment, 'hx-trigger="every')
        self.assertNotContains(fragment, "<html")
        data = self.client.get(reverse("monitoring_data")).json()
        self.assertEqual(data["window"], "1h")
        self.assertEqual(set(data["throughput"]["series"]), {"analysed", "segmented", "failed"})

    def test_unknown_window_falls_back_to_the_default(self):
        self.client.force_login(self.site_admin)
        self.assertEqual(self.client.get(reverse("monitoring_data"), {"window": "1y"}).json()["window"], "1h")
        self.assertEqual(self.client.get(reverse("monitoring_data"), {"window": "24h"}).json()["window"], "24h")

    def test_a_site_admin_that_was_deactivated_loses_access(self):
        self.client.force_login(self.site_admin)
        self.site_admin.is_staff = False
        self.site_admin.save(update_fields=["is_staff"])
        self.assertEqual(self.client.get(reverse("monitoring_dashboard")).status_code, 404)
