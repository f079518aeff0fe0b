"""Settings, driven by environment variables.

Embedded default (``make run`` on a bare machine): SQLite and kombu's filesystem broker.
PostgreSQL and Redis are chosen with ``DATABASE_URL`` and ``CELERY_BROKER_URL``.
"""

import os
from pathlib import Path
from urllib.parse import unquote

import dj_database_url
import plotly
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("SRE4AI_VAR_DIR", BASE_DIR / "var"))


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


DEBUG = env_bool("DJANGO_DEBUG", False)
# Behind TLS (SRE4AI_HTTPS=1) or with SRE4AI_REQUIRE_SECRET_KEY=1 the deployment counts as production.
HTTPS = env_bool("SRE4AI_HTTPS", False)
PRODUCTION = not DEBUG and (HTTPS or env_bool("SRE4AI_REQUIRE_SECRET_KEY", False))
# Only for a laptop: sessions, CSRF tokens and the project secrets' encryption key derive from SECRET_KEY, and
# everyone can read this one in the repository.
DEV_SECRET_KEY = "insecure-dev-key-set-DJANGO_SECRET_KEY-in-production"  # noqa: S105
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "") or DEV_SECRET_KEY
if PRODUCTION and (SECRET_KEY == DEV_SECRET_KEY or len(SECRET_KEY) < 50):
    raise ImproperlyConfigured(
        'Set DJANGO_SECRET_KEY to a random value of 50 characters or more (e.g. python -c "import secrets; '
        'print(secrets.token_urlsafe(50))"): production settings (SRE4AI_HTTPS or SRE4AI_REQUIRE_SECRET_KEY) refuse '
        "to start without one, and never with the repository's development key."
    )
ALLOWED_HOSTS = [h for h in os.environ.get("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]").split(",") if h]
CSRF_TRUSTED_ORIGINS = [o for o in os.environ.get("DJANGO_CSRF_TRUSTED_ORIGINS", "").split(",") if o]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "accounts",
    "traces",
    "evals",
    "rollups",
    "slos",
    "guard",
    "front",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "sre4ai_web.middleware.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "sre4ai_web.replica.ReplicaMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "sre4ai_web.middleware.SessionSecurityMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "sre4ai_web.urls"
WSGI_APPLICATION = "sre4ai_web.wsgi.application"

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
                "accounts.context_processors.projects",
                "sre4ai_web.replica.replica_lag",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", f"sqlite:///{VAR_DIR / 'db.sqlite3'}"),
        conn_max_age=int(os.environ.get("DATABASE_CONN_MAX_AGE", "60")),
    )
}
# PostgreSQL's JIT compiles any query whose estimated cost passes jit_above_cost. The dashboards' aggregates over a
# time range (session and user lists, budgets, canary cohorts) pass it and spent 1-2 s compiling queries that then
# ran in 50 ms (docs/benchmarks.md §13); no query of this app runs long enough to win that back.
PG_CONNECTION_OPTIONS = {"options": "-c jit=off"}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    DATABASES["default"]["OPTIONS"] = {**DATABASES["default"].get("OPTIONS", {}), **PG_CONNECTION_OPTIONS}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the web server, worker and beat read while one of them writes.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }
# An optional PostgreSQL streaming replica for the reads of pages and read APIs (sre4ai_web/replica.py). Pages say
# "data as of …" when it is more than SRE4AI_REPLICA_MAX_LAG_SECONDS behind; whoever saved something reads the
# primary for that long.
DATABASE_REPLICA_URL = os.environ.get("DATABASE_REPLICA_URL", "")
SRE4AI_REPLICA_ALIAS: str | None = None
SRE4AI_REPLICA_MAX_LAG_SECONDS = float(os.environ.get("SRE4AI_REPLICA_MAX_LAG_SECONDS", "10"))
DATABASE_ROUTERS: list[str] = []
if DATABASE_REPLICA_URL:
    SRE4AI_REPLICA_ALIAS = "replica"
    DATABASES[SRE4AI_REPLICA_ALIAS] = {
        **dj_database_url.parse(DATABASE_REPLICA_URL, conn_max_age=int(os.environ.get("DATABASE_CONN_MAX_AGE", "60"))),
        "TEST": {"MIRROR": "default"},  # tests read their own test database through it
        "OPTIONS": PG_CONNECTION_OPTIONS,
    }
    DATABASE_ROUTERS = ["sre4ai_web.replica.ReplicaRouter"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = Path(
    os.environ.get("SRE4AI_STATIC_ROOT", BASE_DIR / "staticfiles")
)  # separate roots for parallel test runs
# plotly.js is served from the plotly package itself (no CDN).
STATICFILES_DIRS = [BASE_DIR / "static", ("plotly", Path(plotly.__file__).parent / "package_data")]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = DEBUG

# Security headers; HTTPS-only cookies are switched on where TLS terminates (SRE4AI_HTTPS=1).
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_SSL_REDIRECT = HTTPS
SECURE_HSTS_SECONDS = 31536000 if HTTPS else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = HTTPS
SECURE_HSTS_PRELOAD = HTTPS
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if HTTPS else None
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# Content-Security-Policy of every response (sre4ai_web.middleware): every script is a file under /static/, so no
# inline script or eval is allowed. Inline styles are: Plotly sets them on the charts it draws.
SRE4AI_CSP = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self' 'unsafe-inline'",
    "img-src": "'self' data: blob:",
    "font-src": "'self' data:",
    "connect-src": "'self'",
    "object-src": "'none'",
    "base-uri": "'none'",
    "form-action": "'self'",
    "frame-ancestors": "'none'",
}

