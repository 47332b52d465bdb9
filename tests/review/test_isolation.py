"""Every view of the review area, for the outsider (a pathologist of lab B:
404 for anything of lab A) and for an anonymous visitor (login page).

The table below must name every route in review.views, so a new
view without an isolation test fails here."""

from __future__ import annotations

import json
import uuid

from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from accounts import urls as accounts_urls
from diagnostics import tiles
from diagnostics.models import CaseStatus, Cell, Membership
from instant import urls as instant_urls
from instant.models import InstantCheck
from review import urls as review_urls
from review.models import CellReview, Review, SignOut
from tests.base import BaseTestCase
from tests.factories import add_cells, analysed_case
from tests.imagefactory import png_bytes

# Routes that list "my labs' things" rather than one object: the outsider gets
# a 200 page with only lab B data (asserted in test_worklist / test_history /
# test_instant_check / test_members); everything else is object-scoped.
# The profile page is the logged-in user's own: the outsider sees their own name only.
LISTS = {"worklist", "case_history", "members_home", "instant_check", "profile"}


class IsolationTests(BaseTestCase):
    def setUp(self):
        super().setUp()
        self.case, self.images = analysed_case(self.lab, n_images=1, status=CaseStatus.SIGNED_OUT)
        self.case.sign_out_version = 1
        self.case.save()
        SignOut.objects.create(case=self.case, version=1, signed_by=self.pathologist, labels={})
        self.check = InstantCheck.objects.create(
            lab=self.lab, created_by=self.technician, original_filename="a.png", sha256="0" * 64, width=64, height=64,
            file=SimpleUploadedFile("a.png", png_bytes(seed=9)),
        )
        tiles.make_tiles(self.images[0].analyses.get().pk)  # real tiles: the outsider's 404 is not "no such file"
        membership = Membership.objects.get(user=self.technician, lab=self.lab)
        c, i = self.case.pk, self.images[0].pk
        (cell,) = add_cells(self.images[0].analyses.get(), ["blast"])
        change = {"label": "lymphocyte", "token": str(uuid.uuid4()), "cells": [{"id": cell.pk, "version": 0}]}
        missed = {"image": i, "x": 5, "y": 5, "label": "blast", "token": str(uuid.uuid4())}
        self.routes = {
            "worklist": ("get", reverse("worklist"), {}),
            "case_history": ("get", reverse("case_history"), {}),
            "case_review": ("get", reverse("case_review", args=[c]), {}),
            "case_review_panel": ("get", reverse("case_review_panel", args=[c]), {}),
            "review_image": ("post", reverse("review_image", args=[c, i]), {"label": "Pro", "submission_token": str(uuid.uuid4())}),
            "image_viewer": ("get", reverse("image_viewer", args=[c, i]), {}),
            "image_tiles_dzi": ("get", reverse("image_tiles_dzi", args=[c, i, "original"]), {}),
            "image_tile": ("get", reverse("image_tile", kwargs={
                "pk": c, "image_pk": i, "layer": "original", "level": "0", "col": "0", "row": "0", "fmt": "jpeg"}), {}),
            "case_assign": ("post", reverse("case_assign", args=[c]), {"me": "1"}),
            "case_sign_out": ("post", reverse("case_sign_out", args=[c]),
                              {"diagnosis": "no_evidence_of_all", "confirm": "on", "code": "123456"}),
            "case_amend": ("post", reverse("case_amend", args=[c]), {"reason": "forged", "code": "123456"}),
            "case_version": ("get", reverse("case_version", args=[c, 1]), {}),
            "case_audit": ("get", reverse("case_audit", args=[c]), {}),
            "case_cells": ("get", reverse("case_cells", args=[c]), {}),
            "case_cells_differential": ("get", reverse("case_cells_differential", args=[c]), {}),
            "cell_crop": ("get", reverse("cell_crop", args=[c, cell.pk]), {}),
            "cells_reclassify": ("json", reverse("cells_reclassify", args=[c]), change),
            "cell_add": ("json", reverse("cell_add", args=[c]), missed),
            "members_home": ("get", reverse("members_home"), {}),
            "profile": ("get", reverse("profile"), {}),
            "lab_members": ("post", reverse("lab_members", args=[self.lab.slug]), {"email": "spy@x.org", "role": "lab_admin"}),
            "member_role": ("post", reverse("member_role", args=[self.lab.slug, membership.pk]), {"role": "lab_admin"}),
            "instant_check": ("get", reverse("instant_check"), {}),
            "instant_result": ("get", reverse("instant_result", args=[self.check.pk]), {}),
            "instant_status": ("get", reverse("instant_status", args=[self.check.pk]), {}),
            "instant_file": ("get", reverse("instant_file", args=[self.check.pk, "original"]), {}),
        }

    def request(self, name):
        method, url, data = self.routes[name]
        if method == "json":
            return self.client.post(url, json.dumps(data), content_type="application/json")
        return getattr(self.client, method)(url, data)

    def test_every_route_is_in_the_table(self):
        patterns = [*review_urls.urlpatterns, *accounts_urls.urlpatterns, *instant_urls.urlpatterns]
        names = {pattern.name for pattern in patterns}
        self.assertEqual(names, set(self.routes))

    def test_outsider_gets_404_for_every_object_of_lab_a(self):
        self.client.force_login(self.outsider)
        for name in sorted(set(self.routes) - LISTS):
            with self.subTest(name):
                self.assertEqual(self.request(name).status_code, 404)
        self.case.refresh_from_db()
        self.assertEqual((self.case.status, self.case.assigned_to), (CaseStatus.SIGNED_OUT, None))
        self.assertFalse(Review.objects.exists())
        self.assertFalse(CellReview.objects.exists())
        self.assertEqual(Cell.objects.count(), 1)
        self.assertEqual(Membership.objects.get(user=self.technician, lab=self.lab).role, "technician")

    def test_outsider_lists_show_nothing_of_lab_a(self):
        self.client.force_login(self.outsider)
        for name in sorted(LISTS):
            with self.subTest(name):
                response = self.request(name)
                self.assertEqual(response.status_code, 200)
                self.assertNotContains(response, self.case.accession_number)
                self.assertNotContains(response, "Lab A")

    def test_the_owning_lab_gets_the_viewer_and_its_tiles_never_cached(self):
        self.client.force_login(self.technician)
        for name in ("image_viewer", "image_tiles_dzi", "image_tile"):
            with self.subTest(name):
                response = self.request(name)
                self.assertEqual(response.status_code, 200)
                self.assertIn("no-store", response["Cache-Control"])
        viewer = reverse("image_viewer", args=[self.case.pk, self.images[0].pk])
        self.assertContains(self.client.get(reverse("case_detail", args=[self.case.pk])), f'href="{viewer}"')
        self.assertContains(self.client.get(reverse("case_review", args=[self.case.pk])), f'href="{viewer}"')

    def test_anonymous_is_sent_to_login_everywhere(self):
        login = reverse("account_login")
        for name in sorted(self.routes):
            with self.subTest(name):
                response = self.request(name)
                self.assertEqual(response.status_code, 302)
                self.assertTrue(response["Location"].startswith(login))

    def test_forged_ids_that_do_not_exist_are_404_too(self):
        self.client.force_login(self.pathologist)
        for url in (
            reverse("case_review", args=[999999]),
            reverse("case_version", args=[self.case.pk, 7]),
            reverse("instant_result", args=[uuid.uuid4()]),
            reverse("instant_file", args=[self.check.pk, "passwd"]),
            reverse("lab_members", args=["no-such-lab"]),
            reverse("image_viewer", args=[self.case.pk, 999999]),
            reverse("image_tile", kwargs={"pk": self.case.pk, "image_pk": self.images[0].pk, "layer": "original",
                                          "level": "40", "col": "0", "row": "0", "fmt": "jpeg"}),
            reverse("image_tile", kwargs={"pk": self.case.pk, "image_pk": self.images[0].pk, "layer": "original",
                                          "level": "0", "col": "0", "row": "0", "fmt": "png"}),
        ):
            with self.subTest(url):
                self.assertEqual(self.client.get(url).status_code, 404)
