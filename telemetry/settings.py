"""Settings, read from the environment; every variable is listed in .env.example."""

import os
from datetime import timedelta
from pathlib import Path

import environ

import telemetry
from telemetry.lib.config import EnvReader
from telemetry.lib.secret_key import persistent_secret_key

BASE_DIR = Path(__file__).resolve().parent.parent

environ.Env.read_env(BASE_DIR / ".env")
env = EnvReader(environ.Env())

DATA_DIR = (BASE_DIR / env.str("APP_DATA_DIR", "var")).resolve()

DEBUG = env.bool("DEBUG", False)
# Containers set this (the Dockerfile does): each would otherwise generate a key in its own file
# system, and sessions, CSRF tokens and the derived credentials key would differ between them.
SECRET_KEY_REQUIRED = env.bool("APP_SECURITY__SECRET_KEY_REQUIRED", False)
SECRET_KEY = env.str("SECRET_KEY", "")
if not SECRET_KEY and SECRET_KEY_REQUIRED:
    env.errors.append("SECRET_KEY is not set: set it (50+ random characters) to the same value for every process")
elif not SECRET_KEY:
    SECRET_KEY = persistent_secret_key(DATA_DIR / "secret_key")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", [])
# Browser origins (scheme://host[:port]) allowed to call the ingest API; empty: CORS is off.
CORS_ALLOWED_ORIGINS = env.origin_list("APP_CORS__ALLOWED_ORIGINS", [])

# Server (the telemetry-kit server's names: docs/protocols.md#configuration-names).
SERVER_HOST = env.str("APP_SERVER__HOST", "127.0.0.1")
SERVER_PORT = env.int("APP_SERVER__PORT", 8080, minimum=1, maximum=65535)
SERVER_WORKERS = env.int("APP_SERVER__WORKERS", os.cpu_count() or 1, minimum=1)
SERVER_THREADS = env.int("APP_SERVER__THREADS", 4, minimum=1)
# Limits of the server's front (telemetry/gateway.py), so slow or greedy clients hold no thread:
# seconds to send the headers, then the whole body, and to take each chunk of a large answer.
SERVER_HEADER_TIMEOUT = env.int("APP_SERVER__HEADER_TIMEOUT", 10, minimum=1)
SERVER_BODY_TIMEOUT = env.int("APP_SERVER__BODY_TIMEOUT", 30, minimum=1)
SERVER_SEND_TIMEOUT = env.int("APP_SERVER__SEND_TIMEOUT", 30, minimum=1)
# Requests one worker process holds at once (reading, queued or running), and of those from one
# client address (0: no cap); past them a new connection waits, a new request from that address gets 429.
SERVER_MAX_REQUESTS = env.int("APP_SERVER__MAX_REQUESTS", 1024, minimum=1)
SERVER_MAX_REQUESTS_PER_ADDRESS = env.int("APP_SERVER__MAX_REQUESTS_PER_ADDRESS", 64, minimum=0)
# Event streams over HTTP are read as they arrive, each on a thread of this pool (per worker process),
# never on the request threads above; past it, a new stream is answered 503.
SERVER_STREAM_THREADS = env.int("APP_SERVER__STREAM_THREADS", 8, minimum=1)
# Reverse proxies (addresses or CIDR networks) whose X-Forwarded-For is believed for the client's
# address (sign-in throttling, the audit log, /metrics' networks); empty: REMOTE_ADDR is the client.
SERVER_TRUSTED_PROXIES = env.network_list("APP_SERVER__TRUSTED_PROXIES", [])
PUBLIC_URL = env.str("APP_PUBLIC_URL", "") or f"http://{SERVER_HOST}:{SERVER_PORT}"
# WebSocket event streams are served by a second listener of the same server (0: none).
SERVER_WEBSOCKET_PORT = env.int("APP_SERVER__WEBSOCKET_PORT", SERVER_PORT + 1, minimum=0, maximum=65535)
PUBLIC_WEBSOCKET_URL = env.str("APP_PUBLIC_WEBSOCKET_URL", "") or f"ws://{SERVER_HOST}:{SERVER_WEBSOCKET_PORT}"

