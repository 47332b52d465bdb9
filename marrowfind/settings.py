"""Django settings for Marrow-Find.

Every setting that differs between a laptop demo and a hospital deployment is
read from the environment by ``marrowfind.env`` with strict parsing; a bad
value stops the start with a clear message. README.md lists them all.

Two modes:
* **embedded** (no ``DATABASE_URL``): SQLite and a Celery broker on the file
  system under ``var/``, a generated secret key kept in ``var/``. Needs no
  server, for a first look on one machine.
* **production** (``DATABASE_URL`` set): PostgreSQL, Redis via
  ``CELERY_BROKER_URL``, ``SECRET_KEY`` required unless ``DEBUG``.
"""

from __future__ import annotations

from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from marrowfind import embedded
from marrowfind.env import (
    env_bool,
    env_float,
    env_int,
    env_list,
    env_name,
    env_rate,
    env_str,
)

BASE_DIR = embedded.BASE_DIR
# Importing the settings creates no folder and no file: marrowfind.embedded.prepare()
# (called by manage.py, wsgi/asgi, Celery start-up and the tests) does.
VAR_DIR = Path(env_str("MARROWFIND_VAR_DIR", str(BASE_DIR / "var"))).resolve()  # = embedded.var_dir()

DEBUG = env_bool("DEBUG", False)

# --- database -------------------------------------------------------------
_database_url = env_str("DATABASE_URL")
EMBEDDED = _database_url is None
if EMBEDDED:
    _database_url = f"sqlite:///{VAR_DIR / 'marrowfind.sqlite3'}"
try:
    _db = dj_database_url.parse(_database_url, conn_max_age=env_int("DB_CONN_MAX_AGE", 60, minimum=0))
except ValueError as exc:  # unknown scheme and the like
    raise ImproperlyConfigured(f"DATABASE_URL is not a usable database URL: {exc}") from None
if _db["ENGINE"] == "django.db.backends.sqlite3":
    _db["OPTIONS"] = {"timeout": 30, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL;"}
    _db["CONN_MAX_AGE"] = 0
else:
    _db["CONN_HEALTH_CHECKS"] = True
_db["TEST"] = {"NAME": env_str("TEST_DATABASE_NAME")}
DATABASES = {"default": _db}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- secrets and hosts ----------------------------------------------------
SECRET_KEY = env_str("SECRET_KEY")
if SECRET_KEY is None:
    if not (EMBEDDED or DEBUG):
        raise ImproperlyConfigured(
            "SECRET_KEY must be set when DATABASE_URL is set and DEBUG is off "
            "(generate one with: python -c 'import secrets; print(secrets.token_urlsafe(50))')"
        )
    _key_file = embedded.secret_key_file()
    if not _key_file.is_file():
        raise ImproperlyConfigured(
            f"no SECRET_KEY and no generated key at {_key_file}: start through bin/run or manage.py "
            "(they prepare the embedded folders), or set SECRET_KEY"
        )
    SECRET_KEY = _key_file.read_text().strip()
elif len(SECRET_KEY) < 32 and not DEBUG:
    raise ImproperlyConfigured("SECRET_KEY is too short: use at least 32 random characters")

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
SITE_URL = env_str("SITE_URL", "http://localhost:8000").rstrip("/")

# HTTPS hardening: on for production, off for the embedded laptop demo.
SECURE_HTTPS = env_bool("SECURE_HTTPS", not (EMBEDDED or DEBUG))
SESSION_COOKIE_SECURE = SECURE_HTTPS
CSRF_COOKIE_SECURE = SECURE_HTTPS
SESSION_COOKIE_HTTPONLY = True
SECURE_SSL_REDIRECT = SECURE_HTTPS and env_bool("SECURE_SSL_REDIRECT", True)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000 if SECURE_HTTPS else 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HTTPS
SECURE_HSTS_PRELOAD = SECURE_HTTPS
if env_bool("BEHIND_TLS_PROXY", SECURE_HTTPS):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# How many proxies in front of gunicorn append to X-Forwarded-For (1 with the
# compose file's nginx). Every rate limit and lock-out keys on the address this
# yields (marrowfind.clientip); 0 = no proxy: X-Forwarded-For is ignored.
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0, minimum=0, maximum=10)
ALLAUTH_TRUSTED_PROXY_COUNT = TRUSTED_PROXY_COUNT  # allauth's own reading agrees (the adapter uses ours)

