"""Fixtures for the docker/ drift tests: the compose services as Docker would
resolve them, and the settings each Django service's environment produces."""

from __future__ import annotations

from typing import Any

import pytest
from dockerfile_parse import DockerfileParser

from tests.deploy.compose import (
    Service,
    container_env,
    option,
    probe_settings,
    services,
)


def image_env(service: Service) -> dict[str, str]:
    """ENV of the final stage of the service's Dockerfile."""
    with service.dockerfile.open("rb") as handle:
        return dict(DockerfileParser(fileobj=handle).envs)


def celery_app_arg(service: Service) -> str:
    return option(service.argv, "-A", "--app") or "marrowfind"


@pytest.fixture(scope="session")
def compose_services() -> dict[str, Service]:
    return services()


@pytest.fixture(scope="session")
def django_services(compose_services) -> dict[str, Service]:
    found = {name: svc for name, svc in compose_services.items() if svc.is_django}
    assert found, "compose.yaml has no service built from our Dockerfiles"
    return found


@pytest.fixture(scope="session")
def service_settings(django_services) -> dict[str, dict[str, Any]]:
    """Each Django service's settings, loaded in a fresh process with exactly
    that service's environment (services with the same environment share one probe)."""
    probes: dict[tuple, dict[str, Any]] = {}
    resolved = {}
    for name, svc in django_services.items():
        env = container_env(svc.environment, image_env(svc))
        key = (tuple(sorted(env.items())), celery_app_arg(svc))
        if key not in probes:
            probes[key] = probe_settings(env, celery_app_arg(svc))
        resolved[name] = probes[key]
    return resolved
