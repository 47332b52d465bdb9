"""Reclassifying cells: one row and one audit event per changed cell, a double submit
recorded once, a stale page refused with 409, missed cells added, and the rules
(roles, signed-out cases, classes) enforced on the JSON routes."""

from __future__ import annotations

import json
import threading
import uuid

import pytest
from django.db import IntegrityError, connection, transaction
from django.urls import reverse

from diagnostics.models import AuditEvent, CaseStatus, Cell
from review import cells as cells_service
from review.models import CellReview
from tests.base import BaseTestCase, BaseTransactionTestCase
from tests.factories import add_cells, analysed_case
from tests.review.cell_helpers import reclassify


def post_json(client, url, payload):
    return client.post(url, json.dumps(payload), content_type="application/json")


class ReclassifyTests(BaseTestCase):
    def setUp(self):
        super().setUp()
        self.case, self.images = analysed_case(self.lab, n_images=1)
        self.analysis = self.images[0].analyses.get()
        self.cells = add_cells(self.analysis, ["lymphocyte", "blast", "neutrophil", "lymphocyte"], low=(4,))
        self.url = reverse("cells_reclassify", args=[self.case.pk])
        self.client.force_login(self.pathologist)

    def change(self, cells, label, versions=None, token=None):
        versions = versions or [0] * len(cells)
        return post_json(self.client, self.url, {
            "label": label, "token": str(token or uuid.uuid4()),
            "cells": [{"id": c.pk, "version": v} for c, v in zip(cells, versions, strict=True)],
        })

    def test_one_cell_is_one_row_with_who_when_from_to_and_an_audit_event(self):
        response = self.change([self.cells[0]], "blast")
        self.assertEqual(response.status_code, 200, response.content)
        data = response.json()
        self.assertTrue(data["created"])
        self.assertEqual(data["cells"], [{
            "id": self.cells[0].pk, "label": "blast", "group": "blast", "version": 1, "image": self.images[0].pk,
            "position": 1, "index": 1, "bbox": self.cells[0].bbox, "added": False,
            "crop": reverse("cell_crop", args=[self.case.pk, self.cells[0].pk]),
        }])
        row = CellReview.objects.get()
        self.assertEqual((row.cell, row.reviewer, row.from_label, row.label, row.version, row.action),
                         (self.cells[0], self.pathologist, "lymphocyte", "blast", 1, "reclassified"))
        event = AuditEvent.objects.get(verb=AuditEvent.Verb.CELL_RECLASSIFIED)
        self.assertEqual((event.actor, event.case, event.object_type, event.object_id),
                         (self.pathologist, self.case, "CellReview", str(row.pk)))
        self.assertEqual((event.detail["previous_label"], event.detail["label"], event.detail["cell"], event.detail["image"]),
                         ("lymphocyte", "blast", 1, 1))
        # The AI's call stays on the cell.
        self.cells[0].refresh_from_db()
        self.assertEqual(self.cells[0].ai_label, "lymphocyte")
        # The audit trail says what changed.
        audit = self.client.get(reverse("case_audit", args=[self.case.pk]))
        self.assertContains(audit, "image #1 cell 1: lymphocyte → blast (AI lymphocyte 90%; version 1)")

    def test_a_second_change_records_the_previous_decision_as_from(self):
        self.change([self.cells[0]], "blast")
        self.change([self.cells[0]], "monocyte", versions=[1])
        rows = list(CellReview.objects.order_by("version").values_list("from_label", "label", "version"))
        self.assertEqual(rows, [("lymphocyte", "blast", 1), ("blast", "monocyte", 2)])

    def test_a_multi_selection_is_one_row_and_one_event_per_cell(self):
        response = self.change(self.cells[:3], "artefact")
        self.assertEqual(response.status_code, 200)
        self.assertEqual(CellReview.objects.filter(label="artefact").count(), 3)
        self.assertEqual(AuditEvent.objects.filter(verb=AuditEvent.Verb.CELL_RECLASSIFIED).count(), 3)
        self.assertEqual(len({r.submission_token for r in CellReview.objects.all()}), 1)

    def test_double_submit_is_recorded_once(self):
        token = uuid.uuid4()
        first = self.change(self.cells[:2], "blast", token=token)
        second = self.change(self.cells[:2], "blast", token=token)
        self.assertEqual((first.status_code, second.status_code), (200, 200))
        self.assertFalse(second.json()["created"])
        self.assertIn("Already recorded", second.json()["message"])
        self.assertEqual(CellReview.objects.count(), 2)
        self.assertEqual(AuditEvent.objects.filter(verb=AuditEvent.Verb.CELL_RECLASSIFIED).count(), 2)
        self.assertEqual([c["version"] for c in second.json()["cells"]], [1, 1])

    def test_a_token_reused_for_other_cells_is_refused(self):
        token = uuid.uuid4()
        self.change([self.cells[0]], "blast", token=token)
        response = self.change([self.cells[1]], "blast", token=token)
        self.assertEqual(response.status_code, 400)
        self.assertEqual(CellReview.objects.count(), 1)

    def test_a_stale_page_cannot_overwrite_a_newer_decision(self):
        # Page B changes the cell; page A, opened before, still shows version 0.
        self.assertEqual(self.change([self.cells[0]], "neutrophil").status_code, 200)
        response = self.change([self.cells[0], self.cells[2]], "blast", versions=[0, 0])
        self.assertEqual(response.status_code, 409)
        data = response.json()
        self.assertIn("Not saved: cell 1 of image #1 was changed on another page by patty@lab-a.org", data["error"])
        self.assertIn("Neutrophil", data["error"])
        self.assertIn("Reload", data["error"])
        self.assertEqual(data["conflicts"][0]["id"], self.cells[0].pk)
        self.assertEqual((data["conflicts"][0]["version"], data["conflicts"][0]["label"]), (1, "neutrophil"))
        # All or nothing: neither cell of the stale change was written.
        self.assertEqual(list(CellReview.objects.values_list("cell_id", "label")), [(self.cells[0].pk, "neutrophil")])

    def test_the_database_refuses_two_decisions_with_one_version(self):
        reclassify(self.case, self.pathologist, [self.cells[0]], "blast")
        with self.assertRaises(IntegrityError), transaction.atomic():
            CellReview.objects.create(cell=self.cells[0], version=1, reviewer=self.lab_admin, label="monocyte",
                                      submission_token=uuid.uuid4())

    def test_unknown_class_foreign_cell_and_bad_payload_are_400(self):
        _, other_images = analysed_case(self.lab, n_images=1)
        (foreign,) = add_cells(other_images[0].analyses.get(), ["blast"])
        cases = {
            "class": self.change([self.cells[0]], "Benign"),
            "foreign cell": self.change([foreign], "blast"),
            "no cells": post_json(self.client, self.url, {"label": "blast", "token": str(uuid.uuid4()), "cells": []}),
            "no token": post_json(self.client, self.url, {"label": "blast", "cells": [{"id": self.cells[0].pk, "version": 0}]}),
            "not json": self.client.post(self.url, "label=blast", content_type="application/x-www-form-urlencoded"),
        }
        for name, response in cases.items():
            with self.subTest(name):
                self.assertEqual(response.status_code, 400)
                self.assertIn("error", response.json())
        self.assertFalse(CellReview.objects.exists())

    def test_technician_gets_403_and_nothing_is_written(self):
        self.client.force_login(self.technician)
        self.assertEqual(self.change([self.cells[0]], "blast").status_code, 403)
        add = post_json(self.client, reverse("cell_add", args=[self.case.pk]),
                        {"image": self.images[0].pk, "x": 20, "y": 20, "label": "blast", "token": str(uuid.uuid4())})
        self.assertEqual(add.status_code, 403)
        self.assertFalse(CellReview.objects.exists())

    def test_a_signed_out_case_refuses_changes(self):
        self.case.status = CaseStatus.SIGNED_OUT
        self.case.sign_out_version = 1
        self.case.save()
        response = self.change([self.cells[0]], "blast")
        self.assertEqual(response.status_code, 400)
        self.assertIn("signed out", response.json()["error"])
        self.assertFalse(CellReview.objects.exists())

    def test_the_case_summary_and_who_flag_follow_the_change(self):
        # 1 blast of 3 nucleated (the low-confidence cell is not counted) -> 33 %; then 3 of 3.
        reclassify(self.case, self.pathologist, [self.cells[0]], "lymphocyte")
        self.case.refresh_from_db()
        self.assertEqual((self.case.summary["blast_source"], self.case.summary["blast_fraction"]), ("reviewed", 0.3333))
        self.assertTrue(self.case.who_flag)
        reclassify(self.case, self.pathologist, [self.cells[1]], "lymphocyte")
        self.case.refresh_from_db()
        self.assertEqual(self.case.summary["blast_fraction"], 0.0)
        self.assertFalse(self.case.who_flag)


