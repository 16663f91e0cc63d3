"""Settings shared by every environment. Every knob is read from the environment here."""

import os
from pathlib import Path

import dj_database_url
from csp.constants import NONCE

BASE_DIR = Path(__file__).resolve().parent.parent.parent


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value not in (None, "") else default


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
DEBUG = env_bool("DJANGO_DEBUG", False)
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost")
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    # Before staticfiles: its `runserver` (portal/management/commands/runserver.py) extends staticfiles' one.
    "portal",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "import_export",
    "axes",
    "csp",
    "recommendations",
    "remediation",
    "intune",
]

MIDDLEWARE = [
    "portal.middleware.RequestContextMiddleware",
    # /api/: Cache-Control no-store on every answer, oversized bodies refused with a JSON 413.
    "portal.middleware.ApiGuardMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # The language: the browser's Accept-Language; then, once the user is known, their stored choice.
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "portal.middleware.UserLanguageMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, so that it turns a lock-out raised anywhere above into its 429 page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "portal.urls"
WSGI_APPLICATION = "portal.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "portal" / "templates"],
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

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Every transaction takes SQLite's write lock when it begins (BEGIN IMMEDIATE), and waits up
    # to `timeout` seconds for it: two concurrent requests queue instead of one failing with
    # "database is locked" when a read lock cannot be upgraded mid-transaction. This is what
    # serialises concurrent identical requests on SQLite (PostgreSQL uses row locks).
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": env_int("SQLITE_TIMEOUT_SECONDS", 20), "transaction_mode": "IMMEDIATE"}
    )
    DATABASES["default"]["CONN_MAX_AGE"] = 0
elif DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and not env_bool("DATABASE_JIT", False):
    # PostgreSQL's JIT spends seconds compiling the list pages' counting subqueries that
    # then run in milliseconds (measured on 1.3M exposures): off unless DATABASE_JIT=true.
    DATABASES["default"].setdefault("OPTIONS", {})["options"] = "-c jit=off"

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# django-axes first: it refuses locked-out users before any password is checked.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- Languages (README "Languages") ------------------------------------------------------
# English is the source language; the Swedish catalogue is locale/sv/LC_MESSAGES (compiled .mo
# files are committed: no gettext is needed at runtime). Dates, times and numbers follow the
# active language: Django's own formats, with the project's overrides in portal/formats/.
LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("sv", "Svenska")]
# locale/: the project's own strings (makemessages). locale_vendor/: Swedish for third-party apps
# that ship none (django-import-export's import and export pages), kept by hand.
LOCALE_PATHS = [BASE_DIR / "locale", BASE_DIR / "locale_vendor"]
FORMAT_MODULE_PATH = ["portal.formats"]
TIME_ZONE = os.environ.get("DJANGO_TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
# Uploaded import files wait here for the worker: shared storage when there are several hosts.
MEDIA_URL = "media/"
MEDIA_ROOT = os.environ.get("DJANGO_MEDIA_ROOT", str(BASE_DIR / "media"))

LOGIN_URL = "admin:login"

# --- Sessions, login protection, Content-Security-Policy ------------------------------
# Idle timeout: the session expires SESSION_IDLE_TIMEOUT seconds after the last request.
SESSION_COOKIE_AGE = env_int("SESSION_IDLE_TIMEOUT", 8 * 60 * 60)
SESSION_SAVE_EVERY_REQUEST = True
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"

# Failed logins (admin, DRF's api-auth/ login) are counted per username at an address:
# AXES_FAILURE_LIMIT failures lock that username out *from that address* for
# AXES_COOLOFF_MINUTES (never from every address: no one can lock a colleague out). And per
# address alone: AXES_ADDRESS_FAILURE_LIMIT failures (many usernames) hold that address back for
# everyone. Lock-outs and every attempt are logged with the address (portal.audit).
AXES_FAILURE_LIMIT = env_int("AXES_FAILURE_LIMIT", 10)
AXES_ADDRESS_FAILURE_LIMIT = env_int("AXES_ADDRESS_FAILURE_LIMIT", 30)
AXES_COOLOFF_TIME = env_int("AXES_COOLOFF_MINUTES", 30) / 60  # hours
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"], "ip_address"]
AXES_HANDLER = "portal.lockout.UserAtAddressHandler"
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "portal.audit.client_ip"
# Number of reverse proxies in front of gunicorn that append to X-Forwarded-For (0: none).
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0)