# Ingestion limits.
INGEST_MAX_BATCH_SIZE = env.int("APP_INGESTION__MAX_BATCH_SIZE", 1000, minimum=1)
INGEST_MAX_PAYLOAD_SIZE = env.int("APP_INGESTION__MAX_PAYLOAD_SIZE", 5 * 1024 * 1024, minimum=1024)
# One value of an event stream (an HTTP body's line or values, a WebSocket message).
STREAM_MAX_VALUE_SIZE = env.int("APP_INGESTION__STREAM_MAX_VALUE_SIZE", 1024 * 1024, minimum=1024)
# An HTTP stream's whole body: past it the stream stops with 413, keeping the values before.
STREAM_MAX_BODY_SIZE = env.int("APP_INGESTION__STREAM_MAX_BODY_SIZE", 64 * 1024 * 1024, minimum=1024)
# Event streams (HTTP and WebSocket) open at once with one token (across processes), and seconds a
# WebSocket may stay open without a message before the server closes it.
STREAM_MAX_CONNECTIONS_PER_TOKEN = env.int("APP_INGESTION__STREAM_MAX_CONNECTIONS_PER_TOKEN", 10, minimum=1)
STREAM_IDLE_TIMEOUT = env.int("APP_INGESTION__STREAM_IDLE_TIMEOUT", 60, minimum=1)
# The largest body the server reads at all, whatever the route: above it, 413 from Content-Length.
SERVER_MAX_BODY_SIZE = INGEST_MAX_PAYLOAD_SIZE
# 0 keeps events of any age: the SDK queues offline and may send days later (docs/protocols.md#event-schema).
INGEST_MAX_EVENT_AGE_DAYS = env.int("APP_INGESTION__MAX_EVENT_AGE_DAYS", 0, minimum=0)
# How deep a JSON value that is stored (an event's data, an OTLP attribute) may nest arrays and objects.
INGEST_MAX_JSON_DEPTH = env.int("APP_INGESTION__MAX_JSON_DEPTH", 32, minimum=1)

