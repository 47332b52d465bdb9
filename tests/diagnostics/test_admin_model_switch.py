"""The Django admin can switch the active model forward and back; only staff can."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.urls import reverse

from diagnostics.models import AuditEvent, ModelVersion
from tests.base import PASSWORD, BaseTestCase
from tests.modelfixtures import register_test_model
from tests.review.helpers import activate_totp, login_with_totp

CHANGELIST = "admin:diagnostics_modelversion_changelist"


class AdminModelSwitchTests(BaseTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.admin = get_user_model().objects.create_superuser("root", "root@example.org", PASSWORD)
        self.admin_secret = activate_totp(self.admin)  # the admin opens only after two-factor
        self.first = register_test_model("image", seed=0, activate=True)
        self.second = register_test_model("image", seed=1, activate=True)

    def act(self, *versions: ModelVersion):
        return self.client.post(reverse(CHANGELIST), {
            "action": "activate", "_selected_action": [str(v.pk) for v in versions],
        }, follow=True)

    def active(self) -> list[int]:
        return list(ModelVersion.objects.filter(task="image", is_active=True).values_list("pk", flat=True))

    def test_admin_switches_back_to_the_earlier_model(self) -> None:
        self.assertEqual(self.active(), [self.second.pk])
        login_with_totp(self.client, self.admin, self.admin_secret)
        response = self.act(self.first)
        self.assertContains(response, "is now the active model")
        self.assertEqual(self.active(), [self.first.pk])
        self.assertTrue(AuditEvent.objects.filter(
            verb=AuditEvent.Verb.MODEL_ACTIVATED, object_id=str(self.first.pk), actor=self.admin).exists())

    def test_two_models_of_one_task_at_once_are_refused(self) -> None:
        login_with_totp(self.client, self.admin, self.admin_secret)
        response = self.act(self.first, self.second)
        self.assertContains(response, "Select one model per task")
        self.assertEqual(self.active(), [self.second.pk])

    def test_lab_members_and_outsiders_cannot_switch(self) -> None:
        for user in (self.lab_admin, self.pathologist, self.outsider):
            self.client.force_login(user)
            response = self.client.post(reverse(CHANGELIST), {
                "action": "activate", "_selected_action": [str(self.first.pk)]})
            self.assertEqual(response.status_code, 302, user.username)  # to the admin login page
            self.assertIn(reverse("admin:login"), response["Location"])
        self.assertEqual(self.active(), [self.second.pk])