# --- applications ---------------------------------------------------------
INSTALLED_APPS = [
    "marrowfind.apps.MfaAdminConfig",  # django.contrib.admin behind allauth's login + two-factor
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "allauth",
    "allauth.account",
    "allauth.mfa",
    "rest_framework",
    "rest_framework.authtoken",  # kept only so the migration to hashed tokens can read the old table
    "apitokens",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    # Apps by area; dependencies point down this list's layers (.importlinter):
    # api > assistant > reports > review > accounts | instant | monitoring > diagnostics.
    "diagnostics",
    "accounts",
    "review",
    "reports",
    "assistant",
    "instant",
    "monitoring",
    "api",
    "workers",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "csp.middleware.CSPMiddleware",
    "marrowfind.middleware.NoStoreCacheControl",
    "marrowfind.middleware.RefuseUnstorableText",
]

# Content-Security-Policy (django-csp): scripts, styles, fonts and images from
# this site only; no inline script, no eval, no framing. Inline style
# attributes (a few progress bars and widths) are allowed, inline <style> not.
EMPTY_STYLE_HASH = "'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU='"  # base64(sha256(b""))
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        # <style> elements: this site's files, and the EMPTY inline style only (the hash of
        # ""): the viewer leaves an empty marker so OpenSeadragon does not inject its own.
        "style-src-elem": ["'self'", EMPTY_STYLE_HASH],
        "style-src-attr": ["'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}

ROOT_URLCONF = "marrowfind.urls"
WSGI_APPLICATION = "marrowfind.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "builtins": ["diagnostics.templatetags.people"],
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "diagnostics.context_processors.marrowfind",
            ],
        },
    },
]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]

# --- accounts (django-allauth) -------------------------------------------
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "worklist"
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_USER_MODEL_USERNAME_FIELD = "username"
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_EMAIL_VERIFICATION = "none"
ACCOUNT_ADAPTER = "accounts.adapter.InviteOnlyAccountAdapter"
# login_failed's "key" is account@address (accounts.adapter): never per address alone.
ACCOUNT_RATE_LIMITS = {"login_failed": "5/5m/key", "reset_password": "20/m/ip,5/m/key"}
ACCOUNT_LOGOUT_ON_PASSWORD_CHANGE = False
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes"]
MFA_TOTP_ISSUER = "Marrow-Find"

EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1, maximum=65535)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "marrowfind@localhost")

# --- i18n, static, media --------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(VAR_DIR / "static")))
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if env_str("STATIC_STORAGE", "manifest", choices=["manifest", "plain"]) == "manifest" and not DEBUG
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}
# Media (originals, overlays, report caches) is never served from a public
# URL: diagnostics.views.media checks lab access for each file.
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(VAR_DIR / "media"))).resolve()
MEDIA_URL = "/protected-media/"
# "django" streams the file from Python; "nginx" answers with X-Accel-Redirect.
MEDIA_SERVE_MODE = env_str("MEDIA_SERVE_MODE", "django", choices=["django", "nginx"])
MEDIA_ACCEL_PREFIX = env_str("MEDIA_ACCEL_PREFIX", "/_protected/")

