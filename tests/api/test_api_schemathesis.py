"""A short schemathesis run against the live schema: generated requests to
every operation, authenticated with a real token, must never get a 500, and
every answer must match the schema (status code, content type, body, headers).

Bounded: a few examples per operation and a wall-clock budget, so the whole
run stays well under 90 s on the shared CI machine. The requests go through
the real WSGI application (no server process), inside this test's
transaction, so generated cases and uploads vanish with it.
"""

from __future__ import annotations

import time

import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from apitokens import services as api_tokens
from tests.api.helpers import ApiTestCase

EXAMPLES_PER_OPERATION = 6
RUN_BUDGET_S = 75.0
CONFORMANCE = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
# Operations too slow for the default number of examples (none since drafts render on the workers).
SLOW_OPERATIONS: dict[str, int] = {}


class SchemathesisRunTests(ApiTestCase):
    def setUp(self) -> None:
        super().setUp()
        # Django's test client disconnects these too: closing "old" connections
        # at the end of each request would close this test's transaction.
        request_started.disconnect(close_old_connections)
        request_finished.disconnect(close_old_connections)
        self.addCleanup(request_started.connect, close_old_connections)
        self.addCleanup(request_finished.connect, close_old_connections)

    def test_generated_requests_never_fail_and_match_the_schema(self) -> None:
        schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", get_wsgi_application())
        case, made = self.make_analysed_case()
        image = made[0][0]
        real_ids = {"id": case.pk, "image_pk": image.pk}
        member = {"Authorization": f"Token {self.api.token_key}"}
        # Rotating or revoking a token must not lock out the other operations: its own user.
        token_user = {"Authorization": f"Token {api_tokens.issue(self.lab_admin).key}"}

        started = time.monotonic()
        seen: dict[str, set[int]] = {}
        operations = [result.ok() for result in schema.get_all_operations()]
        self.assertGreaterEqual(len(operations), 14, [op.label for op in operations])
        for operation in operations:
            headers = token_user if operation.path == "/api/token/" else member
            names = {parameter.name for parameter in operation.path_parameters}
            fixed = {name: value for name, value in real_ids.items() if name in names}
            examples = SLOW_OPERATIONS.get(operation.label, EXAMPLES_PER_OPERATION)
            statuses = seen.setdefault(operation.label, set())
            plans = [
                (GenerationMode.POSITIVE, fixed or None, CONFORMANCE),
                (GenerationMode.POSITIVE, None, CONFORMANCE),
            ]
            if operation.method.upper() in ("POST", "DELETE") or names:
                plans.append((GenerationMode.NEGATIVE, fixed or None, [not_a_server_error]))
            for mode, path_parameters, checks in plans:
                if time.monotonic() - started > RUN_BUDGET_S:
                    break
                strategy = operation.as_strategy(mode, path_parameters=path_parameters, headers=headers)
                try:
                    self._run(strategy, checks, examples, statuses)
                except Unsatisfiable:
                    # Nothing left to make invalid (e.g. only fixed real ids): no negative case exists.
                    if mode is not GenerationMode.NEGATIVE:
                        raise
        elapsed = time.monotonic() - started
        self.assertLess(elapsed, 90.0)
        # The run reached past the front door: real objects were found and served.
        self.assertIn(200, seen["GET /api/cases/{id}/"], seen)
        self.assertIn(200, seen["GET /api/cases/{id}/images/{image_pk}/"], seen)
        # A draft renders on the cpu queue, sent when the request commits (never here, inside
        # the test's transaction): it is accepted, to be polled.
        self.assertIn(202, seen["POST /api/cases/{id}/report/draft/"], seen)
        print(f"schemathesis: {len(operations)} operations in {elapsed:.1f} s, statuses {seen}")

    def _run(self, strategy, checks, examples: int, statuses: set[int]) -> None:
        @settings(
            max_examples=examples,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=strategy)
        def run(case) -> None:
            response = case.call()
            statuses.add(response.status_code)
            case.validate_response(response, checks=checks)

        run()
