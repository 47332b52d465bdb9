"""Assigning a case to a pathologist (it then shows under "Assigned to me")."""

from __future__ import annotations

from django.urls import reverse

from diagnostics.models import AuditEvent
from tests.base import BaseTestCase
from tests.factories import analysed_case


class AssignTests(BaseTestCase):
    def setUp(self):
        super().setUp()
        self.case, _ = analysed_case(self.lab, n_images=1)
        self.url = reverse("case_assign", args=[self.case.pk])

    def test_assign_to_me_and_to_a_colleague(self):
        self.client.force_login(self.pathologist)
        self.client.post(self.url, {"me": "1"})
        self.case.refresh_from_db()
        self.assertEqual(self.case.assigned_to, self.pathologist)
        self.client.post(self.url, {"assignee": self.lab_admin.pk})
        self.case.refresh_from_db()
        self.assertEqual(self.case.assigned_to, self.lab_admin)
        self.assertEqual(AuditEvent.objects.filter(case=self.case, detail__action="assigned").count(), 2)

    def test_cannot_assign_to_a_technician_or_an_outsider(self):
        self.client.force_login(self.pathologist)
        for user in (self.technician, self.outsider):
            self.client.post(self.url, {"assignee": user.pk})
            self.case.refresh_from_db()
            self.assertIsNone(self.case.assigned_to)

    def test_technician_gets_403(self):
        self.client.force_login(self.technician)
        self.assertEqual(self.client.post(self.url, {"me": "1"}).status_code, 403)

    def test_outsider_gets_404(self):
        self.client.force_login(self.outsider)
        self.assertEqual(self.client.post(self.url, {"me": "1"}).status_code, 404)
        self.case.refresh_from_db()
        self.assertIsNone(self.case.assigned_to)

    def test_anonymous_is_sent_to_login(self):
        response = self.client.post(self.url, {"me": "1"})
        self.assertTrue(response["Location"].startswith(reverse("account_login")))
