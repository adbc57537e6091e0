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

# --- Production settings (README "Security" > "Production settings") --------------------------
# Production mode is DEBUG set to a false value in the environment (DEBUG=0): the HTTPS-only
# defaults below apply there. The test suite (DEBUG unset) and `make run` (DEBUG=1) serve plain
# http, so they keep Django's development defaults; every value can still be set on its own.
PRODUCTION = "DEBUG" in env.ENVIRON and not DEBUG
if PRODUCTION and SECRET_KEY == DEV_SECRET_KEY:
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured(
        "DEBUG=0 (production mode) with the public development SECRET_KEY: anyone could forge "
        "sessions and tokens. Set SECRET_KEY to a long random value of your own, e.g. "
        "`python -c 'import secrets; print(secrets.token_urlsafe(50))'`."
    )
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=PRODUCTION)
# Paths (regular expressions, no leading slash) still answered over http, e.g. a health check.
SECURE_REDIRECT_EXEMPT = env.list("SECURE_REDIRECT_EXEMPT", default=[])
# Behind a proxy that terminates TLS: SECURE_PROXY_SSL_HEADER=HTTP_X_FORWARDED_PROTO,https. Only
# set it when the proxy always sets (or strips) that header, or clients could claim https.
SECURE_PROXY_SSL_HEADER = env.tuple("SECURE_PROXY_SSL_HEADER", default=None) or None
if SECURE_PROXY_SSL_HEADER is not None and (
    len(SECURE_PROXY_SSL_HEADER) != 2 or not all(part.strip() for part in SECURE_PROXY_SSL_HEADER)
):
    raise environ.ImproperlyConfigured(
        "SECURE_PROXY_SSL_HEADER must be a header and a value, e.g. HTTP_X_FORWARDED_PROTO,https"
    )
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=365 * 24 * 3600 if PRODUCTION else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=PRODUCTION)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=PRODUCTION)
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=PRODUCTION)
SESSION_COOKIE_HTTPONLY = env.bool("SESSION_COOKIE_HTTPONLY", default=True)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=PRODUCTION)
# No script of ours reads the CSRF cookie (they send the form's csrfmiddlewaretoken; the API docs
# get the token rendered into their page), so scripts need not see it in any mode.
CSRF_COOKIE_HTTPONLY = env.bool("CSRF_COOKIE_HTTPONLY", default=True)
SECURE_CONTENT_TYPE_NOSNIFF = env.bool("SECURE_CONTENT_TYPE_NOSNIFF", default=True)
SECURE_REFERRER_POLICY = env.str("SECURE_REFERRER_POLICY", default="same-origin")
X_FRAME_OPTIONS = env.str("X_FRAME_OPTIONS", default="DENY")
# Content Security Policy (django-csp) in every mode, so tests and the browser tests see it: our
# pages load scripts and styles only from our static files, never inline. CSP_REPORT_ONLY=1 sends
# it as Content-Security-Policy-Report-Only instead (browsers report, block nothing);
# CSP_REPORT_URI names where browsers post the reports. Only the browsable API's HTML pages
# widen it (inline styles, for DRF's templates: leads/api/renderers.py); the API docs need nothing.
_CSP = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        # 'self' covers the live board's same-origin ws:/wss: socket (CSP Level 3, Chromium and Firefox).
        "connect-src": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
        "base-uri": ["'self'"],
        "object-src": ["'none'"],
        **({"report-uri": env.str("CSP_REPORT_URI")} if env.str("CSP_REPORT_URI", default="") else {}),
    }
}
_csp_report_only = env.bool("CSP_REPORT_ONLY", default=False)
CONTENT_SECURITY_POLICY = None if _csp_report_only else _CSP
CONTENT_SECURITY_POLICY_REPORT_ONLY = _CSP if _csp_report_only else None

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
    # Brute-force protection of every login door (page, JWT, admin); see "Login protection" below.
    "axes",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "accounts",
    "leads",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Near the top, so responses that middleware below answers early carry the policy too.
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    # A view that loses the database answers 503 + Retry-After, not a 500 (config/db_outage.py).
    "config.db_outage.DatabaseOutageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Logs every 401/403 on the leadboard.security logger.
    "accounts.security_log.DeniedRequestLogMiddleware",
    # Last, as django-axes asks: turns a locked-out login into our lockout answer.
    "axes.middleware.AxesMiddleware",
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
    # Behind PgBouncer in transaction mode a cursor cannot outlive its transaction (the CSV
    # export streams through one): DISABLE_SERVER_SIDE_CURSORS=1 there (README "Deployment").
    DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = env.bool(
        "DISABLE_SERVER_SIDE_CURSORS", default=False
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_USER_MODEL = "accounts.User"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# AxesStandaloneBackend first: it refuses a locked-out login before the password is checked.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "leads:board"
LOGOUT_REDIRECT_URL = "login"

# --- Login protection (django-axes) ------------------------------------------------------------
# LOGIN_FAILURE_LIMIT failed logins within LOGIN_LOCKOUT_MINUTES lock that e-mail address (from
# any IP) and, separately, that client IP (for any e-mail), on the login page, /api/auth/token/
# and the admin login alike. The lock lifts LOGIN_LOCKOUT_MINUTES after the failure that set it
# (attempts while locked do not extend it); admins clear it sooner in Django admin.
AXES_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("LOGIN_LOCKOUT_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
# A success must not wipe the IP's count: an attacker could interleave logins to their own account.
AXES_RESET_ON_SUCCESS = False
AXES_USERNAME_CALLABLE = "accounts.lockout.attempted_email"
AXES_CLIENT_IP_CALLABLE = "accounts.lockout.client_ip"
AXES_LOCKOUT_CALLABLE = "accounts.lockout.lockout_response"
# Our leadboard.security logger records logins and lockouts; axes' banner on every command is noise.
AXES_VERBOSE = False
# The client IP is REMOTE_ADDR. Behind reverse proxies that append to X-Forwarded-For, set
# TRUSTED_PROXY_COUNT to how many there are; never set it when clients can reach Django directly,
# or anyone could pick the IP they are counted under.
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)

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
        # channels_redis with a blocking read shorter than socket_timeout (see the class).
        "BACKEND": "config.channel_layers.RedisChannelLayer",
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
        # simplejwt's, also refusing access tokens ended by "log out everywhere".
        "accounts.jwt.EpochJWTAuthentication",
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
        # DRF's browsable API, allowed the inline styles its templates use (leads/api/renderers.py).
        "leads.api.renderers.CSPBrowsableAPIRenderer",
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
    # Logins, failed logins, lockouts, logouts and refused requests (accounts/security_log.py).
    "loggers": {"leadboard.security": {"level": env.str("SECURITY_LOG_LEVEL", default="INFO")}},
}
