"""Reading docker/ the way Docker would, without a Docker engine.

* :func:`load_compose`: ``docker/compose.yaml`` with ``${VAR}`` interpolation
  done as ``docker compose`` does it, from ``docker/.env.example`` plus test
  values for the secrets the example leaves blank.
* :func:`settings_env_names`: every environment variable that
  ``marrowfind/settings.py`` reads (its ``env_*`` calls, found in the AST).
* :func:`probe_settings`: load the Django settings and the Celery app in a
  fresh process with exactly a service's environment, and report what they
  resolved to (queues, paths, limits). Settings are module-level code, so a
  new process is the only honest way to see them under another environment.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from dotenv import dotenv_values

REPO = Path(__file__).resolve().parents[2]
DOCKER_DIR = REPO / "docker"
COMPOSE_FILE = DOCKER_DIR / "compose.yaml"
ENV_EXAMPLE = DOCKER_DIR / ".env.example"
SETTINGS_FILE = REPO / "marrowfind" / "settings.py"
ENV_READERS = {"env_rate", "env_name", "env_str", "env_bool", "env_int", "env_float", "env_list"}
# Read by Django itself rather than by marrowfind/settings.py.
FRAMEWORK_ENV = {"DJANGO_SETTINGS_MODULE"}
REQUIRED_DJANGO_ENV = ("SECRET_KEY", "DATABASE_URL", "CELERY_BROKER_URL")

# Values a real docker/.env must supply (the example leaves them blank).
TEST_SECRETS = {
    "SECRET_KEY": "test-only-" + "k" * 50,
    "POSTGRES_PASSWORD": "0123456789abcdef0123456789abcdef",
    "FLOWER_PASSWORD": "test-flower-password",
}

_VAR = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
    r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)


class InterpolationError(ValueError):
    pass


@dataclass(frozen=True)
class VariableUse:
    name: str
    op: str | None  # None, "-", ":-", "?", ":?"

    @property
    def required(self) -> bool:
        return self.op in ("?", ":?") or self.op is None

    @property
    def has_default(self) -> bool:
        return self.op in ("-", ":-")


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's variable substitution: ``$VAR``, ``${VAR}``, ``${VAR:-default}``,
    ``${VAR-default}``, ``${VAR:?error}``, ``${VAR?error}``, and ``$$`` for a literal ``$``."""

    def substitute(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        name = match["braced"] or match["bare"]
        op, arg = match["op"], match["arg"] or ""
        value = env.get(name)
        if op == ":-":
            return value if value else arg
        if op == "-":
            return value if value is not None else arg
        if op == ":?" and not value or op == "?" and value is None:
            raise InterpolationError(f"{name}: {arg or 'required variable is missing'}")
        return value or ""

    return _VAR.sub(substitute, text)


def variable_uses(node: Any) -> list[VariableUse]:
    """Every ``${VAR}`` reference in a parsed compose document."""
    uses: list[VariableUse] = []
    if isinstance(node, dict):
        for key, value in node.items():
            uses += variable_uses(key) + variable_uses(value)
    elif isinstance(node, list):
        for item in node:
            uses += variable_uses(item)
    elif isinstance(node, str):
        for match in _VAR.finditer(node):
            if not match["escaped"]:
                uses.append(VariableUse(match["braced"] or match["bare"], match["op"]))
    return uses


def _interpolate_tree(node: Any, env: dict[str, str]) -> Any:
    if isinstance(node, dict):
        return {_interpolate_tree(k, env): _interpolate_tree(v, env) for k, v in node.items()}
    if isinstance(node, list):
        return [_interpolate_tree(item, env) for item in node]
    if isinstance(node, str):
        return interpolate(node, env)
    return node


def example_env() -> dict[str, str]:
    """docker/.env.example, with the blanks an operator must fill filled for the test."""
    values = {key: value or "" for key, value in dotenv_values(ENV_EXAMPLE).items()}
    for key, secret in TEST_SECRETS.items():
        if not values.get(key):
            values[key] = secret
    return values


def raw_compose() -> dict[str, Any]:
    """The YAML as written (anchors and merge keys resolved, no interpolation)."""
    return yaml.safe_load(COMPOSE_FILE.read_text())


def load_compose(env: dict[str, str] | None = None) -> dict[str, Any]:
    return _interpolate_tree(raw_compose(), example_env() if env is None else env)


@dataclass
class Service:
    name: str
    spec: dict[str, Any]
    argv: list[str] = field(default_factory=list)

    @property
    def environment(self) -> dict[str, str]:
        env = self.spec.get("environment") or {}
        if isinstance(env, list):  # ["KEY=value", ...]
            env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
        return {str(k): "" if v is None else str(v) for k, v in env.items()}

    @property
    def dockerfile(self) -> Path | None:
        build = self.spec.get("build")
        if not isinstance(build, dict):
            return None
        return (DOCKER_DIR / build.get("context", ".")).resolve() / build.get("dockerfile", "Dockerfile")

    @property
    def build_context(self) -> Path | None:
        build = self.spec.get("build")
        return (DOCKER_DIR / build.get("context", ".")).resolve() if isinstance(build, dict) else None

    @property
    def is_django(self) -> bool:
        """Runs our code: built from one of our Dockerfiles."""
        return self.dockerfile is not None

    @property
    def volume_mounts(self) -> dict[str, str]:
        """Container path -> source (named volume or host path), for short-syntax volumes."""
        mounts: dict[str, str] = {}
        for item in self.spec.get("volumes") or []:
            if isinstance(item, str):
                source, target = item.split(":")[:2]
                mounts[target.rstrip("/") or "/"] = source
            else:
                mounts[str(item["target"]).rstrip("/")] = str(item.get("source", ""))
        return mounts

    def reserves_gpu(self) -> bool:
        devices = (((self.spec.get("deploy") or {}).get("resources") or {}).get("reservations") or {}).get(
            "devices"
        ) or []
        return any("gpu" in (device.get("capabilities") or []) for device in devices)


def services(compose: dict[str, Any] | None = None) -> dict[str, Service]:
    compose = load_compose() if compose is None else compose
    result = {}
    for name, spec in compose["services"].items():
        command = spec.get("command")
        argv = shlex.split(command) if isinstance(command, str) else [str(part) for part in command or []]
        result[name] = Service(name, spec, argv)
    return result


@cache
def settings_env_names() -> frozenset[str]:
    """Names passed as the first argument of an env_* call in marrowfind/settings.py."""
    tree = ast.parse(SETTINGS_FILE.read_text(), filename=str(SETTINGS_FILE))
    names = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ENV_READERS
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            names.add(node.args[0].value)
    return frozenset(names)


def options(argv: list[str]) -> dict[str, list[str]]:
    """``--name=value``, ``--name value`` and ``-X value`` options of a command line,
    each name mapped to its values (repeated options keep every value)."""
    found: dict[str, list[str]] = {}
    index = 0
    while index < len(argv):
        arg = argv[index]
        if arg.startswith("-") and len(arg) > 1:
            if "=" in arg:
                name, value = arg.split("=", 1)
            elif index + 1 < len(argv) and not argv[index + 1].startswith("-"):
                name, value = arg, argv[index + 1]
                index += 1
            else:
                name, value = arg, ""
            found.setdefault(name, []).append(value)
        index += 1
    return found


def option(argv: list[str], *names: str) -> str | None:
    found = options(argv)
    for name in names:
        if name in found:
            return found[name][-1]
    return None


_PROBE = r"""
import json, sys
import django
django.setup()
from django.conf import settings
from celery.app.utils import find_app
app = find_app(sys.argv[1])
routes = settings.CELERY_TASK_ROUTES
queues = sorted({route["queue"] for route in routes.values()} | {settings.CELERY_TASK_DEFAULT_QUEUE})
out = {
    "embedded": settings.EMBEDDED,
    "debug": settings.DEBUG,
    "engine": settings.DATABASES["default"]["ENGINE"],
    "broker_url": settings.CELERY_BROKER_URL,
    "queues": queues,
    "media_root": str(settings.MEDIA_ROOT),
    "model_dir": str(settings.MARROWFIND_MODEL_DIR),
    "media_serve_mode": settings.MEDIA_SERVE_MODE,
    "media_accel_prefix": settings.MEDIA_ACCEL_PREFIX,
    "max_upload_file_mb": settings.MAX_UPLOAD_FILE_MB,
    "static_root": str(settings.STATIC_ROOT),
    "cache_backend": settings.CACHES["default"]["BACKEND"],
    "task_time_limit": settings.CELERY_TASK_TIME_LIMIT,
    "beat_tasks": sorted(entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()),
    "app_main": app.main,
    "app_broker": app.conf.broker_url,
    "app_default_queue": app.conf.task_default_queue,
}
if "--tasks" in sys.argv:
    app.loader.import_default_modules()
    out["registered_tasks"] = sorted(name for name in app.tasks if not name.startswith("celery."))
print("PROBE" + json.dumps(out))
"""


def container_env(service_env: dict[str, str], image_env: dict[str, str] | None = None) -> dict[str, str]:
    """What the process in the container sees: the image's ENV, then compose's
    environment, and nothing of this test run's own settings."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
    }
    env["PYTHONPATH"] = str(REPO)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.update(image_env or {})
    env.update(service_env)
    env.setdefault("DJANGO_SETTINGS_MODULE", "marrowfind.settings")
    return env


def run_in_env(args: list[str], env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def probe_settings(env: dict[str, str], celery_app: str = "marrowfind", *, tasks: bool = False) -> dict[str, Any]:
    """Settings and Celery app as a process with ``env`` resolves them. Raises
    AssertionError with the child's stderr when settings refuse to load."""
    args = ["-c", _PROBE, celery_app] + (["--tasks"] if tasks else [])
    done = run_in_env(args, env)
    marker = [line for line in done.stdout.splitlines() if line.startswith("PROBE")]
    if done.returncode != 0 or not marker:
        raise AssertionError(f"settings did not load with this environment:\n{done.stderr[-3000:]}")
    return json.loads(marker[-1][len("PROBE") :])