# Request signing.
SECURITY_TIMESTAMP_TOLERANCE = env.int("APP_SECURITY__TIMESTAMP_TOLERANCE", 300, minimum=1)
SECURITY_ACCEPT_LEGACY_SIGNATURE = env.bool("APP_SECURITY__ACCEPT_LEGACY_SIGNATURE", False)
SECURITY_LEGACY_TIMESTAMP_TOLERANCE = 600
# A nonce is remembered as long as a request bearing it could be accepted: its timestamp may be up to
# the tolerance ahead of the server's clock when first seen, and as far behind at a replay. A shorter
# configured time would reopen that window, so it is raised to twice the widest tolerance in force.
SECURITY_NONCE_TTL = max(
    env.int("APP_SECURITY__NONCE_TTL", 600, minimum=1),
    2 * SECURITY_TIMESTAMP_TOLERANCE,
    2 * SECURITY_LEGACY_TIMESTAMP_TOLERANCE if SECURITY_ACCEPT_LEGACY_SIGNATURE else 0,
)
# Served over HTTPS (usually behind a TLS-terminating proxy that sets X-Forwarded-Proto).
SECURITY_HTTPS = env.bool("APP_SECURITY__HTTPS", False)
# Failed sign-ins (per username and address) before sign-in is refused for the cool-off.
SECURITY_SIGN_IN_ATTEMPTS = env.int("APP_SECURITY__SIGN_IN_ATTEMPTS", 5, minimum=1)
SECURITY_SIGN_IN_COOLOFF_MINUTES = env.int("APP_SECURITY__SIGN_IN_COOLOFF_MINUTES", 15, minimum=1)
# Days an invitation's link may be used; re-sending an invitation starts the days again.
INVITATION_VALID_DAYS = env.int("APP_INVITATIONS__VALID_DAYS", 3, minimum=1)
# Superusers must set up a second factor before they reach any page but its own set-up.
SECURITY_SUPERUSERS_REQUIRE_TWO_FACTOR = env.bool("APP_SECURITY__SUPERUSERS_REQUIRE_TWO_FACTOR", False)
# A passkey (a security key or device that keeps the account and checks a PIN or biometrics) signs in
# on its own, password and second factor in one; false keeps every key a second factor only.
SECURITY_PASSKEY_SIGN_IN = env.bool("APP_SECURITY__PASSKEY_SIGN_IN", True)
# Single sign-on with an OpenID Connect provider: on when an issuer is set.
SSO_ISSUER = env.str("APP_SSO__ISSUER", "")
SSO_CLIENT_ID = env.str("APP_SSO__CLIENT_ID", "")
SSO_CLIENT_SECRET = env.str("APP_SSO__CLIENT_SECRET", "")
SSO_LABEL = env.str("APP_SSO__LABEL", "Single sign-on")
# Addresses from these domains only may sign in through the provider (empty: any it vouches for).
SSO_ALLOWED_DOMAINS = [domain.lower() for domain in env.list("APP_SSO__ALLOWED_DOMAINS", [])]
# With SSO on, false turns password sign-in off for everyone but superusers (their way in if the provider fails).
SSO_PASSWORD_SIGN_IN = env.bool("APP_SSO__PASSWORD_SIGN_IN", True)
# ID-token "acr" values that mean the provider asked for two factors (its "amr" saying so counts anyway).
SSO_TWO_FACTOR_ACR = env.list("APP_SSO__TWO_FACTOR_ACR", [])
if SSO_ISSUER and not (SSO_CLIENT_ID and SSO_CLIENT_SECRET):
    env.errors.append("APP_SSO__ISSUER is set: set APP_SSO__CLIENT_ID and APP_SSO__CLIENT_SECRET too")
# Requests a minute one read token may make to the stats API (429 past it; needs Redis).
READ_API_REQUESTS_PER_MINUTE = env.int("APP_READ_API__REQUESTS_PER_MINUTE", 120, minimum=1)
# Fernet keys that encrypt HMAC secrets at rest, newest first; "derived" names the key derived from
# SECRET_KEY, the only one when this is empty. A key left out is retired: it decrypts nothing.
CREDENTIALS_ENCRYPTION_KEYS = env.list("APP_SECURITY__CREDENTIALS_KEYS", [])

# Mail (quota warnings to owners): smtp://user:password@host:587 or submit://...; the console prints them.
EMAIL_CONFIG = env.email_url("EMAIL_URL", "consolemail://")
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", "telemetry@localhost")

# Observability.
LOG_LEVEL = env.str("APP_OBSERVABILITY__LOG_LEVEL", "info", choices=("debug", "info", "warning", "error"))
LOG_FORMAT = env.str("APP_OBSERVABILITY__LOG_FORMAT", "json", choices=("json", "pretty"))
LOG_REQUESTS = env.bool("APP_OBSERVABILITY__LOG_REQUESTS", True)
# /metrics answers a request bearing this token, or without one, requests from these networks.
METRICS_TOKEN = env.str("APP_OBSERVABILITY__METRICS_TOKEN", "")
METRICS_ALLOWED_NETWORKS = env.list("APP_OBSERVABILITY__METRICS_ALLOWED_NETWORKS", ["127.0.0.1/32", "::1/128"])
# Private networks alert deliveries may reach (a Mattermost on the LAN, say); by default only public
# addresses, so an organization's admin cannot make the service POST into its own network.
ALERTS_PRIVATE_NETWORKS = env.network_list("APP_ALERTS__PRIVATE_NETWORKS", [])

