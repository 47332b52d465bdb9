"""docker/.env.example and compose.yaml agree: every variable compose needs
is in the example, every example key is used, and no secret is shipped."""

from __future__ import annotations

import subprocess

import pytest
from dotenv import dotenv_values

from tests.deploy.compose import (
    ENV_EXAMPLE,
    REPO,
    InterpolationError,
    example_env,
    load_compose,
    raw_compose,
    variable_uses,
)

SECRETS = ("SECRET_KEY", "POSTGRES_PASSWORD", "FLOWER_PASSWORD")


def test_every_variable_without_a_default_is_in_the_example():
    example = set(dotenv_values(ENV_EXAMPLE))
    needed = {use.name for use in variable_uses(raw_compose()) if not use.has_default}
    assert needed - example == set(), f"compose needs {sorted(needed - example)}, absent from .env.example"


def test_every_example_key_is_used_by_compose():
    used = {use.name for use in variable_uses(raw_compose())}
    unused = set(dotenv_values(ENV_EXAMPLE)) - used
    assert not unused, f".env.example has {sorted(unused)}, which compose.yaml never reads"


def test_no_secret_is_shipped_in_the_example():
    example = dotenv_values(ENV_EXAMPLE)
    for key in SECRETS:
        assert key in example and not example[key], f"{key} must be blank in .env.example"


@pytest.mark.parametrize("secret", SECRETS)
def test_compose_refuses_to_start_without_each_secret(secret):
    env = dict(example_env(), **{secret: ""})
    with pytest.raises(InterpolationError, match=secret):
        load_compose(env)


def test_the_real_env_file_is_never_committed():
    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    done = subprocess.run(["git", "check-ignore", "-q", "docker/.env"], cwd=REPO, check=False)
    assert done.returncode == 0, "docker/.env (the secrets) is not ignored by git"
