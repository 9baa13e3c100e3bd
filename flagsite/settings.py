"""Flagsite settings, read from the environment.

FLAGSITE_ENV picks the mode:
- ``production`` (default): every secret must come from the environment; DEBUG is off unless set.
- ``demo``: the one-command embedded mode (SQLite, no Redis, file-based Celery broker).
- ``test``: the test suite, against the real PostgreSQL and Redis.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import django_stubs_ext
import environ
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured

# Lets admin classes be written ModelAdmin[Model] at run time, as the type checker wants.
django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()
# Where the embedded mode keeps its SQLite file, broker folder and collected static files.
VAR_DIR = Path(env.str("FLAGSITE_VAR_DIR", default=str(BASE_DIR / "var")))

FLAGSITE_ENV: str = env.str("FLAGSITE_ENV", default="production")
if FLAGSITE_ENV not in {"production", "demo", "test"}:
    raise ImproperlyConfigured(
        f"FLAGSITE_ENV must be production, demo or test, not {FLAGSITE_ENV!r}"
    )
EMBEDDED = FLAGSITE_ENV == "demo"

DEBUG: bool = env.bool("DEBUG", default=False)

_secret: str | None = env.str("SECRET_KEY", default=None)
if not _secret:
    if FLAGSITE_ENV == "production":
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. Production mode refuses to start without it; "
            "set SECRET_KEY, or FLAGSITE_ENV=demo for the embedded demo."
        )
    _secret = f"insecure-{FLAGSITE_ENV}-key-never-use-in-production"
SECRET_KEY: str = _secret

ALLOWED_HOSTS: list[str] = env.list(
    "ALLOWED_HOSTS", default=["*"] if FLAGSITE_ENV != "production" else ["localhost"]
)
CSRF_TRUSTED_ORIGINS: list[str] = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    # The admin theme; it must come before django.contrib.admin to override its templates.
    "unfold",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "corsheaders",
    "drf_spectacular_sidecar",  # Swagger UI and ReDoc served from our static files (offline)
    "guardian",
    "simple_history",
    "flags",
    "apikeys",
    "analytics",
    "rollouts",
    "dashboards",
    "hygiene",
]

# Every entry is async-capable and, under ASGI, runs on the event loop: Django's own middleware
# would otherwise hop to a thread twice each per request (flagsite.middleware says why it is safe).
MIDDLEWARE = [
    "flagsite.observability.RequestIdMiddleware",
    "flags.api.middleware.ApiInputMiddleware",
    "flagsite.middleware.SecurityMiddleware",
    "servestatic.middleware.ServeStaticMiddleware",
    # CORS for the browser endpoints only; origins per environment (flags.cors decides).
    "corsheaders.middleware.CorsMiddleware",
    "flagsite.middleware.SessionMiddleware",
    "flagsite.middleware.CommonMiddleware",
    "flagsite.middleware.CsrfViewMiddleware",
    "flagsite.middleware.AuthenticationMiddleware",
    "flagsite.middleware.MessageMiddleware",
    "flagsite.middleware.XFrameOptionsMiddleware",
    "simple_history.middleware.HistoryRequestMiddleware",
]

ROOT_URLCONF = "flagsite.urls"
ASGI_APPLICATION = "flagsite.asgi.application"
WSGI_APPLICATION = "flagsite.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
_default_db = {
    "demo": f"sqlite:///{VAR_DIR / 'flagsite.sqlite3'}",
    "test": "postgres://postgres@127.0.0.1:5432/flagsite",
}.get(FLAGSITE_ENV)
if not env.str("DATABASE_URL", default=_default_db):
    raise ImproperlyConfigured(
        "DATABASE_URL is not set (for example postgres://user@host/flagsite)."
    )
DATABASES: dict[str, dict[str, Any]] = {"default": env.db("DATABASE_URL", default=_default_db)}
_db = DATABASES["default"]
if _db["ENGINE"] in {"django.db.backends.postgresql", "django.db.backends.postgresql_psycopg2"}:
    _db["ENGINE"] = "django.db.backends.postgresql"
    if env.bool("DATABASE_POOL", default=FLAGSITE_ENV == "production"):
        # psycopg 3's pool: one per process, so each ASGI worker keeps warm connections.
        _db["CONN_MAX_AGE"] = 0
        _db.setdefault("OPTIONS", {})["pool"] = {
            "min_size": env.int("DATABASE_POOL_MIN", default=2),
            "max_size": env.int("DATABASE_POOL_MAX", default=20),
            "timeout": 10,
        }
    else:
        _db["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
        _db["CONN_HEALTH_CHECKS"] = True
else:
    _db.setdefault("OPTIONS", {})["timeout"] = 20
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis, cache, pub/sub ------------------------------------------------------------------
_default_redis = "redis://127.0.0.1:6379/0" if FLAGSITE_ENV == "test" else None
REDIS_URL: str | None = env.str("REDIS_URL", default=_default_redis) or None
# Pub/sub channels are global to a Redis server, so every channel and key carries this prefix.
REDIS_PREFIX: str = env.str("FLAGSITE_REDIS_PREFIX", default="flagsite")

if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": REDIS_PREFIX,
        },
        # What rollout checks keep of the looks that ended (analytics.look_cache), shared by
        # the workers. A miss only costs a full read, so a stalled Redis must not stall a check.
        "rollup_looks": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": f"{REDIS_PREFIX}:looks",
            "OPTIONS": {"socket_timeout": 1.0, "socket_connect_timeout": 1.0},
        },
    }
else:
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        "rollup_looks": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": "rollup-looks",
            "OPTIONS": {"MAX_ENTRIES": 2000},
        },
    }

# --- Celery ---------------------------------------------------------------------------------
_broker_dir = VAR_DIR / "broker"
CELERY_BROKER_URL: str = env.str("CELERY_BROKER_URL", default=REDIS_URL or "filesystem://")
CELERY_RESULT_BACKEND: str = env.str(
    "CELERY_RESULT_BACKEND", default=REDIS_URL or f"file://{VAR_DIR / 'results'}"
)
CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, Any] = (
    {
        "data_folder_in": str(_broker_dir),
        "data_folder_out": str(_broker_dir),
        "control_folder": str(_broker_dir / "control"),
    }
    if CELERY_BROKER_URL.startswith("filesystem")
    else {"global_keyprefix": f"{REDIS_PREFIX}:"}
)
if CELERY_BROKER_URL.startswith("filesystem") or CELERY_RESULT_BACKEND.startswith("file://"):
    # The embedded broker and result store are plain folders; they must exist before use.
    for _folder in (_broker_dir, _broker_dir / "control", VAR_DIR / "results"):
        _folder.mkdir(parents=True, exist_ok=True)
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = f"{REDIS_PREFIX}-default"
CELERY_RESULT_EXPIRES = 3600
CELERY_BEAT_SCHEDULE: dict[str, dict[str, Any]] = {
    "analytics-retention": {
        "task": "analytics.tasks.purge_expired_events",
        "schedule": 3600.0,
    },
    "analytics-exports": {
        "task": "analytics.tasks.export_exposures",
        "schedule": 60.0,
    },
    # Mondays 07:00 UTC; the task itself sends at most once per week (hygiene.services).
    "hygiene-weekly-stale-report": {
        "task": "hygiene.tasks.send_weekly_stale_report",
        "schedule": crontab(minute="0", hour="7", day_of_week="mon"),
    },
    "hygiene-archive-grace": {
        "task": "hygiene.tasks.drop_expired_archived_flags",
        "schedule": 3600.0,
    },
    "rollout-checks": {
        "task": "rollouts.tasks.check_rollouts",
        "schedule": env.float("FLAGSITE_ROLLOUT_BEAT_SECONDS", default=30.0),
    },
}
if EMBEDDED:
    # The demo rollout's synthetic traffic (rollouts.demo), so it visibly advances.
    CELERY_BEAT_SCHEDULE["rollout-demo-traffic"] = {
        "task": "rollouts.tasks.demo_traffic",
        "schedule": 10.0,
    }
# Rollout bake times and check intervals run this many times faster (the demo's accelerated time).
FLAGSITE_ROLLOUT_TIME_SCALE: float = env.float(
    "FLAGSITE_ROLLOUT_TIME_SCALE", default=720.0 if FLAGSITE_ENV == "demo" else 1.0
)
# A rollout check's transaction holds the plan's row lock. If its worker stops without closing
# the connection (frozen, or its machine lost: PostgreSQL sees no disconnect until TCP keepalive,
# hours later), PostgreSQL ends that session after this long idle in the transaction, so the lock
# is freed and the next pass checks the plan. A check itself takes well under a second.
FLAGSITE_ROLLOUT_CHECK_IDLE_TIMEOUT_SECONDS: float = env.float(
    "FLAGSITE_ROLLOUT_CHECK_IDLE_TIMEOUT_SECONDS", default=30.0
)
# Analytics exports (analytics/exports): retries of one batch, and how long a stored exposure
# waits before export (so an ingest transaction that commits late is never overtaken).
EXPORT_RETRY_ATTEMPTS: int = env.int("FLAGSITE_EXPORT_RETRY_ATTEMPTS", default=5)
EXPORT_RETRY_BASE_SECONDS: float = env.float("FLAGSITE_EXPORT_RETRY_BASE_SECONDS", default=1.0)
EXPORT_RETRY_CAP_SECONDS: float = env.float("FLAGSITE_EXPORT_RETRY_CAP_SECONDS", default=30.0)
EXPORT_SETTLE_SECONDS: float = env.float("FLAGSITE_EXPORT_SETTLE_SECONDS", default=30.0)
# How often an open flag dashboard polls its data.
DASHBOARD_POLL_SECONDS: float = env.float("FLAGSITE_DASHBOARD_POLL_SECONDS", default=15.0)

# --- Auth, i18n, static ---------------------------------------------------------------------
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "guardian.backends.ObjectPermissionBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
if FLAGSITE_ENV == "test":
    # Tests create users by the hundred and seed demo logins per test: a deliberately slow
    # hash would cost seconds each. Servers and workers started by tests share this setting,
    # so the logins they check were hashed the same way. Never in production or the demo.
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "flagsite" / "static"]  # the /demo/ bundle (sdk/js/demo)
STATIC_ROOT = env.path("STATIC_ROOT", default=str(VAR_DIR / "static"))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if FLAGSITE_ENV == "test"
        else "servestatic.storage.CompressedStaticFilesStorage"
    },
}
SERVESTATIC_USE_FINDERS = FLAGSITE_ENV != "production"

if FLAGSITE_ENV == "production":
    SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=True)
    CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# --- Email ----------------------------------------------------------------------------------
EMAIL_CONFIG = env.email_url(
    "EMAIL_URL", default="consolemail://" if EMBEDDED else "smtp://localhost:25"
)
vars().update(EMAIL_CONFIG)
DEFAULT_FROM_EMAIL: str = env.str("DEFAULT_FROM_EMAIL", default="flagsite@localhost")
OPS_EMAILS: list[str] = env.list("OPS_EMAILS", default=[])
# Where links in emails point (the admin's public address).
FLAGSITE_BASE_URL: str = env.str("FLAGSITE_BASE_URL", default="http://localhost:8000")
# Days an archived flag stays in SDK rulesets, served off, before it leaves them.
FLAGSITE_ARCHIVE_GRACE_DAYS: float = env.float("FLAGSITE_ARCHIVE_GRACE_DAYS", default=7.0)

# --- DRF ------------------------------------------------------------------------------------
REST_FRAMEWORK: dict[str, Any] = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "apikeys.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": ["flags.api.parsers.JSONBodyParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "EXCEPTION_HANDLER": "flags.api.errors.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "flags.api.schema.FlagsiteAutoSchema",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 50,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Flagsite API",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # A PATCH takes the same fields as documented, ``version`` required (no "Patched" copies).
    "COMPONENT_SPLIT_PATCH": False,
    "ENUM_NAME_OVERRIDES": {
        "OfrepFailureCodeEnum": "flags.api.ofrep_schema.FAILURE_CODES",
        "OfrepNotFoundCodeEnum": "flags.api.ofrep_schema.NOT_FOUND_CODES",
        "OfrepGeneralCodeEnum": "flags.api.ofrep_schema.GENERAL_CODES",
        "OfrepItemCodeEnum": "flags.api.ofrep_schema.ITEM_CODES",
        "FlagKindEnum": "flags.models.Flag.Kind",
        "ChangeTargetKindEnum": "flags.api.change_requests.KIND_CHOICES",
        "ApiKeyKindEnum": "apikeys.models.ApiKey.Kind",
        "HealthActionEnum": "rollouts.models.RolloutPlan.HealthAction",
    },
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- Admin theme (django-unfold): branding, the dashboard and the sidebar (flags.admin.site).
UNFOLD: dict[str, Any] = {
    "SITE_TITLE": "Flagsite",
    "SITE_HEADER": "Flagsite",
    "SITE_SUBHEADER": "Feature flags and safe rollouts",
    "SITE_URL": "/",
    "SITE_SYMBOL": "flag",
    "STYLES": [lambda request: "/" + STATIC_URL + "flags/admin.css"],
    "DASHBOARD_CALLBACK": "flags.admin.dashboard.dashboard_callback",
    "SIDEBAR": {
        "show_search": True,
        "show_all_applications": False,
        "navigation": "flags.admin.site.navigation",
    },
}

# --- History --------------------------------------------------------------------------------
# Reasons are stored as text: the 100-character column simple-history uses by default made a
# long kill-switch reason a 500. The length users may send is checked at the edge (see
# flags.history.REASON_MAX_LENGTH); what services record (a reason plus a note) always fits.
SIMPLE_HISTORY_HISTORY_CHANGE_REASON_USE_TEXT_FIELD = True

# --- Public API (flags.api) ----------------------------------------------------------------
# Largest request body (bytes); more is a 413. Event batches (up to 10,000 events) get more.
FLAGSITE_API_MAX_BODY_BYTES: int = env.int("FLAGSITE_API_MAX_BODY_BYTES", default=1 << 20)
FLAGSITE_EVENTS_MAX_BODY_BYTES: int = env.int("FLAGSITE_EVENTS_MAX_BODY_BYTES", default=16 << 20)
# Seconds between ": heartbeat" comments on SDK streams (keeps proxies from closing them).
FLAGSITE_SSE_HEARTBEAT_SECONDS: float = env.float("FLAGSITE_SSE_HEARTBEAT_SECONDS", default=15.0)
# Open SDK streams one API key may hold per server process; more get 429 with Retry-After.
FLAGSITE_SSE_MAX_STREAMS_PER_KEY: int = env.int("FLAGSITE_SSE_MAX_STREAMS_PER_KEY", default=2000)
# Rulesets that heal: pub/sub is the fast path; each process also re-reads the stored versions
# of the environments it serves (and the keys it has cached) every this many seconds, so a lost
# message or a write from a process without Redis reaches it anyway. 0 turns the check off.
# The embedded mode has no Redis: this check is the only way a change made by the worker (an
# automatic rollback) reaches the server's SDK streams, so it runs 4x a second there to keep
# that under a second; a few one-row SQLite reads a second cost nothing.
FLAGSITE_HEAL_INTERVAL_SECONDS: float = env.float(
    "FLAGSITE_HEAL_INTERVAL_SECONDS", default=0.25 if EMBEDDED else 1.0
)
# False: this process does not subscribe to Redis pub/sub (tests of the safety net; a process
# that should rely on the periodic check only). Publishing is unaffected.
FLAGSITE_REALTIME_PUBSUB: bool = env.bool("FLAGSITE_REALTIME_PUBSUB", default=True)
# Requests per key (or per signed-in user) and window: "<count>/<s|min|hour|day>".
FLAGSITE_API_RATES: dict[str, str] = {
    "evaluation": env.str("FLAGSITE_RATE_EVALUATION", default="300000/min"),
    "sdk": env.str("FLAGSITE_RATE_SDK", default="600/min"),
    "management": env.str("FLAGSITE_RATE_MANAGEMENT", default="1200/min"),
    # Event batches (up to 10,000 events each); a flood guard, since client keys are public.
    "events": env.str("FLAGSITE_RATE_EVENTS", default="12000/min"),
    # Comparisons read a window of rollups and run the statistics.
    "reports": env.str("FLAGSITE_RATE_REPORTS", default="600/min"),
}

# --- Analytics ------------------------------------------------------------------------------
ANALYTICS_RAW_RETENTION_DAYS: int = env.int("ANALYTICS_RAW_RETENTION_DAYS", default=30)

# --- Logging: one JSON object per line, with the request id ---------------------------------
LOG_LEVEL: str = env.str("LOG_LEVEL", default="INFO")
LOGGING: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "flagsite.observability.RequestIdFilter"}},
    "formatters": {
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        }
    },
    "handlers": {
        "stdout": {
            "class": "logging.StreamHandler",
            "formatter": "json",
            "filters": ["request_id"],
        }
    },
    "root": {"handlers": ["stdout"], "level": LOG_LEVEL},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

# --- CORS (django-cors-headers; flags.cors decides per environment) ---------------------------
CORS_URLS_REGEX = r"^/(api/v1/(evaluate|evaluate/all|events|sdk/ruleset|sdk/stream)|ofrep/v1/.+)$"
CORS_ALLOWED_ORIGINS: list[str] = []  # none globally: Environment.cors_origins says
CORS_ALLOW_METHODS = ("GET", "POST", "OPTIONS")
CORS_ALLOW_HEADERS = (
    "accept", "authorization", "content-type", "if-none-match", "last-event-id",
    "x-api-key", "x-flagsite-key", "x-request-id",
)  # fmt: skip
CORS_EXPOSE_HEADERS = ("ETag", "X-Request-ID", "Retry-After")
CORS_PREFLIGHT_MAX_AGE = 600