# Strict policy for the portal's own pages (admin, browsable API, Swagger UI served
# locally by drf-spectacular-sidecar). Inline scripts need the per-request nonce:
# <script nonce="{{ request.csp_nonce }}">. CSP_REPORT_ONLY=true only reports.
_CSP_DIRECTIVES = {
    "default-src": ["'self'"],
    # + the one inline handler DRF renders (its browsable API's "Log out" link), by hash only.
    "script-src": ["'self'", NONCE, "'unsafe-hashes'", "'sha256-tHTC1YgZ5UbAs8E2Ib4NjuSS8R05d1nfPHtbmXq05WA='"],
    "style-src": ["'self'", "'unsafe-inline'"],
    "img-src": ["'self'", "data:"],
    "font-src": ["'self'", "data:"],
    "connect-src": ["'self'"],
    "object-src": ["'none'"],
    "base-uri": ["'self'"],
    "form-action": ["'self'"],
    "frame-ancestors": ["'none'"],
}
if env_bool("CSP_REPORT_ONLY", False):
    CONTENT_SECURITY_POLICY_REPORT_ONLY = {"DIRECTIVES": _CSP_DIRECTIVES}
    CONTENT_SECURITY_POLICY = None
else:
    CONTENT_SECURITY_POLICY = {"DIRECTIVES": _CSP_DIRECTIVES}

# --- Redis, cache, Celery -------------------------------------------------------------
REDIS_URL = os.environ.get("REDIS_URL", "")
# Job locks must live in a cache every process shares (production turns this on: see portal.locks).
JOB_LOCKS_REQUIRE_SHARED_CACHE = False

