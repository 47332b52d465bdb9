"""docker/compose.yaml cannot drift from what the project reads.

No Docker engine runs here, so the compose file is parsed and interpolated as
``docker compose`` would, and each Django service's environment is loaded
into the real settings in a fresh process (tests/deploy/compose.py).
"""

from __future__ import annotations

import importlib
import re
from urllib.parse import urlsplit

from django.core.management import get_commands

from tests.deploy.compose import (
    FRAMEWORK_ENV,
    REQUIRED_DJANGO_ENV,
    container_env,
    option,
    probe_settings,
    raw_compose,
    run_in_env,
    settings_env_names,
)
from tests.deploy.conftest import celery_app_arg, image_env

_TRUE = {"1", "true", "yes", "on"}
# Celery's global options that take a value (before the sub-command).
_CELERY_VALUE_OPTIONS = {
    "-A",
    "--app",
    "-b",
    "--broker",
    "--result-backend",
    "--loader",
    "--config",
    "--workdir",
}


def celery_subcommand(argv: list[str]) -> str | None:
    index = 1
    while index < len(argv):
        arg = argv[index]
        if arg in _CELERY_VALUE_OPTIONS:
            index += 2
            continue
        if arg.startswith("-"):
            index += 1
            continue
        return arg
    return None


def workers(services):
    return {
        name: svc
        for name, svc in services.items()
        if svc.argv[:1] == ["celery"] and celery_subcommand(svc.argv) == "worker"
    }


def worker_queues(svc) -> list[str]:
    value = option(svc.argv, "-Q", "--queues")
    assert value, f"{svc.name}: a worker must name its queues (-Q); the default would consume every queue"
    return [queue.strip() for queue in value.split(",") if queue.strip()]


def test_the_settings_reader_list_is_not_empty():
    # Guards the AST walk itself: if settings stopped using env_*(), every
    # check below would pass vacuously.
    assert {
        "SECRET_KEY",
        "DATABASE_URL",
        "CELERY_BROKER_URL",
        "MEDIA_ROOT",
    } <= settings_env_names()


def test_every_variable_a_django_service_sets_is_read_by_settings(django_services):
    known = settings_env_names() | FRAMEWORK_ENV
    for name, svc in django_services.items():
        unknown = sorted(set(svc.environment) - known)
        assert not unknown, f"{name} sets {unknown}, which marrowfind/settings.py never reads"