# Sessions end after this long without a request (sliding; sre4ai_web.middleware), 8 hours by default.
SESSION_COOKIE_AGE = int(os.environ.get("SRE4AI_SESSION_IDLE_SECONDS", str(8 * 3600)))
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"

# Sign-in throttling (accounts.forms.ThrottledLoginMixin): this many failed sign-ins for one username, or from one
# client address, within the lockout period lock that username or address for the period.
SRE4AI_LOGIN_MAX_FAILURES = int(os.environ.get("SRE4AI_LOGIN_MAX_FAILURES", "5"))
SRE4AI_LOGIN_MAX_FAILURES_PER_IP = int(os.environ.get("SRE4AI_LOGIN_MAX_FAILURES_PER_IP", "20"))
SRE4AI_LOGIN_LOCKOUT_SECONDS = int(os.environ.get("SRE4AI_LOGIN_LOCKOUT_SECONDS", "900"))
# Behind a reverse proxy every request comes from the proxy's address: name the header it sets with the client's
# (e.g. X-Forwarded-For; its last entry is used), or one address's lockout would lock everyone.
SRE4AI_CLIENT_IP_HEADER = os.environ.get("SRE4AI_CLIENT_IP_HEADER", "")

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["accounts.authentication.ProjectKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["accounts.authentication.HasProjectKey"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "EXCEPTION_HANDLER": "sre4ai_web.lib.api_errors.exception_handler",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "sre4ai API",
    "DESCRIPTION": (
        "Ingest and read LLM traces. Authenticate with a project key: "
        "`Authorization: Bearer <secret key>` or HTTP Basic `public_key:secret_key`."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {"StatusEnum": "traces.models.Status", "SpanKindEnum": "traces.models.SpanKind"},
    # OTLP ingest and /metrics are plain Django views: the hook documents them too.
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums", "traces.openapi.add_plain_endpoints"],
    # The docs page uses the app's icon (templates/drf_spectacular/swagger_ui.html links it).
    "SWAGGER_UI_FAVICON_HREF": None,
}

# Celery. The embedded default needs no broker server: kombu's filesystem transport.
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "filesystem://")
CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = {}
if CELERY_BROKER_URL.startswith("filesystem://"):
    _broker_dir = VAR_DIR / "broker"
    for _folder in ("out", "processed", "control"):
        (_broker_dir / _folder).mkdir(parents=True, exist_ok=True)  # kombu expects them to exist
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "out"),
        "data_folder_out": str(_broker_dir / "out"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
elif CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    # A message a worker took but never acknowledged (the worker died) is delivered again after this many seconds.
    # Short, so a killed worker's task comes back within two minutes even without beat; a task still running when
    # its copy arrives holds a claim on its job row, so the copy returns at once (docs/security.md, "Recovery").
    _visibility = int(os.environ.get("SRE4AI_BROKER_VISIBILITY_TIMEOUT", "90"))
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": _visibility,
        # Sweep for abandoned messages often enough that a short timeout is honoured (kombu: interval × throttle).
        "unacked_restore_interval": max(1, min(10, _visibility // 4)),
        "unacked_restore_throttle": 1 if _visibility < 400 else 10,
    }
# Recovery of jobs whose worker died or whose message was lost (sre4ai_web/lib/claims.py, docs/security.md): a
# worker's claim on a job lapses this long after it stopped renewing it, and a job's message is given this long to
# reach a worker before beat sends it again.
SRE4AI_CLAIM_SECONDS = float(os.environ.get("SRE4AI_CLAIM_SECONDS", "30"))
SRE4AI_CLAIM_GRACE_SECONDS = float(os.environ.get("SRE4AI_CLAIM_GRACE_SECONDS", "30"))
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")

# Ingest limits (documented in docs/ingest.md). Bodies are counted after decompression.
INGEST_MAX_BODY_BYTES = int(os.environ.get("SRE4AI_INGEST_MAX_BODY_BYTES", str(8 * 1024 * 1024)))
INGEST_MAX_SPANS_PER_REQUEST = int(os.environ.get("SRE4AI_INGEST_MAX_SPANS_PER_REQUEST", "5000"))
INGEST_MAX_ATTRIBUTE_BYTES = int(os.environ.get("SRE4AI_INGEST_MAX_ATTRIBUTE_BYTES", str(256 * 1024)))
INGEST_MAX_CONCURRENT_REQUESTS = int(os.environ.get("SRE4AI_INGEST_MAX_CONCURRENT_REQUESTS", "16"))
INGEST_RETRY_AFTER_SECONDS = int(os.environ.get("SRE4AI_INGEST_RETRY_AFTER_SECONDS", "2"))
# Bad input (docs/ingest.md): attribute keys, JSON nesting inside spans, and the accepted window of span times.
INGEST_MAX_ATTRIBUTE_KEY_BYTES = int(os.environ.get("SRE4AI_INGEST_MAX_ATTRIBUTE_KEY_BYTES", "256"))
INGEST_MAX_JSON_DEPTH = int(os.environ.get("SRE4AI_INGEST_MAX_JSON_DEPTH", "64"))
INGEST_MAX_SPAN_AGE_DAYS = int(os.environ.get("SRE4AI_INGEST_MAX_SPAN_AGE_DAYS", "365"))
INGEST_MAX_FUTURE_SECONDS = int(os.environ.get("SRE4AI_INGEST_MAX_FUTURE_SECONDS", str(24 * 3600)))
# Rate limits in spans (or log records) per minute; 0 switches one off. Counted in Redis when the broker is Redis
# (shared by all server processes), else per server process.
INGEST_KEY_SPANS_PER_MINUTE = int(os.environ.get("SRE4AI_INGEST_KEY_SPANS_PER_MINUTE", "600000"))
INGEST_PROJECT_SPANS_PER_MINUTE = int(os.environ.get("SRE4AI_INGEST_PROJECT_SPANS_PER_MINUTE", "1200000"))
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "ingest_rate": (
        {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": CELERY_BROKER_URL,
            "KEY_PREFIX": "sre4ai-ingest-rate",
            # Short timeouts: with Redis down, ingest goes on without rate limits rather than waiting.
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
        }
        if CELERY_BROKER_URL.startswith(("redis://", "rediss://"))
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "ingest-rate"}
    ),
    # Figures every process writes and /metrics reads (sre4ai_web/lib/opsmetrics.py): shared only with Redis.
    "shared": (
        {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": CELERY_BROKER_URL,
            "KEY_PREFIX": "sre4ai-shared",
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
        }
        if CELERY_BROKER_URL.startswith(("redis://", "rediss://"))
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "shared"}
    ),
}
DATA_UPLOAD_MAX_MEMORY_SIZE = INGEST_MAX_BODY_BYTES

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    # httpx logs every request's full URL at INFO: a Slack webhook URL is its token.
    "loggers": {"django.request": {"level": "ERROR"}, "httpx": {"level": "WARNING"}},
}

