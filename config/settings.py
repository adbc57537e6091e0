"""Leadboard settings: every value comes from the environment, with defaults that run a demo."""

from datetime import timedelta
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
# A local .env is optional; the process environment always wins.
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

# The development key is public on purpose; production must set SECRET_KEY.
DEV_SECRET_KEY = "leadboard-development-key-not-for-production"
SECRET_KEY = env.str("SECRET_KEY", default=DEV_SECRET_KEY)
DEBUG = env.bool("DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    # daphne first: its runserver serves HTTP and WebSockets in development.
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_filters",
    "django_tasks",
    "django_tasks_db",
    "channels",
    "rest_framework",
    "rest_framework_simplejwt.token_blacklist",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "accounts",
    "leads",
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
]

ROOT_URLCONF = "config.urls"

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
                "leads.context_processors.notifications",
            ],
        },
    },
]

WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

# SQLite in the checkout unless DATABASE_URL names a real server.
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Reuse connections between requests instead of paying a connect per request.
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_USER_MODEL = "accounts.User"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "leads:board"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
# Attachments live in MEDIA_ROOT unless STORAGE_URL names an S3-compatible bucket:
# s3://bucket?endpoint_url=https://host&region_name=eu-west-1 (keys from AWS_ACCESS_KEY_ID and
# AWS_SECRET_ACCESS_KEY). Either way files are never served at a public URL: downloads go
# through a view that checks the user may see the lead.
STORAGE_URL = env.str("STORAGE_URL", default="")
MEDIA_ROOT = env.path("MEDIA_ROOT", default=BASE_DIR / "media")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
if STORAGE_URL:
    from urllib.parse import parse_qsl, urlsplit

    _storage = urlsplit(STORAGE_URL)
    if _storage.scheme != "s3" or not _storage.netloc:
        raise environ.ImproperlyConfigured("STORAGE_URL must look like s3://bucket?endpoint_url=...")
    STORAGES["default"] = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": _storage.netloc,
            "location": _storage.path.strip("/"),
            "default_acl": "private",
            "querystring_auth": True,
            "file_overwrite": False,
            **dict(parse_qsl(_storage.query)),
        },
    }
MEDIA_URL = "media/"
# The largest file a lead may carry (bytes); 10 MB fits CVs and photos, not videos.
ATTACHMENT_MAX_BYTES = env.int("ATTACHMENT_MAX_BYTES", default=10 * 1024 * 1024)

# Console e-mail unless EMAIL_URL names an SMTP server: smtp+tls://user:pass@host:587 (STARTTLS),
# smtp+ssl://user:pass@host:465 (implicit TLS) or smtp://host:25 (plain).
vars().update(env.email_url("EMAIL_URL", default="consolemail://"))
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Leadboard <leadboard@localhost>")
# Seconds an SMTP connect or reply may take. The in-process job backend sends inside the request
# that queued the message, so a hanging mail server may hold a page this long, never longer.
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=10)
# Links in e-mails and background jobs point here (no request to take the host from).
SITE_URL = env.str("SITE_URL", default="http://127.0.0.1:8000").rstrip("/")
# Failed e-mails are retried this many times, waiting EMAIL_RETRY_BASE_SECONDS * 4**attempt between.
EMAIL_MAX_ATTEMPTS = env.int("EMAIL_MAX_ATTEMPTS", default=5)
EMAIL_RETRY_BASE_SECONDS = env.int("EMAIL_RETRY_BASE_SECONDS", default=60)
# How long an invitation link stays valid (Django's password-reset token machinery).
PASSWORD_RESET_TIMEOUT = env.int("INVITE_TIMEOUT_SECONDS", default=3 * 24 * 3600)

# Background jobs run in-process by default; production sets
# TASKS_BACKEND=django_tasks_db.DatabaseBackend and runs `manage.py db_worker`.
TASKS = {
    "default": {
        "BACKEND": env.str("TASKS_BACKEND", default="django_tasks.backends.immediate.ImmediateBackend")
    }
}

# Rate limits (API throttles, the capture form) count in this cache. Per process by default;
# CACHE_URL=redis://127.0.0.1:6379/1 shares the counts between processes and machines.
CACHES = {"default": env.cache("CACHE_URL", default="locmemcache://")}

# Live board: an in-memory channel layer (one process) unless REDIS_URL names a Redis server.
REDIS_URL = env.str("REDIS_URL", default="")
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        # Short timeouts: a hung Redis must cost a request a second at most, never hang it.
        "CONFIG": {"hosts": [{"address": REDIS_URL, "socket_connect_timeout": 1, "socket_timeout": 2}]},
    }
    if REDIS_URL
    else {"BACKEND": "channels.layers.InMemoryChannelLayer"}
}

