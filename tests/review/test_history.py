"""Case history: every case of the user's labs, paginated and searchable."""

from __future__ import annotations

from django.urls import reverse

from tests.base import BaseTestCase
from tests.factories import CaseFactory


class HistoryTests(BaseTestCase):
    def setUp(self):
        super().setUp()
        for n in range(30):
            CaseFactory(lab=self.lab, accession_number=f"H-{n:03d}", patient_pseudonym=f"PAT{n:03d}")
        CaseFactory(lab=self.other_lab, accession_number="H-999", patient_pseudonym="PAT999")
        self.url = reverse("case_history")

    def test_paginated_newest_first(self):
        self.client.force_login(self.technician)
        first = self.client.get(self.url)
        self.assertEqual(first.context["page"].paginator.count, 30)
        self.assertEqual(len(first.context["page"].object_list), 25)
        self.assertEqual(first.context["page"].object_list[0].accession_number, "H-029")
        second = self.client.get(self.url, {"page": 2})
        self.assertEqual([c.accession_number for c in second.context["page"].object_list], [f"H-{n:03d}" for n in range(4, -1, -1)])

    def test_search_by_accession_or_pseudonym(self):
        self.client.force_login(self.pathologist)
        self.assertEqual([c.accession_number for c in self.client.get(self.url, {"q": "h-01"}).context["page"]], [f"H-{n:03d}" for n in range(19, 9, -1)])
        self.assertEqual([c.accession_number for c in self.client.get(self.url, {"q": "PAT007"}).context["page"]], ["H-007"])

    def test_outsider_sees_only_their_lab(self):
        self.client.force_login(self.outsider)
        response = self.client.get(self.url, {"q": "H-"})
        self.assertEqual([c.accession_number for c in response.context["page"]], ["H-999"])

    def test_anonymous_is_sent_to_login(self):
        response = self.client.get(self.url)
        self.assertEqual(response.status_code, 302)
        self.assertTrue(response["Location"].startswith(reverse("account_login")))