# --- uploads --------------------------------------------------------------
MAX_UPLOAD_FILE_MB = env_int("MAX_UPLOAD_FILE_MB", 50, minimum=1)
MAX_FILES_PER_BATCH = env_int("MAX_FILES_PER_BATCH", 500, minimum=1)
MAX_IMAGE_PIXELS = env_int("MAX_IMAGE_PIXELS", 50_000_000, minimum=10_000)
MAX_ZIP_UNCOMPRESSED_MB = env_int("MAX_ZIP_UNCOMPRESSED_MB", 2048, minimum=1)
MAX_ZIP_RATIO = env_int("MAX_ZIP_RATIO", 100, minimum=2)
# Django's own parser limits sit well above the application's, so that a
# batch over MAX_FILES_PER_BATCH or an over-long note reaches the form, which
# says so and keeps what was typed; beyond them a page says which limit
# (marrowfind.middleware), never a blank 400.
DATA_UPLOAD_MAX_NUMBER_FILES = 2 * MAX_FILES_PER_BATCH + 10
DATA_UPLOAD_MAX_MEMORY_SIZE = 16 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
FILE_UPLOAD_PERMISSIONS = 0o640

# --- analysis -------------------------------------------------------------
MARROWFIND_MODEL_DIR = Path(env_str("MARROWFIND_MODEL_DIR", str(VAR_DIR / "models"))).resolve()
LOW_CONFIDENCE_THRESHOLD = env_float("LOW_CONFIDENCE_THRESHOLD", 0.6, minimum=0.0, maximum=1.0)
# None = estimate the scale per image (ml.segment); set it when the microscope is calibrated.
PIXELS_PER_MICRON = env_float("PIXELS_PER_MICRON", None, minimum=0.01)
# A learned white-cell mask (python -m ml train-wbc-mask; ml.wbcmask) for the segmentation's white cells;
# empty = the colour rules. Trained on all4class fields: see the README's counting figures before turning it on.
_wbc_mask_model = env_str("WBC_MASK_MODEL", "")
WBC_MASK_MODEL = Path(_wbc_mask_model).resolve() if _wbc_mask_model else None
WHO_BLAST_THRESHOLD = 0.20
# Cells a reviewed differential should count (nucleated white cells): the gallery warns below it.
DIFFERENTIAL_TARGET_MARROW = env_int("DIFFERENTIAL_TARGET_MARROW", 200, minimum=1, maximum=100_000)
DIFFERENTIAL_TARGET_BLOOD = env_int("DIFFERENTIAL_TARGET_BLOOD", 100, minimum=1, maximum=100_000)
INFERENCE_DEVICE = env_str("INFERENCE_DEVICE", "auto", choices=["auto", "cpu", "cuda"])
INFERENCE_PRECISION = env_str("INFERENCE_PRECISION", "auto", choices=["auto", "fp32", "bf16", "fp16"])
WORKER_BATCH_SIZE = env_int("WORKER_BATCH_SIZE", 16, minimum=1, maximum=1024)
CAM_METHOD = env_str("CAM_METHOD", "gradcam", choices=["gradcam", "gradcam++", "scorecam", "eigencam"])
# torch.compile of the classify + CAM module (ml.compiled): auto = on CUDA and on the CPUs where it
# measured faster; compiled at worker warm-up in the background, eager until ready.
INFERENCE_COMPILE = env_str("INFERENCE_COMPILE", "auto", choices=["auto", "on", "off"])
# Inductor's on-disk caches (FX graph, AOTAutograd, Triton): a second worker start reuses them.
# Made when the first model compiles, not here.
COMPILE_CACHE_DIR = Path(env_str("COMPILE_CACHE_DIR", str(VAR_DIR / "compile-cache"))).resolve()

# --- Celery (read by marrowfind.celery under the CELERY namespace) --------
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "filesystem://")
CELERY_EMBEDDED_BROKER = CELERY_BROKER_URL.startswith("filesystem://")
if CELERY_EMBEDDED_BROKER:
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(embedded.broker_folder("queue")),
        "data_folder_out": str(embedded.broker_folder("queue")),
        "processed_folder": str(embedded.broker_folder("processed")),
        "control_folder": str(embedded.broker_folder("control")),
        "store_processed": False,
    }
