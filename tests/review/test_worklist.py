"""The worklist: awaiting review / assigned to me / all, filters by status,
date, specimen and flag, search by accession number; lab-scoped."""

from __future__ import annotations

from datetime import timedelta

from django.urls import reverse
from django.utils import timezone

from diagnostics.models import CaseStatus, Specimen
from tests.base import BaseTestCase
from tests.factories import CaseFactory, analysed_case


class WorklistTests(BaseTestCase):
    def setUp(self):
        super().setUp()
        now = timezone.now()
        self.waiting, _ = analysed_case(self.lab, n_images=2, accession_number="BM-0001", low_confidence=(1,))
        self.flagged, _ = analysed_case(self.lab, n_images=1, accession_number="BM-0002")
        self.flagged.who_flag = True
        self.flagged.summary = {"images": 1, "blast_fraction": 0.31, "who_flag": True}
        self.flagged.save()
        self.blood = CaseFactory(
            lab=self.lab, accession_number="PB-0003", specimen=Specimen.PERIPHERAL_BLOOD, status=CaseStatus.PROCESSING
        )
        self.old_signed = CaseFactory(lab=self.lab, accession_number="BM-0004", status=CaseStatus.SIGNED_OUT)
        self.old_signed.created_at = now - timedelta(days=40)
        self.old_signed.save()
        self.foreign = CaseFactory(lab=self.other_lab, accession_number="BM-0001-B", status=CaseStatus.AWAITING_REVIEW)
        self.url = reverse("worklist")

    def accessions(self, user, **params) -> list[str]:
        self.client.force_login(user)
        response = self.client.get(self.url, params)
        self.assertEqual(response.status_code, 200)
        return [case.accession_number for case in response.context["page"].object_list]

    def test_pathologist_default_is_awaiting_review_flagged_first(self):
        self.assertEqual(self.accessions(self.pathologist), ["BM-0002", "BM-0001"])

    def test_technician_default_is_all_lab_cases(self):
        self.assertEqual(set(self.accessions(self.technician)), {"BM-0001", "BM-0002", "PB-0003", "BM-0004"})

    def test_assigned_to_me(self):
        self.waiting.assigned_to = self.pathologist
        self.waiting.save()
        self.assertEqual(self.accessions(self.pathologist, scope="mine"), ["BM-0001"])
        self.assertEqual(self.accessions(self.lab_admin, scope="mine"), [])

    def test_filters(self):
        self.assertEqual(self.accessions(self.pathologist, scope="all", status="processing"), ["PB-0003"])
        self.assertEqual(self.accessions(self.pathologist, scope="all", specimen=Specimen.PERIPHERAL_BLOOD), ["PB-0003"])
        self.assertEqual(self.accessions(self.pathologist, scope="all", flag="who"), ["BM-0002"])
        self.assertEqual(self.accessions(self.pathologist, scope="all", flag="low_confidence"), ["BM-0001"])
        since = (timezone.now() - timedelta(days=7)).date().isoformat()
        self.assertNotIn("BM-0004", self.accessions(self.pathologist, scope="all", date_from=since))
        until = (timezone.now() - timedelta(days=30)).date().isoformat()
        self.assertEqual(self.accessions(self.pathologist, scope="all", date_to=until), ["BM-0004"])

    def test_search_by_accession(self):
        self.assertEqual(self.accessions(self.pathologist, scope="all", q="pb-00"), ["PB-0003"])

    def test_bad_filter_values_show_an_error_not_a_crash(self):
        self.client.force_login(self.pathologist)
        response = self.client.get(self.url, {"date_from": "not-a-date", "status": "bogus"})
        self.assertEqual(response.status_code, 200)
        self.assertTrue(response.context["form"].errors)

    def test_row_counts(self):
        self.client.force_login(self.pathologist)
        response = self.client.get(self.url, {"q": "BM-0001"})
        row = response.context["page"].object_list[0]
        self.assertEqual((row.n_images, row.n_unreviewed, row.n_unidentified), (2, 2, 1))
        self.assertContains(self.client.get(self.url, {"q": "BM-0002"}), "31.0%")

    def test_htmx_returns_only_the_table(self):
        self.client.force_login(self.pathologist)
        response = self.client.get(self.url, {"q": "BM"}, HTTP_HX_REQUEST="true")
        self.assertNotContains(response, "<html")
        self.assertContains(response, "BM-0001")

    def test_outsider_sees_only_their_lab(self):
        self.assertEqual(self.accessions(self.outsider), ["BM-0001-B"])
        self.assertEqual(self.accessions(self.outsider, scope="all", q="BM-0001"), ["BM-0001-B"])

    def test_anonymous_is_sent_to_login(self):
        response = self.client.get(self.url)
        self.assertEqual(response.status_code, 302)
        self.assertTrue(response["Location"].startswith(reverse("account_login")))