# Who may see and edit leads they do not own: "private", "read" (default) or "write".
LEAD_SHARING = env.str("LEAD_SHARING", default="read")
if LEAD_SHARING not in {"private", "read", "write"}:
    raise environ.ImproperlyConfigured(f"LEAD_SHARING must be private, read or write, not {LEAD_SHARING!r}")
# Phone numbers typed without a +country prefix are read in this region.
PHONE_DEFAULT_REGION = env.str("PHONE_DEFAULT_REGION", default="US")
BOARD_COLUMN_PAGE_SIZE = env.int("BOARD_COLUMN_PAGE_SIZE", default=25)
# A lead in an open stage with no activity for this many days is marked stale on the board.
STALE_LEAD_DAYS = env.int("STALE_LEAD_DAYS", default=7)
# A merge of two leads can be undone for this many days.
MERGE_UNDO_DAYS = env.int("MERGE_UNDO_DAYS", default=30)
# send_reminders e-mails a reminder this many minutes before a follow-up is due.
REMINDER_MINUTES_BEFORE = env.int("REMINDER_MINUTES_BEFORE", default=15)
# send_reminders e-mails the day's follow-ups digest from this local hour (TIME_ZONE) on.
REMINDER_DIGEST_HOUR = env.int("REMINDER_DIGEST_HOUR", default=7)
# CSV imports: the largest file accepted, rows written per transaction, and how long a manager
# may revert one.
IMPORT_MAX_BYTES = env.int("IMPORT_MAX_BYTES", default=200 * 1024 * 1024)
IMPORT_BATCH_SIZE = env.int("IMPORT_BATCH_SIZE", default=2000)
IMPORT_REVERT_DAYS = env.int("IMPORT_REVERT_DAYS", default=30)
# The public capture form: submissions per IP (same syntax as the API throttle rates).
PUBLIC_FORM_RATE = env.str("PUBLIC_FORM_RATE", default="10/hour")

# --- REST API --------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # JWT first, so an unauthenticated request is answered 401 with WWW-Authenticate.
        "rest_framework_simplejwt.authentication.JWTAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "leads.api.pagination.PageLimitPagination",
    "DEFAULT_THROTTLE_CLASSES": [
        "leads.api.throttling.AnonymousRateThrottle",
        "leads.api.throttling.UserRateThrottle",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "leads.api.errors.api_exception_handler",
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_PARSER_CLASSES": [
        "rest_framework.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
}
# Requests per period ("60/min", "1000/hour"); read on every request so tests can change them.
API_THROTTLE_RATES = {
    "anon": env.str("API_THROTTLE_ANON", default="60/min"),
    "user": env.str("API_THROTTLE_USER", default="1200/min"),
}
SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=env.int("JWT_ACCESS_MINUTES", default=15)),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=env.int("JWT_REFRESH_DAYS", default=7)),
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "UPDATE_LAST_LOGIN": True,
    "SIGNING_KEY": SECRET_KEY,
}
IDEMPOTENCY_KEY_TTL = timedelta(hours=24)
SPECTACULAR_SETTINGS = {
    "TITLE": "Leadboard API",
    "DESCRIPTION": (
        "Leads, stages, owners and activities. Authenticate with a JWT from /api/auth/token/ "
        "(Authorization: Bearer ...) or a browser session. Every error answers "
        '{"error": {"code", "message", "fields"}}.'
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "RoleEnum": "accounts.roles.Role",
        "StageKindEnum": "leads.models.Stage.Kind",
        "PriorityEnum": "leads.models.Lead.Priority",
        "ActivityKindEnum": "leads.models.Activity.Kind",
        "LoggableActivityKindEnum": [("note", "Note"), ("call", "Call"), ("meeting", "Meeting")],
        "CallOutcomeEnum": "leads.models.Activity.CallOutcome",
        "FollowUpKindEnum": "leads.models.FollowUp.Kind",
        "FollowUpOutcomeEnum": "leads.models.FollowUp.Outcome",
        # CSV imports (the API's /api/imports/).
        "ImportStatusEnum": "leads.models.ImportJob.Status",
        "ImportDuplicateModeEnum": "leads.models.ImportJob.DuplicateMode",
    },
}

MESSAGE_STORAGE = "django.contrib.messages.storage.session.SessionStorage"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
}