else:
    # Redis hands an unacknowledged message to another worker after this long:
    # it must exceed the longest task (its hard time limit), or a running task
    # is run twice. A killed worker's work comes back much sooner through the
    # sweeper (WORKER_DEAD_AFTER_S below); this is the last resort.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 0, minimum=0) or None,
    }
# An unreachable broker stops a starting worker after a few tries with a clear
# message (marrowfind/celery.py), instead of 100 silent retries.
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_CONNECTION_MAX_RETRIES = env_int("CELERY_BROKER_CONNECTION_MAX_RETRIES", 3, minimum=0)
CELERY_BROKER_CONNECTION_TIMEOUT = env_float("CELERY_BROKER_CONNECTION_TIMEOUT", 4.0, minimum=0.5)
# A pool process must finish starting (the model warm-up: 2.3-5.1 s measured) within this.
CELERY_WORKER_PROC_ALIVE_TIMEOUT = env_float("CELERY_WORKER_PROC_ALIVE_TIMEOUT", 60.0, minimum=4.0)
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 300, minimum=1)
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 360, minimum=2)
if CELERY_TASK_TIME_LIMIT <= CELERY_TASK_SOFT_TIME_LIMIT:
    raise ImproperlyConfigured("CELERY_TASK_TIME_LIMIT must be greater than CELERY_TASK_SOFT_TIME_LIMIT")
if not CELERY_EMBEDDED_BROKER:
    # Default: the hard time limit plus a minute (the longest a task can legitimately run).
    if CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"] is None:
        CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"] = CELERY_TASK_TIME_LIMIT + 60
    if CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"] <= CELERY_TASK_TIME_LIMIT:
        raise ImproperlyConfigured("CELERY_VISIBILITY_TIMEOUT must be longer than CELERY_TASK_TIME_LIMIT")
CELERY_TASK_DEFAULT_QUEUE = "cpu"
# Queue names: "gpu" = classification + CAM, "cpu" = decoding, segmentation,
# overlays, reports; "priority" = the instant single-image check.
CELERY_TASK_ROUTES = {
    "diagnostics.tasks.classify_chunk": {"queue": env_name("CLASSIFY_QUEUE", "gpu", choices=["gpu", "cpu", "priority"])},
    "instant.tasks.*": {"queue": "priority"},
    "diagnostics.tasks.*": {"queue": "cpu"},
    "reports.tasks.*": {"queue": "cpu"},
}
# Each app's tasks.py is found by app.autodiscover_tasks() (marrowfind/celery.py);
# the web side sends tasks by name through marrowfind/dispatch.py.
CELERY_WORKER_SEND_TASK_EVENTS = True
CELERY_TASK_SEND_SENT_EVENT = True
# The sweeper (beat, its own process): gives back the claims of workers that are gone,
# re-sends lost messages and missing final reports.
SWEEP_PERIOD_S = env_int("SWEEP_PERIOD_S", 20, minimum=5)
CELERY_BEAT_SCHEDULE = {
    "requeue-stuck-images": {"task": "diagnostics.tasks.requeue_stuck_images", "schedule": float(SWEEP_PERIOD_S)},
}
# Each worker's main process refreshes a key in the shared cache this often
# (diagnostics/liveness.py); after WORKER_DEAD_AFTER_S without it, the worker is
# gone and the sweeper gives its claims back: a kill -9 recovers in about
# WORKER_DEAD_AFTER_S + SWEEP_PERIOD_S + the work itself.
WORKER_HEARTBEAT_S = env_int("WORKER_HEARTBEAT_S", 10, minimum=1)
WORKER_DEAD_AFTER_S = env_int("WORKER_DEAD_AFTER_S", 35, minimum=3)
if WORKER_DEAD_AFTER_S <= 2 * WORKER_HEARTBEAT_S:
    raise ImproperlyConfigured("WORKER_DEAD_AFTER_S must be more than twice WORKER_HEARTBEAT_S")
