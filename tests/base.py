"""Base test cases: every permission is tested with an owner, a teammate and an outsider.

* ``self.pathologist`` and ``self.technician``: members of lab A.
* ``self.lab_admin``: lab admin of lab A.
* ``self.outsider``: a pathologist of lab B, who must see nothing of lab A.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from django.test import TestCase, TransactionTestCase, override_settings

from diagnostics.models import Role
from tests.factories import LabFactory, MembershipFactory, UserFactory

PASSWORD = "correct horse battery staple"


def add_lab_users(target) -> None:
    """Lab A with a pathologist, a technician and a lab admin; lab B with the outsider.

    ``target`` is a test instance or, from ``setUpTestData``, a test class."""
    target.lab = LabFactory(name="Lab A", slug="lab-a")
    target.other_lab = LabFactory(name="Lab B", slug="lab-b")
    target.pathologist = UserFactory(username="patty", email="patty@lab-a.org")
    target.technician = UserFactory(username="tech", email="tech@lab-a.org")
    target.lab_admin = UserFactory(username="adam", email="adam@lab-a.org")
    target.outsider = UserFactory(username="olga", email="olga@lab-b.org")
    MembershipFactory(user=target.pathologist, lab=target.lab, role=Role.PATHOLOGIST)
    MembershipFactory(user=target.technician, lab=target.lab, role=Role.TECHNICIAN)
    MembershipFactory(user=target.lab_admin, lab=target.lab, role=Role.LAB_ADMIN)
    MembershipFactory(user=target.outsider, lab=target.other_lab, role=Role.PATHOLOGIST)


class _Users:
    def make_users(self) -> None:
        add_lab_users(self)


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

    def setUp(self):
        super().setUp()
        # The files a test writes go with its rolled-back rows (the class's own, from
        # setUpTestData, stay): SQLite hands the same ids out again after a rollback, so a
        # later test would otherwise find a file cached under its ids.
        root = Path(self._media.name)
        before = set(root.rglob("*"))
        self.addCleanup(_remove_new_files, root, before)


def _remove_new_files(root: Path, before: set[Path]) -> None:
    for path in sorted(set(root.rglob("*")) - before, key=lambda p: len(p.parts), reverse=True):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


class BaseTestCase(MediaRootMixin, TestCase):
    """The users are made once per class (``setUpTestData``; each test gets its own copies and
    its database changes are rolled back): a password hash costs ~0.3 s, four users a class.
    A subclass's own ``setUpTestData`` calls ``super()`` first."""

    @classmethod
    def setUpTestData(cls) -> None:
        super().setUpTestData()
        add_lab_users(cls)


class BaseTransactionTestCase(MediaRootMixin, _Users, TransactionTestCase):
    """For tests where another process (a real Celery worker) must see the rows."""

    def setUp(self) -> None:
        super().setUp()
        self.make_users()
