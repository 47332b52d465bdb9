"""Splitting diagnostics into apps moves no row: a database filled before the
split (diagnostics 0003) is migrated to the current state, and every row of
the moved models is still there, reachable through the new apps' models, with
its foreign keys; admin content types follow the models to their new app."""

from __future__ import annotations

from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test import TransactionTestCase
from django.utils import timezone

BEFORE_SPLIT = [
    ("contenttypes", "0002_remove_content_type_name"),
    ("diagnostics", "0003_reports_content_sha256"),
    ("review", None),
    ("reports", None),
    ("assistant", None),
    ("instant", None),
]
MOVED = {
    "review": ("review", "signout"),
    "reports": ("report",),
    "assistant": ("conversation", "chatmessage"),
    "instant": ("instantcheck",),
}


def _migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return MigrationExecutor(connection).loader.project_state([t for t in targets if t[1] is not None]).apps


class AppSplitKeepsRowsTests(TransactionTestCase):
    def tearDown(self):
        _migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())  # always leave the schema current
        super().tearDown()

    def _fill_before_split(self, apps) -> dict[str, int]:
        get = apps.get_model
        now = timezone.now()
        User = get("auth", "User")
        user = User.objects.create(username="split", email="split@example.org")
        lab = get("diagnostics", "Lab").objects.create(name="Split lab", slug="split")
        case = get("diagnostics", "Case").objects.create(
            lab=lab, accession_number="S-1", patient_pseudonym="P-1", specimen="bone_marrow_aspirate"
        )
        batch = get("diagnostics", "Batch").objects.create(case=case, uploaded_by=user)
        image = get("diagnostics", "SlideImage").objects.create(
            case=case, batch=batch, position=1, file="labs/x/a.png", original_filename="a.png",
            sha256="a" * 64, width=10, height=10, status="done",
        )
        version = get("diagnostics", "ModelVersion").objects.create(
            name="m", arch="resnet18", class_names=["Benign", "Pro"], checkpoint_path="/m.pt", sha256="b" * 64
        )
        analysis = get("diagnostics", "Analysis").objects.create(
            image=image, model_version=version, label="Pro", probabilities={"Pro": 0.9}, confidence=0.9
        )
        review = get("diagnostics", "Review").objects.create(image=image, analysis=analysis, reviewer=user, label="Pro")
        signout = get("diagnostics", "SignOut").objects.create(
            case=case, version=1, signed_by=user, labels={str(image.pk): {"label": "Pro"}}
        )
        first = get("diagnostics", "Report").objects.create(
            case=case, version=1, status="superseded", pdf=b"%PDF-1", sha256="c" * 64, content_sha256="d" * 64
        )
        report = get("diagnostics", "Report").objects.create(
            case=case, version=2, status="final", pdf=b"%PDF-2", sha256="e" * 64, signed_by=user, signed_at=now
        )
        get("diagnostics", "Report").objects.filter(pk=first.pk).update(superseded_by=report)
        conversation = get("diagnostics", "Conversation").objects.create(user=user, case=case)
        get("diagnostics", "ChatMessage").objects.create(conversation=conversation, role="user", text="blasts?")
        check = get("diagnostics", "InstantCheck").objects.create(
            lab=lab, created_by=user, file="labs/x/i.png", original_filename="i.png", sha256="f" * 64,
            width=5, height=5, model_version=version, label="Pro",
        )
        ContentType = get("contenttypes", "ContentType")
        content_types = {}
        for app, models in MOVED.items():
            for model in models:
                ContentType.objects.filter(app_label=app, model=model).delete()
                content_types[model] = ContentType.objects.get_or_create(app_label="diagnostics", model=model)[0].pk
        return {
            "user": user.pk, "image": image.pk, "review": review.pk, "signout": signout.pk, "first": first.pk,
            "report": report.pk, "conversation": conversation.pk, "check": check.pk, "analysis": analysis.pk,
            "content_types": content_types,
        }

    def test_every_row_of_the_moved_models_is_there_after_the_split(self):
        ids = self._fill_before_split(_migrate(BEFORE_SPLIT))
        _migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())

        from django.contrib.contenttypes.models import ContentType

        from assistant.models import ChatMessage, Conversation
        from instant.models import InstantCheck
        from reports.models import Report
        from review.models import Review, SignOut

        review = Review.objects.select_related("image__case", "analysis").get(pk=ids["review"])
        self.assertEqual((review.label, review.image.case.accession_number), ("Pro", "S-1"))
        self.assertEqual(review.analysis_id, ids["analysis"])
        signout = SignOut.objects.get(pk=ids["signout"])
        self.assertEqual(signout.labels, {str(ids["image"]): {"label": "Pro"}})
        self.assertEqual(signout.signed_by_id, ids["user"])
        reports = {r.pk: r for r in Report.objects.all()}
        self.assertEqual(set(reports), {ids["first"], ids["report"]})
        self.assertEqual(bytes(reports[ids["report"]].pdf), b"%PDF-2")
        self.assertEqual(reports[ids["first"]].superseded_by_id, ids["report"])
        self.assertEqual(reports[ids["first"]].content_sha256, "d" * 64)
        conversation = Conversation.objects.get(pk=ids["conversation"])
        self.assertEqual([m.text for m in ChatMessage.objects.filter(conversation=conversation)], ["blasts?"])
        check = InstantCheck.objects.get(pk=ids["check"])
        self.assertEqual((check.label, check.file.name), ("Pro", "labs/x/i.png"))
        # The reverse relations from the core models still reach the moved rows.
        self.assertEqual(review.image.reviews.count(), 1)
        self.assertEqual(review.image.case.reports.count(), 2)
        # Admin content types moved with the models (same ids, so admin history and permissions follow).
        for app, models in MOVED.items():
            for model in models:
                self.assertEqual(ContentType.objects.get(app_label=app, model=model).pk, ids["content_types"][model])
        self.assertFalse(ContentType.objects.filter(app_label="diagnostics", model__in=sum(MOVED.values(), ())).exists())