def test_every_variable_an_image_sets_for_django_is_read_by_settings_or_python(
    django_services,
):
    # Read by Python, apt and matplotlib (its cache: the app user has no writable home).
    process_env = {"PATH", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE", "DEBIAN_FRONTEND", "MPLCONFIGDIR"}
    known = settings_env_names() | FRAMEWORK_ENV | process_env
    for name, svc in django_services.items():
        unknown = sorted(set(image_env(svc)) - known)
        assert not unknown, f"{svc.dockerfile.name} (service {name}) sets ENV {unknown} that nothing reads"


def test_django_services_set_the_required_settings(django_services):
    for name, svc in django_services.items():
        env = svc.environment
        missing = [key for key in REQUIRED_DJANGO_ENV if not env.get(key)]
        assert not missing, f"{name} lacks {missing}"
        assert env.get("DEBUG", "0").lower() not in _TRUE, f"{name} runs with DEBUG on"


def test_each_django_service_loads_production_settings(django_services, service_settings):
    for name in django_services:
        resolved = service_settings[name]
        assert not resolved["embedded"], f"{name} would run on the embedded SQLite database"
        assert resolved["engine"] == "django.db.backends.postgresql", name
        assert not resolved["debug"], name
        assert urlsplit(resolved["broker_url"]).scheme == "redis", f"{name}: broker is {resolved['broker_url']}"
        assert resolved["cache_backend"].endswith("RedisCache"), f"{name}: throttles need a shared cache"


def test_database_broker_and_cache_hosts_are_compose_services(compose_services, django_services):
    postgres_env = compose_services["postgres"].environment
    for name, svc in django_services.items():
        db = urlsplit(svc.environment["DATABASE_URL"])
        assert db.hostname in compose_services, f"{name}: database host {db.hostname} is not a service"
        assert db.username == postgres_env["POSTGRES_USER"], name
        assert db.password == postgres_env["POSTGRES_PASSWORD"], name
        assert db.path.lstrip("/") == postgres_env["POSTGRES_DB"], name
        for key in ("CELERY_BROKER_URL", "CACHE_URL"):
            host = urlsplit(svc.environment[key]).hostname
            assert host == "redis" and host in compose_services, f"{name}: {key} host {host}"
        broker, cache = (urlsplit(svc.environment[key]).path for key in ("CELERY_BROKER_URL", "CACHE_URL"))
        assert broker != cache, f"{name}: the broker and the cache share one Redis database"


def test_the_celery_app_path_resolves_to_the_project_app(django_services, service_settings):
    for name, svc in django_services.items():
        if svc.argv[:1] != ["celery"]:
            continue
        resolved = service_settings[name]
        assert resolved["app_main"] == "marrowfind", f"{name}: -A {celery_app_arg(svc)} is not the project app"
        assert resolved["app_broker"] == resolved["broker_url"], f"{name}: the app does not read Django settings"


def test_worker_queues_exist_in_the_routing(compose_services, service_settings):
    found = workers(compose_services)
    assert found, "compose.yaml runs no Celery worker"
    for name, svc in found.items():
        unknown = set(worker_queues(svc)) - set(service_settings[name]["queues"])
        assert not unknown, f"{name} consumes {sorted(unknown)}, which no task is routed to"


def test_every_routed_queue_has_a_worker(compose_services, service_settings):
    found = workers(compose_services)
    consumed = {queue for svc in found.values() for queue in worker_queues(svc)}
    for name in found:
        unserved = set(service_settings[name]["queues"]) - consumed
        assert not unserved, f"with {name}'s settings, tasks go to {sorted(unserved)} but no worker consumes it"


def test_the_gpu_worker_reserves_a_gpu_and_never_forks(compose_services):
    gpu_workers = {name: svc for name, svc in workers(compose_services).items() if svc.reserves_gpu()}
    assert gpu_workers, "no worker reserves a GPU (deploy.resources.reservations.devices)"
    for name, svc in gpu_workers.items():
        assert "gpu" in worker_queues(svc), f"{name} reserves a GPU but does not consume the gpu queue"
        pool = option(svc.argv, "-P", "--pool")
        assert pool in ("solo", "threads"), f"{name}: pool {pool!r} forks after CUDA is initialised"
        assert svc.environment.get("INFERENCE_DEVICE") == "cuda", name
        assert svc.spec["image"].split(":")[0] == "marrowfind-worker", name
    for name, svc in workers(compose_services).items():
        if "gpu" not in worker_queues(svc):
            assert svc.environment.get("INFERENCE_DEVICE") != "cuda", f"{name} asks for CUDA without a GPU"


def test_exactly_one_beat_and_its_tasks_are_registered(compose_services, service_settings):
    beats = {
        name: svc
        for name, svc in compose_services.items()
        if svc.argv[:1] == ["celery"] and celery_subcommand(svc.argv) == "beat"
    }
    assert len(beats) == 1, f"the stuck-image sweeper needs exactly one beat, found {sorted(beats)}"
    ((name, svc),) = beats.items()
    assert "-B" not in svc.argv and not any("--beat" in arg for arg in svc.argv), name
    for worker_name, worker in workers(compose_services).items():
        assert "-B" not in worker.argv and "--beat" not in worker.argv, f"{worker_name} embeds a second beat"
    assert (svc.spec.get("deploy") or {}).get("replicas", 1) == 1
    resolved = probe_settings(container_env(svc.environment, image_env(svc)), celery_app_arg(svc), tasks=True)
    assert resolved["beat_tasks"], "CELERY_BEAT_SCHEDULE is empty"
    unregistered = set(resolved["beat_tasks"]) - set(resolved["registered_tasks"])
    assert not unregistered, f"beat schedules tasks no worker module defines: {sorted(unregistered)}"


def test_gunicorn_serves_the_project_wsgi_app(compose_services):
    gunicorns = [svc for svc in compose_services.values() if svc.argv[:1] == ["gunicorn"]]
    assert gunicorns, "no service runs gunicorn"
    for svc in gunicorns:
        app_path = next(arg for arg in svc.argv[1:] if not arg.startswith("-"))
        module_name, _, attr = app_path.partition(":")
        assert callable(getattr(importlib.import_module(module_name), attr or "application")), app_path
        workers_arg = option(svc.argv, "-w", "--workers")
        assert workers_arg is None or int(workers_arg) >= 1


def test_manage_py_commands_exist(compose_services):
    commands = get_commands()
    used = [svc for svc in compose_services.values() if svc.argv[:2] == ["python", "manage.py"]]
    assert used, "no service runs manage.py (migrations)"
    for svc in used:
        assert svc.argv[2] in commands, f"{svc.name}: manage.py {svc.argv[2]} does not exist"


def test_migrations_run_once_before_the_django_services(compose_services, django_services):
    migrators = [svc for svc in compose_services.values() if svc.argv[:3] == ["python", "manage.py", "migrate"]]
    assert len(migrators) == 1
    migrate = migrators[0]
    assert migrate.spec.get("restart") == "no", "the migrate service is one-shot"
    for name, svc in django_services.items():
        if svc is migrate:
            continue
        condition = (svc.spec.get("depends_on") or {}).get(migrate.name, {}).get("condition")
        assert condition == "service_completed_successfully", f"{name} may start before migrations"


def test_media_and_model_volumes_match_settings(compose_services, service_settings):
    media_volumes, model_volumes = set(), set()
    for name, resolved in service_settings.items():
        svc = compose_services[name]
        mounts = svc.volume_mounts
        needs_files = name == "web" or name in workers(compose_services)
        if not needs_files:
            continue
        assert resolved["media_root"] in mounts, f"{name}: MEDIA_ROOT {resolved['media_root']} is not a volume"
        assert resolved["model_dir"] in mounts, f"{name}: model dir {resolved['model_dir']} is not a volume"
        media_volumes.add(mounts[resolved["media_root"]])
        model_volumes.add(mounts[resolved["model_dir"]])
    assert len(media_volumes) == 1, f"web and workers must share one media volume, found {media_volumes}"
    assert len(model_volumes) == 1, f"web and workers must share one model volume, found {model_volumes}"
    named = set(raw_compose().get("volumes") or {})
    assert media_volumes | model_volumes <= named, "media and models must be named volumes (they are kept)"
    assert compose_services["postgres"].volume_mounts.get("/var/lib/postgresql/data") in named


def test_long_running_services_have_healthchecks(compose_services):
    for name, svc in compose_services.items():
        one_shot = svc.spec.get("restart") == "no"
        beat = svc.argv[:1] == ["celery"] and celery_subcommand(svc.argv) == "beat"
        if not (one_shot or beat):
            assert svc.spec.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
        for dependency, spec in (svc.spec.get("depends_on") or {}).items():
            assert dependency in compose_services, f"{name} depends on unknown {dependency}"
            if spec.get("condition") == "service_healthy":
                assert compose_services[dependency].spec.get("healthcheck"), f"{dependency} has no healthcheck"


def test_the_web_healthcheck_url_is_a_project_url(compose_services):
    from django.urls import resolve

    test = compose_services["web"].spec["healthcheck"]["test"]
    url = next(part for part in test if "http://" in part).split("http://", 1)[1]
    path = "/" + url.split("/", 1)[1].split("'", 1)[0]
    resolve(path)  # raises Resolver404 when the URL is gone


def test_web_settings_pass_the_deployment_check(compose_services):
    web = compose_services["web"]
    done = run_in_env(
        ["manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        container_env(web.environment, image_env(web)),
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_without_a_gpu_the_cpu_workers_serve_every_queue(compose_services):
    """CLASSIFY_QUEUE=cpu with gpu-worker scaled to 0 (docs/production.md): no
    queue may be left without a worker."""
    cpu_workers = {name: svc for name, svc in workers(compose_services).items() if not svc.reserves_gpu()}
    assert cpu_workers, "no worker runs without a GPU"
    consumed = {queue for svc in cpu_workers.values() for queue in worker_queues(svc)}
    for name, svc in cpu_workers.items():
        env = dict(svc.environment, CLASSIFY_QUEUE="cpu")
        resolved = probe_settings(container_env(env, image_env(svc)), celery_app_arg(svc))
        unserved = set(resolved["queues"]) - consumed
        assert not unserved, f"with CLASSIFY_QUEUE=cpu, {sorted(unserved)} has no worker but {name}"


def grace_seconds(text: str) -> float:
    """Compose durations such as "400s", "6m40s", "1h"."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", str(text))
    assert parts, f"not a duration: {text!r}"
    return sum(float(number) * units[unit] for number, unit in parts)


def test_workers_may_finish_their_running_task_when_stopped(compose_services, service_settings):
    """An upgrade stops workers with SIGTERM: the grace period must outlast the
    hard task time limit, or every deploy kills tasks mid-way."""
    for name, svc in workers(compose_services).items():
        grace = grace_seconds(svc.spec.get("stop_grace_period", "10s"))
        limit = service_settings[name]["task_time_limit"]
        assert grace > limit, f"{name}: stop_grace_period {grace:.0f} s <= task time limit {limit} s"
