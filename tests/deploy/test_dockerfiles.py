"""The Dockerfiles build from files that exist and ship everything the
running code reads, without a Docker engine: each instruction is parsed
(dockerfile-parse) and checked against the repository."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
from django.conf import settings
from dockerfile_parse import DockerfileParser

from tests.deploy.compose import DOCKER_DIR, REPO, container_env, run_in_env, services

DOCKERFILES = sorted(DOCKER_DIR.glob("Dockerfile.*[!e]"))  # not the .dockerignore files
NOT_IN_IMAGES = {"tests", "bench"}  # packages that only tests and benchmarks use


def instructions(path: Path) -> list[dict]:
    with path.open("rb") as handle:
        return DockerfileParser(fileobj=handle).structure


def final_stage(path: Path) -> list[dict]:
    found = instructions(path)
    last_from = max(i for i, item in enumerate(found) if item["instruction"] == "FROM")
    return found[last_from:]


def copy_sources(path: Path) -> list[tuple[str, str]]:
    """(source, destination) of every COPY/ADD from the build context (not from another stage)."""
    pairs = []
    for item in instructions(path):
        if item["instruction"] not in ("COPY", "ADD"):
            continue
        args = shlex.split(item["value"])
        if any(arg.startswith("--from=") for arg in args):
            continue
        args = [arg for arg in args if not arg.startswith("--")]
        pairs += [(source, args[-1]) for source in args[:-1]]
    return pairs


def test_both_dockerfiles_exist_and_compose_builds_them():
    names = {path.name for path in DOCKERFILES}
    assert names == {"Dockerfile.web", "Dockerfile.worker"}, names
    built = {svc.dockerfile for svc in services().values() if svc.dockerfile is not None}
    assert built == {path.resolve() for path in DOCKERFILES}
    for svc in services().values():
        if svc.build_context is not None:
            assert svc.build_context == REPO, f"{svc.name} builds from {svc.build_context}, not the repository root"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_every_copied_file_exists_in_the_build_context(dockerfile):
    pairs = copy_sources(dockerfile)
    assert pairs, "copies nothing"
    for source, _ in pairs:
        assert (REPO / source).exists(), f"{dockerfile.name} copies {source}, which does not exist"
        assert not source.startswith(("docker/.env", ".env", "var")), f"{dockerfile.name} copies secrets or data"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_the_image_ships_every_package_and_data_dir_the_code_reads(dockerfile):
    copied = {source.rstrip("/") for source, _ in copy_sources(dockerfile)}
    packages = {p.parent.name for p in REPO.glob("*/__init__.py")} - NOT_IN_IMAGES
    missing = sorted(packages - copied)
    assert not missing, f"{dockerfile.name} does not copy the packages {missing}"
    from assistant.knowledge import knowledge_dir

    data_dirs = [*settings.TEMPLATES[0]["DIRS"], *settings.STATICFILES_DIRS, knowledge_dir()]
    for directory in data_dirs:
        relative = str(Path(directory).resolve().relative_to(REPO))
        assert relative in copied, f"{dockerfile.name} does not copy {relative}, which the code reads"
    assert {"requirements.lock", "requirements-web.lock"} & copied and "manage.py" in copied


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_the_image_runs_unprivileged_with_a_matching_dockerignore(dockerfile):
    users = [item["value"].strip() for item in final_stage(dockerfile) if item["instruction"] == "USER"]
    assert users and users[-1] not in ("root", "0"), f"{dockerfile.name} runs as root"
    ignore = dockerfile.with_name(dockerfile.name + ".dockerignore")
    assert ignore.is_file(), f"{ignore.name} is missing: the whole repository (.venv, var) would be sent to Docker"
    patterns = {line.strip() for line in ignore.read_text().splitlines() if line.strip() and not line.startswith("#")}
    assert {"**/.venv", "var"} <= patterns
    assert any(".env" in pattern for pattern in patterns)


def test_the_worker_image_is_a_cuda_runtime_and_the_web_image_is_not():
    worker = DockerfileParser(fileobj=(DOCKER_DIR / "Dockerfile.worker").open("rb"))
    web = DockerfileParser(fileobj=(DOCKER_DIR / "Dockerfile.web").open("rb"))
    assert worker.baseimage.startswith("nvidia/cuda:") and "runtime" in worker.baseimage, worker.baseimage
    assert "cuda" not in web.baseimage
    web_run = " ".join(item["value"] for item in instructions(DOCKER_DIR / "Dockerfile.web"))
    assert "whl/cpu" in web_run, "the web image needs no CUDA build of torch"


def test_the_web_image_serves_gunicorn_with_static_files_collected_at_build():
    stage = final_stage(DOCKER_DIR / "Dockerfile.web")
    runs = " ".join(item["value"] for item in stage if item["instruction"] == "RUN")
    assert "manage.py collectstatic --noinput" in runs
    cmd = json.loads(next(item["value"] for item in stage if item["instruction"] == "CMD"))
    assert cmd[:2] == ["gunicorn", "marrowfind.wsgi:application"]
    assert "whitenoise.middleware.WhiteNoiseMiddleware" in settings.MIDDLEWARE


def test_the_build_time_collectstatic_succeeds(tmp_path):
    """Runs the web Dockerfile's collectstatic step as the build does: the
    image's ENV, no database, no secret, a throw-away var dir."""
    parser = DockerfileParser(fileobj=(DOCKER_DIR / "Dockerfile.web").open("rb"))
    env = container_env({}, dict(parser.envs))
    env.update(MARROWFIND_VAR_DIR=str(tmp_path / "build-var"), STATIC_ROOT=str(tmp_path / "static"))
    env["PATH"] = container_env({})["PATH"]
    done = run_in_env(["manage.py", "collectstatic", "--noinput", "-v", "0"], env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    manifest = json.loads((tmp_path / "static" / "staticfiles.json").read_text())
    assert any(name.startswith("drf_spectacular_sidecar/swagger-ui-dist/") for name in manifest["paths"])
