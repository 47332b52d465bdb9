"""docker/nginx.conf agrees with the settings and compose: the protected
media location is where Django sends X-Accel-Redirect, its alias is the
media volume, and the upstream is the web service's gunicorn."""

from __future__ import annotations

import re

import crossplane
import pytest

from tests.deploy.compose import DOCKER_DIR, option

NGINX_CONF = DOCKER_DIR / "nginx.conf"


def directives(block: list[dict], name: str) -> list[dict]:
    found = []
    for item in block:
        if item["directive"] == name:
            found.append(item)
        found += directives(item.get("block", []), name)
    return found


@pytest.fixture(scope="module")
def nginx() -> list[dict]:
    parsed = crossplane.parse(str(NGINX_CONF), single=True, comments=False)
    assert parsed["status"] == "ok", parsed["errors"]
    return parsed["config"][0]["parsed"]


def size_in_mb(text: str) -> float:
    number, unit = re.fullmatch(r"(\d+)([kKmMgG]?)", text).groups()
    return int(number) * {"": 1 / 2**20, "k": 1 / 1024, "m": 1, "g": 1024}[unit.lower()]


def test_the_media_location_is_internal_and_matches_settings(nginx, compose_services, service_settings):
    web = service_settings["web"]
    assert web["media_serve_mode"] == "nginx", "compose runs nginx but Django streams media itself"
    locations = {item["args"][-1]: item for item in directives(nginx, "location")}
    media = locations.get(web["media_accel_prefix"])
    assert media is not None, f"no nginx location for MEDIA_ACCEL_PREFIX {web['media_accel_prefix']}"
    inner = {item["directive"]: item["args"] for item in media["block"]}
    assert "internal" in inner, "protected media must only be reachable through X-Accel-Redirect"
    assert inner["alias"] == [web["media_root"].rstrip("/") + "/"]
    nginx_mounts = compose_services["nginx"].volume_mounts
    assert nginx_mounts.get(web["media_root"]) == compose_services["web"].volume_mounts[web["media_root"]]


def test_nginx_runs_as_the_uid_that_owns_the_media(compose_services):
    from dockerfile_parse import DockerfileParser

    runs = " ".join(
        item["value"]
        for item in DockerfileParser(fileobj=(DOCKER_DIR / "Dockerfile.web").open("rb")).structure
        if item["instruction"] == "RUN"
    )
    uid = re.search(r"useradd [^&]*--uid (\d+)", runs).group(1)
    assert compose_services["nginx"].spec["user"].split(":")[0] == uid


def test_the_upstream_is_the_web_service_gunicorn(nginx, compose_services):
    servers = [item["args"][0] for item in directives(nginx, "server") if item.get("args")]
    assert servers, "no upstream server"
    host, port = servers[0].split(":")
    assert host in compose_services and compose_services[host].argv[:1] == ["gunicorn"]
    assert option(compose_services[host].argv, "-b", "--bind").endswith(f":{port}")


def test_the_body_limit_admits_the_largest_upload(nginx, service_settings):
    (limit,) = directives(nginx, "client_max_body_size")
    assert size_in_mb(limit["args"][0]) >= service_settings["web"]["max_upload_file_mb"]


def test_the_nginx_healthcheck_path_exists(nginx, compose_services):
    test = " ".join(compose_services["nginx"].spec["healthcheck"]["test"])
    path = re.search(r"http://[^/]+(/\S*)", test).group(1)
    assert path in {item["args"][-1] for item in directives(nginx, "location")}
