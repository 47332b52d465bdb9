"""docs/production.md names only variables that exist, and documents every
setting the compose services pass to Django."""

from __future__ import annotations

import re

from dotenv import dotenv_values

from tests.deploy.compose import (
    ENV_EXAMPLE,
    REPO,
    raw_compose,
    settings_env_names,
    variable_uses,
)

DOC = REPO / "docs" / "production.md"
# Names of other programs that the document uses on purpose.
OTHER_PROGRAMS: set[str] = set()


def documented_names() -> set[str]:
    """Every NAME_LIKE_THIS in the document (variables always have an underscore)."""
    return set(re.findall(r"\b[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+\b", DOC.read_text()))


def test_every_variable_the_document_names_exists():
    known = settings_env_names() | set(dotenv_values(ENV_EXAMPLE)) | {use.name for use in variable_uses(raw_compose())}
    unknown = sorted(documented_names() - known - OTHER_PROGRAMS)
    assert not unknown, f"docs/production.md names {unknown}, which nothing reads"


def test_every_setting_compose_passes_to_django_is_documented():
    env = raw_compose()["x-django-env"]
    undocumented = sorted(set(env) - documented_names())
    assert not undocumented, f"compose sets {undocumented}, which docs/production.md does not explain"