# Storage: PostgreSQL and Redis when configured, else the embedded defaults (SQLite, no broker server).
DATABASES = {
    "default": env.db_url(
        "DATABASE_URL",
        {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(DATA_DIR / "telemetry.sqlite3"),
        },
    )
}
# Optional: a streaming replica of DATABASE_URL that the dashboards read their charts and tables
# from (access checks stay on the primary). Reads there lag the primary by the replication delay.
_replica = env.db_url("DATABASE_REPLICA_URL", None)
if _replica:
    DATABASES["replica"] = {**_replica, "TEST": {"MIRROR": "default"}}
DASHBOARD_DATABASE = "replica" if _replica else "default"
# The ingest INSERT is prepared once per PostgreSQL connection (planned once, not on every batch).
# Off for a pooler that cannot keep prepared statements: PgBouncer in transaction mode before 1.21.
DATABASE_PREPARED_STATEMENTS = env.bool("APP_DATABASE__PREPARED_STATEMENTS", True)
REDIS_URL = env.redis_url("REDIS_URL")
# The cache holds sign-in rate limits (allauth): in Redis they hold across every server process.
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "cache",
        }
    }

# Archives of events past their tier's retention: a local directory, or an S3-compatible bucket.
ARCHIVE_DIR = (BASE_DIR / env.str("APP_ARCHIVE__DIR", str(DATA_DIR / "archives"))).resolve()
ARCHIVE_S3_BUCKET = env.str("APP_ARCHIVE__S3_BUCKET", "")
ARCHIVE_S3_PREFIX = env.str("APP_ARCHIVE__S3_PREFIX", "events")
ARCHIVE_S3_ENDPOINT_URL = env.str("APP_ARCHIVE__S3_ENDPOINT_URL", "")
ARCHIVE_S3_REGION = env.str("APP_ARCHIVE__S3_REGION", "")
ARCHIVE_S3_ACCESS_KEY_ID = env.str("APP_ARCHIVE__S3_ACCESS_KEY_ID", "")
ARCHIVE_S3_SECRET_ACCESS_KEY = env.str("APP_ARCHIVE__S3_SECRET_ACCESS_KEY", "")
# Days restored events stay in the database before the archive job takes them out again.
ARCHIVE_RESTORE_HOLD_DAYS = env.int("APP_ARCHIVE__RESTORE_HOLD_DAYS", 7, minimum=0)
# Scheduled exports (ingest.retention.scheduled_exports): UTC days a schedule catches up per hourly pass (the
# next pass goes on), and attempts at a file before it stays failed until re-exported.
EXPORTS_DAYS_PER_RUN = env.int("APP_EXPORTS__DAYS_PER_RUN", 7, minimum=1)
EXPORTS_MAX_ATTEMPTS = env.int("APP_EXPORTS__MAX_ATTEMPTS", 5, minimum=1)
# The rollup job (ingest.rollups): events per transaction, so a failure or a timeout loses one
# chunk, not the run; seconds after which a run starts no new chunk (the task stops at 100); and
# seconds after which one statement is cancelled and the application whose rows it read is skipped.
ROLLUPS_CHUNK_EVENTS = env.int("APP_ROLLUPS__CHUNK_EVENTS", 50_000, minimum=1)
ROLLUPS_RUN_SECONDS = env.int("APP_ROLLUPS__RUN_SECONDS", 60, minimum=1)
ROLLUPS_STATEMENT_TIMEOUT = env.int("APP_ROLLUPS__STATEMENT_TIMEOUT", 15, minimum=1)
# Where check_backup looks for the newest pg_dump file.
BACKUP_DIR = (BASE_DIR / env.str("APP_BACKUP__DIR", str(DATA_DIR / "backups"))).resolve()
env.raise_if_invalid()
# EMAIL_BACKEND, EMAIL_HOST, EMAIL_PORT, EMAIL_HOST_USER, ... as django-environ parsed them from EMAIL_URL.
globals().update(EMAIL_CONFIG)