class AddCellTests(BaseTestCase):
    def setUp(self):
        super().setUp()
        self.case, self.images = analysed_case(self.lab, n_images=1)
        self.analysis = self.images[0].analyses.get()
        self.cells = add_cells(self.analysis, ["lymphocyte", "blast", "neutrophil"], side=10)
        self.url = reverse("cell_add", args=[self.case.pk])
        self.client.force_login(self.pathologist)

    def add(self, x, y, label="blast", token=None, image=None):
        return post_json(self.client, self.url, {"image": image or self.images[0].pk, "x": x, "y": y, "label": label,
                                                  "token": str(token or uuid.uuid4())})

    def test_a_missed_cell_is_a_new_cell_with_its_first_decision(self):
        response = self.add(40.4, 30.2, "blast")
        self.assertEqual(response.status_code, 200, response.content)
        (cell_json,) = response.json()["cells"]
        cell = Cell.objects.get(pk=cell_json["id"])
        self.assertEqual((cell.analysis, cell.index, cell.ai_label, cell.kind), (self.analysis, 4, "", "wbc"))
        self.assertEqual(cell.bbox, [35, 25, 45, 35])  # the median cell size (10 px) around the click
        review = cell.reviews.get()
        self.assertEqual((review.action, review.from_label, review.label, review.version, review.reviewer),
                         ("added", "", "blast", 1, self.pathologist))
        event = AuditEvent.objects.get(verb=AuditEvent.Verb.CELL_ADDED)
        self.assertEqual((event.detail["point"], event.detail["label"], event.detail["cell"]), ([40, 30], "blast", 4))
        audit = self.client.get(reverse("case_audit", args=[self.case.pk]))
        self.assertContains(audit, "image #1: missed cell 4 added at (40, 30) as blast")
        self.assertTrue(cell_json["added"])
        self.assertEqual(self.client.get(cell_json["crop"]).status_code, 200)

    def test_the_added_cell_counts_in_the_reviewed_differential_only(self):
        self.add(40, 30, "blast")
        from diagnostics.services.case_record import build_case_record

        record = build_case_record(self.case)
        self.assertEqual(record.reviewed_differential.blasts, 2)
        self.assertEqual(record.ai_differential.blasts, 1)
        self.assertEqual(record.agreement.compared, 3)  # the AI never saw the added cell

    def test_double_submit_adds_one_cell(self):
        token = uuid.uuid4()
        first, second = self.add(40, 30, token=token), self.add(40, 30, token=token)
        self.assertEqual((first.status_code, second.status_code), (200, 200))
        self.assertFalse(second.json()["created"])
        self.assertEqual(first.json()["cells"][0]["id"], second.json()["cells"][0]["id"])
        self.assertEqual(Cell.objects.filter(analysis=self.analysis).count(), 4)
        self.assertEqual(AuditEvent.objects.filter(verb=AuditEvent.Verb.CELL_ADDED).count(), 1)

    def test_a_box_near_the_border_stays_inside_the_image(self):
        response = self.add(63, 1)
        cell = Cell.objects.get(pk=response.json()["cells"][0]["id"])
        self.assertEqual(cell.bbox, [54, 0, 64, 10])

    def test_outside_the_image_or_another_cases_image_is_400(self):
        _, other_images = analysed_case(self.lab, n_images=1)
        for name, response in {"outside": self.add(64, 10), "negative": self.add(-1, 10),
                               "other case": self.add(5, 5, image=other_images[0].pk),
                               "class": self.add(5, 5, label="Pre")}.items():
            with self.subTest(name):
                self.assertEqual(response.status_code, 400)
        self.assertEqual(Cell.objects.filter(analysis=self.analysis).count(), 3)