# Celery task names run after each ingest commit with (project_id, trace_pks); scoring adds itself here.
SRE4AI_TRACE_INGESTED_TASKS: list[str] = ["evals.tasks.score_traces"]

# SLO alerting: the evaluation tick, the notification dispatcher and its retries.
SLO_DELIVERY_TIMEOUT_SECONDS = float(os.environ.get("SRE4AI_SLO_DELIVERY_TIMEOUT_SECONDS", "10"))
# 12 attempts at 30 s, 1, 2, 4 … min, then hourly: a receiver may be down for about five hours.
SLO_DELIVERY_MAX_ATTEMPTS = int(os.environ.get("SRE4AI_SLO_DELIVERY_MAX_ATTEMPTS", "12"))
# Absolute base of links in notifications (the incident page), e.g. https://sre4ai.example.com. When set, it is also
# the address an empty project's "send your first trace" panel gives apps; unset, the panel uses the request's.
SRE4AI_BASE_URL = os.environ.get("SRE4AI_BASE_URL", "http://127.0.0.1:8000").rstrip("/")
SRE4AI_BASE_URL_CONFIGURED = bool(os.environ.get("SRE4AI_BASE_URL"))

# Email notifications go through Django's email backend: SMTP configured here (console backend to try it out).
EMAIL_BACKEND = os.environ.get("SRE4AI_EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = os.environ.get("SRE4AI_EMAIL_HOST", "localhost")
EMAIL_PORT = int(os.environ.get("SRE4AI_EMAIL_PORT", "25"))
EMAIL_HOST_USER = os.environ.get("SRE4AI_EMAIL_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("SRE4AI_EMAIL_PASSWORD", "")
EMAIL_USE_TLS = env_bool("SRE4AI_EMAIL_TLS", False)
DEFAULT_FROM_EMAIL = os.environ.get("SRE4AI_EMAIL_FROM", "sre4ai <alerts@localhost>")

# Outbound calls to URLs users configure (probe targets, the LLM judge, webhook/Slack/PagerDuty channels); see
# docs/security.md. Internal addresses (loopback, private, link-local, metadata, CGNAT, ...) are refused unless a
# host name or a network (CIDR) is listed here, comma-separated, e.g. "10.1.2.0/24,llm.internal". Empty by default.
SRE4AI_OUTBOUND_ALLOW = [h.strip() for h in os.environ.get("SRE4AI_OUTBOUND_ALLOW", "").split(",") if h.strip()]
# Secrets in probe headers (${NAME}) and keys (api_key_env) come from the project's secret store (Settings); an
# environment variable of the workers is used only if its name is listed here (empty by default).
SRE4AI_OUTBOUND_ENV_ALLOW = [n.strip() for n in os.environ.get("SRE4AI_OUTBOUND_ENV_ALLOW", "").split(",") if n.strip()]
# At most this much of an answer is read (after decompression); the rest is never downloaded.
SRE4AI_OUTBOUND_MAX_RESPONSE_BYTES = int(os.environ.get("SRE4AI_OUTBOUND_MAX_RESPONSE_BYTES", str(1024 * 1024)))

# The guard call (docs/guard.md) keeps project keys and guard policies in each server process for this long: a change
# made in another process (a key revoked, a policy saved) applies within it; in the same process at once.
SRE4AI_GUARD_CACHE_SECONDS = float(os.environ.get("SRE4AI_GUARD_CACHE_SECONDS", "5"))

# Built-in scores sent as gen_ai.evaluation.result log records to an OTLP/HTTP logs endpoint (docs/scoring.md), off
# when the endpoint is empty, e.g. "https://collector.example.com:4318/v1/logs". It is called through the outbound
# client: an internal collector must be listed in SRE4AI_OUTBOUND_ALLOW. Headers as OTEL_EXPORTER_OTLP_HEADERS
# ("key=value,key2=value2", values URL-encoded); protocol "http/protobuf" (default) or "http/json".
SRE4AI_OTEL_EXPORT_ENDPOINT = os.environ.get("SRE4AI_OTEL_EXPORT_ENDPOINT", "").strip()
SRE4AI_OTEL_EXPORT_HEADERS = {
    key.strip(): unquote(value.strip())
    for key, _, value in (h.partition("=") for h in os.environ.get("SRE4AI_OTEL_EXPORT_HEADERS", "").split(","))
    if key.strip()
}
SRE4AI_OTEL_EXPORT_PROTOCOL = os.environ.get("SRE4AI_OTEL_EXPORT_PROTOCOL", "http/protobuf").strip()
if SRE4AI_OTEL_EXPORT_PROTOCOL not in ("http/protobuf", "http/json"):
    raise ImproperlyConfigured(
        f"SRE4AI_OTEL_EXPORT_PROTOCOL is {SRE4AI_OTEL_EXPORT_PROTOCOL!r}: use http/protobuf or http/json."
    )
SRE4AI_OTEL_EXPORT_BATCH = int(os.environ.get("SRE4AI_OTEL_EXPORT_BATCH", "512"))  # scores per request
SRE4AI_OTEL_EXPORT_MAX_ATTEMPTS = int(os.environ.get("SRE4AI_OTEL_EXPORT_MAX_ATTEMPTS", "5"))  # then dropped, counted
SRE4AI_OTEL_EXPORT_TIMEOUT_SECONDS = float(os.environ.get("SRE4AI_OTEL_EXPORT_TIMEOUT_SECONDS", "10"))
