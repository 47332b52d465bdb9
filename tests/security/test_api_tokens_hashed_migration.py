"""The move to hashed API tokens keeps every existing token working: the
migration stores each DRF token's digest and deletes the token in clear."""

from __future__ import annotations

from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test import TransactionTestCase
from django.urls import reverse
from rest_framework.test import APIClient

from apitokens.models import ApiToken, digest
from tests.factories import LabFactory, MembershipFactory, UserFactory

BEFORE = [("apitokens", "0001_initial")]
AFTER = [("apitokens", "0002_hash_existing_drf_tokens")]


class HashTokensMigrationTests(TransactionTestCase):
    def migrate(self, targets):
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(targets)
        return executor.loader.project_state(targets).apps

    def tearDown(self):
        self.migrate(AFTER)  # leave the schema current for the next test
        super().tearDown()

    def test_an_existing_clear_token_still_authenticates_and_is_no_longer_stored(self):
        user = UserFactory(email="lis@lab-a.org")
        MembershipFactory(user=user, lab=LabFactory(slug="lab-a"))
        self.migrate(BEFORE)
        # DRF's table, tokens in clear
        from rest_framework.authtoken.models import Token

        key = "a" * 8 + "0123456789abcdef0123456789abcdef"
        Token.objects.create(user=user, key=key)

        self.migrate(AFTER)
        self.assertEqual(ApiToken.objects.get(user=user).digest, digest(key))
        with connection.cursor() as cursor:
            cursor.execute("SELECT COUNT(*) FROM authtoken_token")
            self.assertEqual(cursor.fetchone()[0], 0)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
        self.assertEqual(client.get(reverse("api-cases")).status_code, 200)