@pytest.mark.services
class ConcurrentStalePagesTests(BaseTransactionTestCase):
    """Two pages that saw the same version post at the same moment (two connections):
    one change is recorded, the other is refused as stale."""

    def test_only_one_of_two_concurrent_changes_wins(self):
        if connection.vendor != "postgresql":
            pytest.skip("needs PostgreSQL for real row locks between connections")
        case, images = analysed_case(self.lab, n_images=1)
        (cell,) = add_cells(images[0].analyses.get(), ["lymphocyte"])
        barrier = threading.Barrier(2)
        outcomes, stale, errors = [], [], []

        def submit(label):
            try:
                barrier.wait()
                outcomes.append(cells_service.reclassify_cells(
                    case=case, reviewer=self.pathologist, changes=[(cell.pk, 0)], label=label,
                    submission_token=uuid.uuid4()))
            except cells_service.StaleCells as exc:
                stale.append(exc)
            except Exception as exc:  # noqa: BLE001 - reported below
                errors.append(exc)
            finally:
                connection.close()

        threads = [threading.Thread(target=submit, args=(label,)) for label in ("blast", "monocyte")]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        self.assertEqual(errors, [])
        self.assertEqual((len(outcomes), len(stale)), (1, 1))
        self.assertEqual(CellReview.objects.filter(cell=cell).count(), 1)
        self.assertEqual(CellReview.objects.get(cell=cell).label, outcomes[0].reviews[0].label)