_db = DATABASES["default"]
if _db["ENGINE"] == "django.db.backends.sqlite3":
    if _db["NAME"] != ":memory:":
        Path(_db["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    # WAL and an immediate write lock let web, worker and beat share one file without "database is locked".
    _db["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }
else:
    # Persistent connections without a per-request health check (a round trip each): after a
    # PostgreSQL restart the first request on a stale connection answers 503 and the client retries.
    for _alias in DATABASES.values():
        _alias.setdefault("CONN_MAX_AGE", 300)
        _alias.setdefault("OPTIONS", {}).setdefault("connect_timeout", 5)
        # Django turns psycopg's prepared statements off unless given a threshold. Its own cursors
        # bind on the client and never prepare; the threshold reaches the ingest's server-side cursor.
        if DATABASE_PREPARED_STATEMENTS:
            _alias["OPTIONS"].setdefault("prepare_threshold", 5)

INSTALLED_APPS = [
    "accounts.admin_app.MemberAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.humanize",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "corsheaders",
    "axes",
    "allauth",
    "allauth.account",
    "allauth.mfa",
    "allauth.usersessions",
    "allauth.socialaccount",
    "allauth.socialaccount.providers.openid_connect",
    "django_celery_beat",
    "accounts",
    "ingest",
    "dashboards",
    "alerts",
]

MIDDLEWARE = [
    "telemetry.middleware.request_observe",
    "telemetry.middleware.clacks_overhead",
    "telemetry.middleware.cors",
    "telemetry.middleware.service_unavailable",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "allauth.usersessions.middleware.UserSessionsMiddleware",
    "accounts.middleware.two_factor_required",
    "telemetry.middleware.user_time_zone",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",
]

# The machine routes (both ingests, health, readiness, metrics) run through this shorter chain: sessions,
# CSRF, messages, sign-in throttling and time zones are for people in a browser, and on a request
# of a few milliseconds their cost shows in the profile (telemetry/wsgi.py).
MACHINE_MIDDLEWARE = [
    "telemetry.middleware.request_observe",
    "telemetry.middleware.clacks_overhead",
    "telemetry.middleware.allowed_host",
    "telemetry.middleware.cors",
    "telemetry.middleware.service_unavailable",
    "django.middleware.security.SecurityMiddleware",
]
MACHINE_PATHS = ("/v1/", "/api/v1/", "/health", "/ready", "/metrics")

AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
# Sign-in throttling (django-axes): lock a username from one address after repeated failures.
AXES_FAILURE_LIMIT = SECURITY_SIGN_IN_ATTEMPTS
AXES_COOLOFF_TIME = timedelta(minutes=SECURITY_SIGN_IN_COOLOFF_MINUTES)
# Keyed on both, so failures from one address cannot lock the account out for everyone else.
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_CLIENT_IP_CALLABLE = "telemetry.lib.addresses.client_address"
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "admin/locked_out.html"
AXES_VERBOSE = False
# allauth's sign-in forms name the account "login" (a username or an e-mail address).
AXES_USERNAME_CALLABLE = "accounts.adapters.sign_in_name"

# django-allauth: sign-in, second factors and sessions. Nobody signs up: people join by invitation
# (accounts.adapters.AccountAdapter), and the admin's sign-in form hands over to allauth's stages
# (accounts.sites), so a second factor is asked for wherever a person signs in.
ACCOUNT_ADAPTER = "accounts.adapters.AccountAdapter"
ACCOUNT_FORMS = {"login": "accounts.forms.PasswordLoginForm"}
# By username only: addresses need not be unique (one person may hold several accounts).
ACCOUNT_LOGIN_METHODS = {"username"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "username*", "password1*", "password2*"]
ACCOUNT_EMAIL_VERIFICATION = "none"
ACCOUNT_UNIQUE_EMAIL = False
ACCOUNT_LOGOUT_ON_PASSWORD_CHANGE = False
ACCOUNT_PREVENT_ENUMERATION = True
# Wrong passwords and wrong codes: as many as django-axes allows, for as long, per account.
SOCIALACCOUNT_ADAPTER = "accounts.adapters.SingleSignOnAdapter"
# The provider's verified address finds the account with that verified address, or one is made for it.
SOCIALACCOUNT_EMAIL_AUTHENTICATION = True
SOCIALACCOUNT_EMAIL_AUTHENTICATION_AUTO_CONNECT = True
SOCIALACCOUNT_AUTO_SIGNUP = True
SOCIALACCOUNT_ONLY = False
SOCIALACCOUNT_STORE_TOKENS = False
SOCIALACCOUNT_PROVIDERS = {
    "openid_connect": {
        "OAUTH_PKCE_ENABLED": True,
        "APPS": [
            {
                "provider_id": "sso",
                "name": SSO_LABEL,
                "client_id": SSO_CLIENT_ID,
                "secret": SSO_CLIENT_SECRET,
                "settings": {"server_url": SSO_ISSUER},
            }
        ]
        if SSO_ISSUER
        else [],
    }
}
# Authenticator apps, security keys and passkeys (WebAuthn), and recovery codes. allauth's WebAuthn
# scripts are its own static files (no CDN, nothing inline), and fido2 checks the browser's answers
# against this host's name, so keys work at the address people sign in at (https, or localhost).
MFA_SUPPORTED_TYPES = ["totp", "webauthn", "recovery_codes"]
MFA_PASSKEY_LOGIN_ENABLED = SECURITY_PASSKEY_SIGN_IN
# allauth's key forms, refusing a malformed answer from the browser with a message (accounts/forms.py).
MFA_FORMS = {
    "add_webauthn": "accounts.forms.AddSecurityKeyForm",
    "authenticate_webauthn": "accounts.forms.SecurityKeyForm",
    "login_webauthn": "accounts.forms.PasskeySignInForm",
    "reauthenticate_webauthn": "accounts.forms.SecurityKeyReauthenticationForm",
}
MFA_TOTP_ISSUER = "Telemetry"
# A code is taken from the period before or after too (phones' clocks drift); each is still used once.
MFA_TOTP_TOLERANCE = 1
# Sessions are recorded when they sign in, with where and when; recording every request would write on each page.
USERSESSIONS_TRACK_ACTIVITY = False
# Sessions a person signs out from their session list are written to the audit log.
USERSESSIONS_ADAPTER = "accounts.adapters.UserSessionsAdapter"
ACCOUNT_RATE_LIMITS = {
    "login_failed": f"{10 * SECURITY_SIGN_IN_ATTEMPTS}/m/ip,"
    f"{SECURITY_SIGN_IN_ATTEMPTS}/{60 * SECURITY_SIGN_IN_COOLOFF_MINUTES}s/key",
}
LOGIN_REDIRECT_URL = "/"
ACCOUNT_LOGOUT_REDIRECT_URL = "/admin/login/"

if SECURITY_HTTPS:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = True
    # Load balancers probe over plain HTTP.
    SECURE_REDIRECT_EXEMPT = [r"^health$", r"^ready$"]
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = 60 * 60 * 24 * 365
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True

# Pages load scripts, styles and images from this origin only, with no inline script or style
# (charts and the live tail come from static files; the admin has none either).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    },
}

if SSO_ISSUER:
    # The sign-in button's form is answered with a redirect to the provider, which form-action covers.
    from urllib.parse import urlsplit

    _issuer = urlsplit(SSO_ISSUER)
    CONTENT_SECURITY_POLICY["DIRECTIVES"]["form-action"].append(f"{_issuer.scheme}://{_issuer.netloc}")

ROOT_URLCONF = "telemetry.urls"
LOGIN_URL = "admin:login"
WSGI_APPLICATION = "telemetry.wsgi.application"
AUTH_USER_MODEL = "accounts.User"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

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

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "static"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
    "archives": {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": ARCHIVE_DIR}},
}
if ARCHIVE_S3_BUCKET:
    STORAGES["archives"] = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": ARCHIVE_S3_BUCKET,
            "location": ARCHIVE_S3_PREFIX,
            "endpoint_url": ARCHIVE_S3_ENDPOINT_URL or None,
            "region_name": ARCHIVE_S3_REGION or None,
            "access_key": ARCHIVE_S3_ACCESS_KEY_ID or None,
            "secret_key": ARCHIVE_S3_SECRET_ACCESS_KEY or None,
            # Archive names are unique; an existing object is never silently replaced.
            "file_overwrite": False,
            "default_acl": None,
            "querystring_auth": False,
        },
    }

