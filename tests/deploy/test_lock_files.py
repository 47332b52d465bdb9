"""The hashed lock files agree with the ranges in requirements*.txt, and every
installer (bin/_lib.sh, both Dockerfiles) installs from them with hashes checked.

A lock that has fallen behind its requirements (a package added to
requirements.txt but not locked) fails here: run ``bin/lock``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from dockerfile_parse import DockerfileParser
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.deploy.compose import DOCKER_DIR, REPO

CUDA_BUILD = re.compile(r"^(torch|torchvision|triton|nvidia-.+|cuda-.+)$")


def requirements(path: Path) -> dict[str, Requirement]:
    """Direct requirements of a requirements*.txt file, following ``-r`` includes."""
    found: dict[str, Requirement] = {}
    for raw in path.read_text().splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("-r "):
            found.update(requirements(path.parent / line[3:].strip()))
            continue
        req = Requirement(line)
        found[canonicalize_name(req.name)] = req
    return found


def lock_entries(path: Path) -> dict[str, tuple[Version, list[str]]]:
    """name -> (pinned version, hashes) of a pip-tools lock file."""
    entries: dict[str, tuple[Version, list[str]]] = {}
    current = None
    for line in path.read_text().splitlines():
        if line[:1].isalnum():
            spec = line.split(";", 1)[0].rstrip(" \\")
            name, _, version = spec.partition("==")
            assert version, f"{path.name}: {line!r} is not pinned with =="
            current = canonicalize_name(name)
            entries[current] = (Version(version.strip()), [])
        elif "--hash=sha256:" in line and current is not None:
            entries[current][1].append(line.split("--hash=sha256:", 1)[1].strip(" \\"))
    return entries


LOCKS = {"requirements.lock": "requirements.txt", "requirements-dev.lock": "requirements-dev.txt"}


@pytest.mark.parametrize(("lock", "source"), LOCKS.items())
def test_every_requirement_is_locked_within_its_range_with_hashes(lock, source):
    locked = lock_entries(REPO / lock)
    for name, req in requirements(REPO / source).items():
        assert name in locked, f"{name} is in {source} but not in {lock}: run bin/lock"
        version = locked[name][0]
        assert req.specifier.contains(version, prereleases=True), f"{lock} pins {name}=={version}, outside {req}"
    for name, (version, hashes) in locked.items():
        assert hashes, f"{lock}: {name}=={version} has no hash"
        assert all(re.fullmatch(r"[0-9a-f]{64}", h) for h in hashes), f"{lock}: bad hash for {name}"


def test_the_dev_lock_agrees_with_the_runtime_lock_and_the_pins():
    runtime, dev = lock_entries(REPO / "requirements.lock"), lock_entries(REPO / "requirements-dev.lock")
    for name, (version, _) in runtime.items():
        assert name in dev and dev[name][0] == version, f"{name}: {version} at run time, {dev.get(name)} in dev"
    for name, req in requirements(REPO / "requirements-pins.txt").items():
        assert next(str(s) for s in req.specifier).startswith("=="), f"requirements-pins.txt: {req} is not a pin"
        assert req.specifier.contains(runtime[name][0]), f"the lock has {name}=={runtime[name][0]}, pinned {req}"


def test_the_web_lock_is_the_runtime_lock_without_the_cuda_build():
    runtime, web = lock_entries(REPO / "requirements.lock"), lock_entries(REPO / "requirements-web.lock")
    expected = {name: entry for name, entry in runtime.items() if not CUDA_BUILD.match(name)}
    assert web == expected, "requirements-web.lock is stale: run bin/lock"
    assert "torch" in runtime and "torch" not in web


def test_the_installers_use_the_locks_with_hashes_checked():
    lib = (REPO / "bin" / "_lib.sh").read_text()
    assert 'want="requirements.lock"' in lib and 'want="requirements-dev.lock"' in lib
    assert "--require-hashes" in lib
    worker = " ".join(i["value"] for i in DockerfileParser(fileobj=(DOCKER_DIR / "Dockerfile.worker").open("rb")).structure
                      if i["instruction"] == "RUN")
    assert "--require-hashes -r /tmp/requirements.lock" in worker
    web_parser = DockerfileParser(fileobj=(DOCKER_DIR / "Dockerfile.web").open("rb"))
    web = " ".join(i["value"] for i in web_parser.structure if i["instruction"] == "RUN")
    assert "--require-hashes -r /tmp/requirements-web.lock" in web and "pip check" in web
    args = {i["value"].split("=", 1)[0]: i["value"].split("=", 1)[1] for i in web_parser.structure
            if i["instruction"] == "ARG" and "=" in i["value"]}
    runtime = lock_entries(REPO / "requirements.lock")
    assert Version(args["TORCH_VERSION"]) == runtime["torch"][0], "the web image's CPU torch differs from the lock"
    assert Version(args["TORCHVISION_VERSION"]) == runtime["torchvision"][0]
