"""GET /api/models/: the registered model versions, the active one marked."""

from __future__ import annotations

from tests.api.helpers import ApiTestCase
from tests.factories import ModelVersionFactory


class ModelListTests(ApiTestCase):
    def test_lists_versions_newest_first_with_active_and_demo_flags(self) -> None:
        old = ModelVersionFactory(name="old", is_demo=True, metrics={"accuracy": 0.5})
        new = ModelVersionFactory(name="new", is_demo=False, is_active=True, metrics={"accuracy": 0.91})
        response = self.api.get(self.url("api-models"))
        self.assertEqual(response.status_code, 200)
        rows = response.json()["results"]
        self.assertEqual([row["name"] for row in rows], ["new", "old"])
        self.assertEqual([(row["is_active"], row["is_demo"]) for row in rows], [(True, False), (False, True)])
        self.assertEqual(rows[0]["sha256"], new.sha256)
        self.assertEqual(rows[0]["class_names"], ["Benign", "Early", "Pre", "Pro"])
        self.assertEqual(rows[1]["metrics"], {"accuracy": 0.5})
        self.assertNotIn("checkpoint_path", rows[0], "the server's file layout is not the API's business")
        self.assertEqual(old.pk, rows[1]["id"])