# The ingest view reads and bounds the body itself; this only guards Django's own parsers.
DATA_UPLOAD_MAX_MEMORY_SIZE = INGEST_MAX_PAYLOAD_SIZE

REST_FRAMEWORK = {
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": [],
    "UNAUTHENTICATED_USER": None,
    "EXCEPTION_HANDLER": "ingest.errors.api_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}

# The OpenAPI schema at /api/schema/ (drf-spectacular); the plain views (health, readiness, metrics)
# and the optional bearer token are added by ingest.openapi.machine_routes_add.
SPECTACULAR_SETTINGS = {
    "TITLE": "Telemetry API",
    "DESCRIPTION": "Ingest: signed batches of telemetry-kit events, event streams, AWS Lambda, OTLP/HTTP and "
    "Malti. Stats: an organization's numbers for a read token. And the health, readiness and "
    "metrics endpoints. Every response carries `X-Clacks-Overhead: GNU Terry Pratchett`.",
    "VERSION": telemetry.__version__,
    "SERVE_INCLUDE_SCHEMA": False,
    "PREPROCESSING_HOOKS": ["ingest.openapi.views_annotate", "dashboards.openapi.views_annotate"],
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "ingest.openapi.machine_routes_add",
        "dashboards.openapi.read_token_add",
    ],
    "ENUM_NAME_OVERRIDES": {
        "EventErrorCode": "ingest.openapi.EVENT_ERROR_CODES",
        "BatchStatus": "ingest.openapi.BATCH_STATUSES",
    },
}