# Load the active models when a worker process starts (workers/signals.py); off
# for a worker that only renders reports.
MARROWFIND_WARM_UP = env_bool("MARROWFIND_WARM_UP", True)
# A claim held this long by a worker that is still alive is given back too
# (a hung task); above the hard time limit, so a running task keeps its images.
STUCK_IMAGE_AFTER_S = env_int("STUCK_IMAGE_AFTER_S", 0, minimum=0) or CELERY_TASK_TIME_LIMIT + 60
# A draft report renders on the cpu queue; the web request that asks for it waits this
# long for the PDF before it answers a page (or a 202) that polls.
REPORT_DRAFT_WAIT_S = env_float("REPORT_DRAFT_WAIT_S", 2.0, minimum=0.0)
# Tests only: the image uploaded under this file name waits in its decode step until the task's
# soft time limit stops it (tests/faults/test_time_limit.py); empty = no image waits.
PIPELINE_SLOW_IMAGE = env_str("PIPELINE_SLOW_IMAGE", "")

# --- cache ----------------------------------------------------------------
# Every limit and one-time code lives in this cache (API throttles, login and
# verify-upload limits, "TOTP code already used"), so it must be shared by all
# web processes: Redis when CACHE_URL is set, else the database (a table made
# by `manage.py createcachetable`; bin/run and the test database make it).
_cache_url = env_str("CACHE_URL")
if _cache_url is not None and not _cache_url.startswith(("redis://", "rediss://", "unix://")):
    raise ImproperlyConfigured(f"CACHE_URL={_cache_url!r} is not a redis:// URL")
CACHE_TABLE = "mf_cache"
CACHES = {
    "default": (
        {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": _cache_url}
        if _cache_url
        else {"BACKEND": "django.core.cache.backends.db.DatabaseCache", "LOCATION": CACHE_TABLE,
              "OPTIONS": {"MAX_ENTRIES": 100_000}}
    )
}

# --- REST API -------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "apitokens.authentication.HashedTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_THROTTLE_CLASSES": [
        "rest_framework.throttling.AnonRateThrottle",
        "rest_framework.throttling.UserRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": env_rate("API_THROTTLE_ANON", "60/min"),
        "user": env_rate("API_THROTTLE_USER", "1200/min"),
        "upload": env_rate("API_THROTTLE_UPLOAD", "120/min"),
        "token": env_rate("API_THROTTLE_TOKEN", "20/hour"),
    },
    "EXCEPTION_HANDLER": "api.exceptions.api_exception_handler",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Marrow-Find API",
    "DESCRIPTION": "Case upload, analysis results and reports for lab information systems.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Request bodies get their own components, so upload fields are binary files.
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "CaseStatusEnum": "diagnostics.models.CaseStatus",
        "ImageStatusEnum": "diagnostics.models.ImageStatus",
    },
}

# --- assistant ------------------------------------------------------------
ASSISTANT_LLM_URL = env_str("ASSISTANT_LLM_URL")  # OpenAI-compatible base URL; unset = offline
ASSISTANT_LLM_MODEL = env_str("ASSISTANT_LLM_MODEL", "gpt-4o-mini")
ASSISTANT_LLM_API_KEY = env_str("ASSISTANT_LLM_API_KEY", "")
ASSISTANT_LLM_TIMEOUT_S = env_float("ASSISTANT_LLM_TIMEOUT_S", 30.0, minimum=1.0)

# --- monitoring -----------------------------------------------------------
METRICS_TOKEN = env_str("METRICS_TOKEN")  # bearer token for /metrics; site admins may also view it

_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LOG_LEVEL = env_str("LOG_LEVEL", "INFO").upper()
if LOG_LEVEL not in _LOG_LEVELS:
    raise ImproperlyConfigured(f"LOG_LEVEL={env_str('LOG_LEVEL')!r} is not one of: {', '.join(_LOG_LEVELS)}")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {"django.request": {"level": "ERROR"}},
}
