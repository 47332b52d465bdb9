"""Base test cases: every permission is tested with an owner, a teammate and an outsider.

* ``self.pathologist`` and ``self.technician``: members of lab A.
* ``self.lab_admin``: lab admin of lab A.
* ``self.outsider``: a pathologist of lab B, who must see nothing of lab A.
"""

from __future__ import annotations

import tempfile

from django.test import TestCase, TransactionTestCase, override_settings

from diagnostics.models import Role
from tests.factories import LabFactory, MembershipFactory, UserFactory

PASSWORD = "correct horse battery staple"


class _Users:
    def make_users(self) -> None:
        self.lab = LabFactory(name="Lab A", slug="lab-a")
        self.other_lab = LabFactory(name="Lab B", slug="lab-b")
        self.pathologist = UserFactory(username="patty", email="patty@lab-a.org")
        self.technician = UserFactory(username="tech", email="tech@lab-a.org")
        self.lab_admin = UserFactory(username="adam", email="adam@lab-a.org")
        self.outsider = UserFactory(username="olga", email="olga@lab-b.org")
        MembershipFactory(user=self.pathologist, lab=self.lab, role=Role.PATHOLOGIST)
        MembershipFactory(user=self.technician, lab=self.lab, role=Role.TECHNICIAN)
        MembershipFactory(user=self.lab_admin, lab=self.lab, role=Role.LAB_ADMIN)
        MembershipFactory(user=self.outsider, lab=self.other_lab, role=Role.PATHOLOGIST)


class MediaRootMixin:
    """Each test class writes its media files to a temporary folder."""

    @classmethod
    def setUpClass(cls):
        cls._media = tempfile.TemporaryDirectory(prefix="mf-media-")
        cls._media_override = override_settings(MEDIA_ROOT=cls._media.name)
        cls._media_override.enable()
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        cls._media_override.disable()
        cls._media.cleanup()


class BaseTestCase(MediaRootMixin, _Users, TestCase):
    def setUp(self) -> None:
        super().setUp()
        self.make_users()


class BaseTransactionTestCase(MediaRootMixin, _Users, TransactionTestCase):
    """For tests where another process (a real Celery worker) must see the rows."""

    def setUp(self) -> None:
        super().setUp()
        self.make_users()