if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# "memory://localhost/" rather than "memory://": kombu warns of a missing host name otherwise.
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", REDIS_URL or "memory://localhost/")
# Without a broker every task runs in-process, at once (the `make run` default).
CELERY_TASK_ALWAYS_EAGER = not (REDIS_URL or os.environ.get("CELERY_BROKER_URL"))
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 30 * 60)
CELERY_TASK_SOFT_TIME_LIMIT = max(CELERY_TASK_TIME_LIMIT - 60, CELERY_TASK_TIME_LIMIT * 9 // 10)
# Longer than the longest task and every retry delay, so a slow task is not delivered twice.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 2 * 60 * 60)}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = TIME_ZONE

# --- Django REST framework ------------------------------------------------------------
REST_FRAMEWORK = {
    # Token first: its WWW-Authenticate header makes anonymous requests answer 401, not 403.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    # JSON bounded in size and depth, refusing text no database can store (portal.parsers).
    "DEFAULT_PARSER_CLASSES": [
        "portal.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "portal.errors.api_exception_handler",
    "DEFAULT_THROTTLE_CLASSES": ["portal.api.UserRateThrottle"],
    "DEFAULT_PAGINATION_CLASS": "portal.pagination.KeysetPagination",
    "DEFAULT_THROTTLE_RATES": {
        "user": os.environ.get("API_THROTTLE_USER", "1000/min"),
        "anon": os.environ.get("API_THROTTLE_ANON", "60/min"),
    },
    "DATETIME_FORMAT": "iso-8601",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Remediation portal API",
    "DESCRIPTION": "Remediation activities, security recommendations, exceptions and device groups (`/api/v1/`), "
    "and a read API in Microsoft Defender for Endpoint's shapes (`/api/`).",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Tags and operation ids without the prefix, for /api/v1/... and the Defender-compatible /api/...
    "SCHEMA_PATH_PREFIX": r"/api(/v1)?",
    "COMPONENT_SPLIT_REQUEST": True,
    # Swagger UI and ReDoc from the installed sidecar package, not a CDN (strict CSP).
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # After drf-spectacular's own enum hook: cursor, NUL-free text and empty filters (portal.schema).
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "portal.schema.describe_query_parameters",
    ],
    "ENUM_NAME_OVERRIDES": {
        "ActivityStatusEnum": "remediation.models.RemediationActivity.Status",
        "ActivityDeviceStatusEnum": "remediation.models.ActivityDevice.Status",
        "ExceptionStatusEnum": "recommendations.models.RecommendationException.Status",
        "ExceptionDeviceGroupStatusEnum": "recommendations.models.ExceptionDeviceGroup.Status",
        "PriorityEnum": "remediation.choices.Priority",
        "RecommendationOutputCategoryEnum": "recommendations.models.SecurityRecommendation.Category",
        # The Defender-compatible API's values (DESIGN.md section 13).
        "DefenderTaskStatusEnum": ["Active", "Completed"],
        "DefenderRecommendationStatusEnum": ["Active", "Exception"],
        "DefenderPriorityEnum": ["High", "Medium", "Low"],
        "DefenderCategoryEnum": ["Software", "Security configuration"],
    },
}

# --- Email ----------------------------------------------------------------------------
EMAIL_BACKEND = os.environ.get("DJANGO_EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = os.environ.get("DJANGO_DEFAULT_FROM_EMAIL", "remediation-portal@localhost")
PORTAL_BASE_URL = os.environ.get("PORTAL_BASE_URL", "http://127.0.0.1:8000").rstrip("/")

# --- Portal ---------------------------------------------------------------------------
COMPLETED_ACTIVITY_RETENTION_DAYS = env_int("COMPLETED_ACTIVITY_RETENTION_DAYS", 180)
PURGE_BATCH_SIZE = env_int("PURGE_BATCH_SIZE", 50_000)
# CSV downloads written by PostgreSQL's COPY (same bytes as the Python path, remediation.exports).
CSV_COPY = env_bool("CSV_COPY", True)
DUE_SOON_DAYS = env_int("DUE_SOON_DAYS", 3)
# The due date the request form suggests: this many days from today.
DEFAULT_DUE_DAYS = env_int("DEFAULT_DUE_DAYS", 14)
IMPORT_MAX_UPLOAD_BYTES = env_int("IMPORT_MAX_UPLOAD_BYTES", 50 * 1024 * 1024)
# Admin imports with more rows than this run as a background ImportJob on a worker.
IMPORT_BACKGROUND_ROWS = env_int("IMPORT_BACKGROUND_ROWS", 5000)
# An XLSX whose content would inflate beyond this is refused before it is opened.
IMPORT_XLSX_MAX_INFLATED_BYTES = env_int("IMPORT_XLSX_MAX_INFLATED_BYTES", 100 * 1024 * 1024)
# django-import-export: exporting a model needs its view permission, importing its change permission
# (the inventory admins also require add); without these settings anyone on the admin page could.
IMPORT_EXPORT_EXPORT_PERMISSION_CODE = "view"
IMPORT_EXPORT_IMPORT_PERMISSION_CODE = "change"

# --- Intune / Microsoft Graph ---------------------------------------------------------
INTUNE_TENANT_ID = os.environ.get("INTUNE_TENANT_ID", "")
INTUNE_CLIENT_ID = os.environ.get("INTUNE_CLIENT_ID", "")
INTUNE_CLIENT_SECRET = os.environ.get("INTUNE_CLIENT_SECRET", "")
INTUNE_AUTHORITY_URL = os.environ.get("INTUNE_AUTHORITY_URL", "https://login.microsoftonline.com").rstrip("/")
INTUNE_GRAPH_URL = os.environ.get("INTUNE_GRAPH_URL", "https://graph.microsoft.com/beta").rstrip("/")
INTUNE_MAX_DEVICES_PER_TASK = env_int("INTUNE_MAX_DEVICES_PER_TASK", 10000)
# How long Intune's answer "this Entra ID device is managed device X" (or "not managed") is reused.
INTUNE_DEVICE_CACHE_SECONDS = env_int("INTUNE_DEVICE_CACHE_SECONDS", 3600)
INTUNE_HTTP_TIMEOUT = env_int("INTUNE_HTTP_TIMEOUT", 30)
INTUNE_MAX_ATTEMPTS = env_int("INTUNE_MAX_ATTEMPTS", 3)
INTUNE_BACKOFF_BASE_SECONDS = float(os.environ.get("INTUNE_BACKOFF_BASE_SECONDS", "1"))
INTUNE_BACKOFF_CAP_SECONDS = float(os.environ.get("INTUNE_BACKOFF_CAP_SECONDS", "30"))
INTUNE_RETRY_AFTER_CAP_SECONDS = float(os.environ.get("INTUNE_RETRY_AFTER_CAP_SECONDS", "120"))

# --- Microsoft Defender for Endpoint API (the pull: manage.py defender_sync, beat entry defender_sync)
DEFENDER_TENANT_ID = os.environ.get("DEFENDER_TENANT_ID", "")
DEFENDER_CLIENT_ID = os.environ.get("DEFENDER_CLIENT_ID", "")
DEFENDER_CLIENT_SECRET = os.environ.get("DEFENDER_CLIENT_SECRET", "")
DEFENDER_AUTHORITY_URL = os.environ.get("DEFENDER_AUTHORITY_URL", "https://login.microsoftonline.com").rstrip("/")
DEFENDER_API_URL = os.environ.get("DEFENDER_API_URL", "https://api.securitycenter.microsoft.com").rstrip("/")
DEFENDER_HTTP_TIMEOUT = env_int("DEFENDER_HTTP_TIMEOUT", 60)
DEFENDER_MAX_ATTEMPTS = env_int("DEFENDER_MAX_ATTEMPTS", 3)
DEFENDER_BACKOFF_BASE_SECONDS = float(os.environ.get("DEFENDER_BACKOFF_BASE_SECONDS", "1"))
DEFENDER_BACKOFF_CAP_SECONDS = float(os.environ.get("DEFENDER_BACKOFF_CAP_SECONDS", "60"))
DEFENDER_RETRY_AFTER_CAP_SECONDS = float(os.environ.get("DEFENDER_RETRY_AFTER_CAP_SECONDS", "300"))
# $top of the machines and recommendations lists (the API's maximum is 10,000).
DEFENDER_PAGE_SIZE = env_int("DEFENDER_PAGE_SIZE", 10000)
# Where a pull keeps the pages it reads until it applies them (empty: the system's temporary directory).
DEFENDER_SPOOL_DIR = os.environ.get("DEFENDER_SPOOL_DIR", "")
# Runs listed in the admin (older ones are deleted after each run).
DEFENDER_SYNC_RUNS_KEPT = env_int("DEFENDER_SYNC_RUNS_KEPT", 200)

# LOG_FORMAT=json: one JSON object per line with request_id, user and activity_id (portal.logging).
LOG_FORMAT = os.environ.get("LOG_FORMAT", "plain")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"context": {"()": "portal.logging.ContextFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s %(user)s] %(message)s"},
        "json": {"()": "portal.logging.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json" if LOG_FORMAT == "json" else "plain",
            "filters": ["context"],
        }
    },
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    # Axes logs every attempt itself; portal.audit writes the sign-in lines we keep.
    "loggers": {"axes": {"level": os.environ.get("AXES_LOG_LEVEL", "WARNING")}},
}
# Celery workers log through the same handlers (and so the same format) as the web.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