# CORS (django-cors-headers) on the ingest routes only, and only when origins are configured
# (telemetry.middleware.cors). Browsers may send the signing headers and read the limit headers.
CORS_URLS_REGEX = r"^/v1/ingest/"
CORS_ALLOW_METHODS = ("POST", "OPTIONS")
CORS_ALLOW_HEADERS = (
    "content-type",
    "authorization",
    "dnt",
    "x-signature",
    "x-timestamp",
    "x-nonce",
    "x-batch-size",
    "x-sdk-version",
    "x-schema-version",
)
CORS_EXPOSE_HEADERS = ("Retry-After", "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset")

# Celery: Redis when configured, else kombu's filesystem transport, which needs no server.
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    CELERY_RESULT_BACKEND = REDIS_URL
    CELERY_BROKER_TRANSPORT_OPTIONS = {}
else:
    _broker_dir = DATA_DIR / "broker"
    for _sub in ("queue", "control"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_URL = "filesystem://"
    CELERY_RESULT_BACKEND = None
    # Every folder the transport writes is named, or kombu writes its broadcast bindings to
    # ./control wherever the process was started; messages are deleted once taken (no
    # store_processed, so no processed folder).
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "control_folder": str(_broker_dir / "control"),
    }
CELERY_TASK_TIME_LIMIT = 300
CELERY_TASK_SOFT_TIME_LIMIT = 240
# Periodic jobs live in the database (django-celery-beat): their defaults are declared in
# telemetry/schedules.py and installed after migrate, and operators change them in the admin.
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
        "pretty": {"format": "%(asctime)s %(levelname)-7s %(name)s: %(message)s"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL.upper()},
}
