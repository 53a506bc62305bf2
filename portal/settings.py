"""The one settings module. Every value comes from the environment through ``portal.env``.

Each variable is documented in ``docker/.env.example`` and the README. A wrong value stops
start-up with an ``ImproperlyConfigured`` error that names the variable.
"""

from __future__ import annotations

import re
from pathlib import Path

import environ
from csp.constants import NONCE
from django.core.exceptions import ImproperlyConfigured

from portal.env import Env
from portal.ldap import ldap_backends, ldap_settings
from portal.oidc import read_oidc, socialaccount_settings
from portal.rates import parse_rates
from portal.timing import Timing, problems

env = Env()
BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = env.flag("VDI_DEBUG", False)
DATA_DIR = env.path("VDI_DATA_DIR", Path("/var/lib/vdi-portal"))
# The data folders: their owners and modes are in vdi/folders.py (FOLDERS), which the set-up
# makes them from; a test holds each setting below to that table.
IMAGE_DIR = env.path("VDI_IMAGE_DIR", DATA_DIR / "images")
DISK_DIR = env.path("VDI_DISK_DIR", DATA_DIR / "disks")
LOG_DIR = env.path("VDI_LOG_DIR", DATA_DIR / "logs")
KERNEL_DIR = env.path("VDI_KERNEL_DIR", DATA_DIR / "kernel")
IMAGE_CACHE_DIR = env.path("VDI_IMAGE_CACHE_DIR", DATA_DIR / "cache")  # built images, by key
MEDIA_DIR = env.path("VDI_MEDIA_DIR", DATA_DIR / "media")  # uploaded installer ISOs
SPOOL_DIR = env.path("VDI_SPOOL_DIR", DATA_DIR / "spool")  # files on their way to/from desktops
RECORDING_DIR = env.path("VDI_RECORDING_DIR", DATA_DIR / "recordings")  # console recordings
BACKUP_DIR = env.path("VDI_BACKUP_DIR", DATA_DIR / "backups")  # desktops' backups, per host
# The dashboard's thumbnails of desktops' screens: written by the workers, served by the portal
# (shared by both, like the spool).
THUMBNAIL_DIR = env.path("VDI_THUMBNAIL_DIR", DATA_DIR / "thumbnails")
MEDIA_UPLOAD_MAX_BYTES = env.number("VDI_MEDIA_UPLOAD_MAX_BYTES", 8 * 1024**3, minimum=1)
# A request's body: at most REQUEST_MAX_BYTES for pages and the API, the upload limits for
# files and ISOs (portal/limits.py: the server refuses a bigger body before storing it).
REQUEST_MAX_BYTES = env.number("VDI_REQUEST_MAX_BYTES", 4 * 1024**2, minimum=64 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = REQUEST_MAX_BYTES  # Django's own check of a form's body agrees
# An upload's own limit applies with the pass of the page that sends it, this long (limits.py).
UPLOAD_PASS_SECONDS = env.number("VDI_UPLOAD_PASS_SECONDS", 12 * 3600, minimum=60)
INSTALL_DISK_MAX_GIB = env.number("VDI_INSTALL_DISK_MAX_GIB", 200, minimum=1)
# libguestfs (virt-sysprep when publishing): a fixed appliance made by the set-up scripts,
# used when present (else libguestfs builds its own from the host's kernel).
GUESTFS_APPLIANCE_DIR = env.path("VDI_GUESTFS_APPLIANCE_DIR", DATA_DIR / "guestfs-appliance")
# Secrets (the SQLite database, the secret key, credentials, mail with reset links) in a
# folder of their own, 0700, files 0600; images, disks and logs stay traversable by QEMU.
SECRETS_DIR = env.path("VDI_SECRETS_DIR", DATA_DIR / "secrets")


def _secret_key() -> str:
    from_env = env.text("VDI_SECRET_KEY", "")
    if from_env:
        if len(from_env) < 32:
            raise ImproperlyConfigured("VDI_SECRET_KEY: must be at least 32 characters long")
        return from_env
    key_file = SECRETS_DIR / "secret_key"
    if key_file.is_file():
        return key_file.read_text().strip()
    if DEBUG:
        return "insecure-development-key-" + "x" * 40
    raise ImproperlyConfigured(
        f"VDI_SECRET_KEY: must be set (or {key_file} must exist; scripts/run creates it)"
    )


SECRET_KEY = _secret_key()
ALLOWED_HOSTS = env.items("VDI_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.items("VDI_CSRF_TRUSTED_ORIGINS", [])
PORT = env.number("VDI_PORT", 8000, minimum=1)
# Exact origins (scheme, host, port) the console websocket accepts, on top of ALLOWED_HOSTS.
ALLOWED_ORIGINS = env.items(
    "VDI_ALLOWED_ORIGINS",
    [f"http://localhost:{PORT}", f"http://127.0.0.1:{PORT}", *CSRF_TRUSTED_ORIGINS],
)
for _origin in ALLOWED_ORIGINS:
    if not _origin.startswith(("http://", "https://")):
        raise ImproperlyConfigured(
            f"VDI_ALLOWED_ORIGINS: {_origin!r} must start with http:// or https://")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "allauth",
    "allauth.account",
    "allauth.mfa",
    "allauth.usersessions",
    "allauth.socialaccount",
    "allauth.socialaccount.providers.openid_connect",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_prometheus",
    "health_check",
    "vdi",
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "vdi.request_log.RequestIdMiddleware",  # first: every line of the request carries its id
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "csp.middleware.CSPMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "vdi.audit_context.AuditContextMiddleware",
    "vdi.request_log.RequestUserMiddleware",  # the signed-in user on the request's log lines
    "django.contrib.messages.middleware.MessageMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "allauth.usersessions.middleware.UserSessionsMiddleware",
    "vdi.middleware.AdminTwoFactorMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

# --- Security ---------------------------------------------------------------------------------
# Behind a TLS-terminating proxy in production: VDI_HTTPS=true turns on HTTPS-only cookies,
# the redirect, HSTS and trusts the proxy's X-Forwarded-Proto.
HTTPS = env.flag("VDI_HTTPS", False)
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = SECURE_SSL_REDIRECT = HTTPS
SECURE_HSTS_SECONDS = env.number("VDI_HSTS_SECONDS", 31536000, minimum=0) if HTTPS else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = HTTPS
SECURE_HSTS_PRELOAD = HTTPS
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if HTTPS else None
# Probes of the orchestrator speak plain HTTP to the container: no redirect for them.
SECURE_REDIRECT_EXEMPT = [r"^health/"]
# Reverse proxies in front of daphne that append to X-Forwarded-For (portal/proxy.py): the
# client is that many entries from the right. 0: the connection's own address is the client.
TRUSTED_PROXY_COUNT = env.number("VDI_TRUSTED_PROXY_COUNT", 0, minimum=0)
ALLAUTH_TRUSTED_PROXY_COUNT = TRUSTED_PROXY_COUNT
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
X_FRAME_OPTIONS = "DENY"
SECURE_REFERRER_POLICY = "same-origin"
# Sign-in through OpenID Connect, when VDI_OIDC_ISSUER names a provider (portal/oidc.py).
OIDC = read_oidc(env)
# Scripts, styles and connections only from the portal itself: no inline script anywhere.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'", NONCE],  # the console page's inline ticket request
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:", "blob:"],
        "media-src": ["'self'", "blob:"],  # SPICE's sound and video streams
        "connect-src": ["'self'"],
        "font-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        # The OpenID Connect button's form is answered by a redirect to the provider.
        "form-action": ["'self'", *([OIDC.origin] if OIDC else [])],
        "frame-ancestors": ["'none'"],
    },
}

ROOT_URLCONF = "portal.urls"
WSGI_APPLICATION = "portal.wsgi.application"
ASGI_APPLICATION = "portal.asgi.application"

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

_database = env.database("DATABASE_URL", f"sqlite:///{SECRETS_DIR / 'portal.sqlite3'}")
if _database["ENGINE"] == "django.db.backends.sqlite3":
    _database["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }
    # A file, not memory, so that a Celery worker process started by a test sees the test data.
    _database["TEST"] = {"NAME": str(Path(_database["NAME"]).with_name("test-portal.sqlite3"))}
# django-prometheus' wrappers of the same backends: query counts, errors and latency by vendor.
_database["ENGINE"] = _database["ENGINE"].replace("django.db.backends.",
                                                  "django_prometheus.db.backends.")
DATABASES = {"default": _database}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
# Directory sign-in (LDAP, Active Directory): AUTH_LDAP_* from VDI_LDAP_*, none without
# VDI_LDAP_URI; the directory is asked first, then the local accounts.
LDAP_SETTINGS = ldap_settings(env)
globals().update(LDAP_SETTINGS)
AUTHENTICATION_BACKENDS = [
    *ldap_backends(LDAP_SETTINGS),
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
    "vdi.auth_backends.PoolOperatorBackend",  # pool operators, on the pools they operate
]
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "desktop-list"
# Accounts (django-allauth): sign-in by username, no self sign-up (admins create users),
# password reset by email, TOTP two-factor with recovery codes. Directory accounts get no
# local password (no reset mail, no "set password" or "change password" form).
ACCOUNT_ADAPTER = "vdi.accounts.AccountAdapter"
ACCOUNT_FORMS = {"set_password": "vdi.accounts.NoDirectoryPasswordForm",
                 "change_password": "vdi.accounts.LocalPasswordChangeForm"}
ACCOUNT_LOGIN_METHODS = {"username"}
ACCOUNT_SIGNUP_FIELDS = ["username*", "email", "password1*", "password2*"]
ACCOUNT_LOGOUT_REDIRECT_URL = "account_login"
ACCOUNT_SESSION_REMEMBER = False
ACCOUNT_PASSWORD_RESET_BY_CODE_ENABLED = False
# Failed sign-ins per address, and per account tried from one address (key: vdi/accounts.py).
_login_rate = env.text("VDI_LOGIN_RATE_LIMIT", "10/m/ip,5/5m/key")
if not all(re.fullmatch(r"\d+/\d*[smhd](/(ip|user|key))?", rule.strip())
           for rule in _login_rate.split(",")):
    raise ImproperlyConfigured(
        f"VDI_LOGIN_RATE_LIMIT: expected rules like 10/m/ip,5/5m/key, got {_login_rate!r}")
ACCOUNT_RATE_LIMITS = {"login_failed": _login_rate}
# Sign-in through OpenID Connect (portal/oidc.py, vdi/oidc.py): off while VDI_OIDC_ISSUER is
# empty (OIDC, read with the security settings, is None).
globals().update(socialaccount_settings(OIDC))
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes"]
MFA_TOTP_ISSUER = env.text("VDI_SITE_NAME", "VDI portal")
ADMIN_REQUIRE_2FA = env.flag("VDI_ADMIN_REQUIRE_2FA", False)
# Without VDI_EMAIL_URL, mail (password-reset links!) is written to files in the secrets
# folder, readable by the portal's user only, never to a log others can read.
EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
EMAIL_FILE_PATH = SECRETS_DIR / "mail"
if _email_url := env.text("VDI_EMAIL_URL", ""):
    try:
        globals().update(environ.Env.email_url_config(_email_url))
    except Exception as exc:
        raise ImproperlyConfigured(f"VDI_EMAIL_URL: not an email URL ({exc})") from None
DEFAULT_FROM_EMAIL = env.text("VDI_EMAIL_FROM", "vdi-portal@localhost")

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "static"
# frontend/dist: the console's bundle (noVNC and the page, by esbuild: `npm run build`).
FRONTEND_BUNDLE_DIR = BASE_DIR / "frontend" / "dist"
STATICFILES_DIRS: list[Path | tuple[str, Path]] = [BASE_DIR / "frontend" / "static",
                                                   FRONTEND_BUNDLE_DIR]
HTMX_DIR = BASE_DIR / "frontend" / "node_modules" / "htmx.org" / "dist"
if HTMX_DIR.is_dir():
    STATICFILES_DIRS.append(("htmx", HTMX_DIR))
# collectstatic writes content-hashed names (served with a year's caching, immutable) and
# their gzip copies; pages name the hashed files.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

# --- Redis: Celery broker and channel layer --------------------------------------------------
REDIS_URL = env.url("REDIS_URL", "redis://127.0.0.1:6379/0", ("redis", "rediss", "unix"))
# Every key the installation keeps in Redis carries this prefix: Celery's queues (kombu's
# global key prefix), the cache, the channel layer's groups and the console guards. Two
# portals, or a portal and its tests, sharing one Redis never see each other's work.
REDIS_KEY_PREFIX = env.text("VDI_REDIS_KEY_PREFIX", "vdi")
# Connections a process's channel layer may hold at once (websocket groups joined and left).
REDIS_MAX_CONNECTIONS = env.number("VDI_REDIS_MAX_CONNECTIONS", 2000, minimum=10)

CELERY_BROKER_URL = REDIS_URL
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True  # the Operation row is the truth, never the result backend
CELERY_TASK_DEFAULT_QUEUE = "vdi"
# Redis redelivers a task not acknowledged within this (its worker died): above the lease.
TASK_VISIBILITY_TIMEOUT = env.number("VDI_TASK_VISIBILITY_TIMEOUT", 3600, minimum=60)
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": TASK_VISIBILITY_TIMEOUT,
                                   "global_keyprefix": f"{REDIS_KEY_PREFIX}:"}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Publishing a task retries a lost Redis connection with backoff, then gives up (the service
# then marks the desktop and its Operation failed, with the reason).
CELERY_TASK_PUBLISH_RETRY = True
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 3, "interval_start": 0.2, "interval_step": 0.5, "interval_max": 2,
}
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# Shared by every portal process: login throttling must count across them.
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": REDIS_KEY_PREFIX,
    }
}

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        # redis-py 8 reads with a 5 s socket timeout by default, the same 5 s that
        # channels-redis blocks for in BZPOPMIN: every idle consumer would then die with a
        # TimeoutError after 5 s. Allow the blocking read its time, and a margin.
        # redis-py 8 fails at once when its pool is out of connections (default 100): 500
        # pages closing together left most of them in their groups. Each group operation
        # borrows a connection for a moment; allow what a busy web process needs.
        "CONFIG": {"hosts": [{"address": REDIS_URL, "socket_timeout": 15,
                              "max_connections": REDIS_MAX_CONNECTIONS}],
                   "prefix": f"{REDIS_KEY_PREFIX}:asgi"},
    }
}

# --- Console ----------------------------------------------------------------------------------
CONSOLE_TICKET_SECONDS = env.number("VDI_CONSOLE_TICKET_SECONDS", 30, minimum=5)
CONSOLE_MAX_SECONDS = env.number("VDI_CONSOLE_MAX_SECONDS", 8 * 3600, minimum=10)
CONSOLE_CONNECT_TIMEOUT = env.number("VDI_CONSOLE_CONNECT_TIMEOUT", 5, minimum=1)
# An open console tells the database it is there every HEARTBEAT s; one not seen for STALE s
# no longer counts as connected (its proxy died).
CONSOLE_HEARTBEAT = env.number("VDI_CONSOLE_HEARTBEAT", 30, minimum=1)
CONSOLE_STALE = env.number("VDI_CONSOLE_STALE", 90, minimum=2)
# An open console checks every RECHECK s that its user, session, password, grant and role
# still allow it (changes also reach it at once, through the channel layer).
CONSOLE_RECHECK = env.number("VDI_CONSOLE_RECHECK", 5, minimum=1)
CONSOLE_MAX_PER_USER = env.number("VDI_CONSOLE_MAX_PER_USER", 4, minimum=1)
CONSOLE_MAX_PER_DESKTOP = env.number("VDI_CONSOLE_MAX_PER_DESKTOP", 3, minimum=1)
CONSOLE_MAX_MESSAGE = env.number("VDI_CONSOLE_MAX_MESSAGE", 1024 * 1024, minimum=1024)
CONSOLE_CONSENT_TIMEOUT = env.number("VDI_CONSOLE_CONSENT_TIMEOUT", 60, minimum=5)
RECORDING_MAX_BYTES = env.number("VDI_RECORDING_MAX_BYTES", 256 * 1024**2, minimum=1024**2)
RECORDING_DAYS = env.number("VDI_RECORDING_DAYS", 30, minimum=1)
FILE_TRANSFER_MAX_BYTES = env.number("VDI_FILE_TRANSFER_MAX_BYTES", 64 * 1024**2,
                                     minimum=1024)
CLIPBOARD_MAX_BYTES = env.number("VDI_CLIPBOARD_MAX_BYTES", 256 * 1024, minimum=1024)
CONSOLE_HANDSHAKE_TIMEOUT = env.number("VDI_CONSOLE_HANDSHAKE_TIMEOUT", 10, minimum=1)
# SPICE: a console's channels (display, inputs, cursor, sound) join its main channel within
# JOIN s; a .vv file's ticket expires within a minute. The gateway answers native clients'
# HTTP CONNECT (a .vv's proxy= key, VDI_SPICE_PROXY_URL, or this site's host name and
# the gateway's port when empty).
SPICE_JOIN_SECONDS = env.number("VDI_SPICE_JOIN_SECONDS", 15, minimum=1, maximum=300)
SPICE_VV_TICKET_SECONDS = env.number("VDI_SPICE_VV_TICKET_SECONDS", 50, minimum=5, maximum=60)
SPICE_GATEWAY_LISTEN = env.text("VDI_SPICE_GATEWAY_LISTEN", "127.0.0.1:8001")
SPICE_PROXY_URL = env.text("VDI_SPICE_PROXY_URL", "")
REFUSAL_AUDIT_INTERVAL = env.number("VDI_REFUSAL_AUDIT_INTERVAL", 60, minimum=5)


def _rates(name: str, default: str) -> str:
    value = env.text(name, default)
    try:
        parse_rates(value)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name}: {exc}") from None
    return value


CONSOLE_RATE_LIMIT = _rates("VDI_CONSOLE_RATE_LIMIT", "30/m/ip,20/m/user")
TICKET_RATE_LIMIT = _rates("VDI_TICKET_RATE_LIMIT", "30/m/ip,20/m/user")

# --- REST API (portal/api.py) -------------------------------------------------------------
from portal.api import REST_FRAMEWORK, SPECTACULAR_SETTINGS  # noqa: E402,F401

API_TOKEN_MAX_DAYS = env.number("VDI_API_TOKEN_MAX_DAYS", 365, minimum=1)
API_TOKENS_PER_USER = env.number("VDI_API_TOKENS_PER_USER", 20, minimum=1)

# --- Quotas: defaults for users without a quota of their own (admin: User quotas) ---------
DEFAULT_MAX_DESKTOPS = env.number("VDI_DEFAULT_MAX_DESKTOPS", 3, minimum=0)
DEFAULT_MAX_VCPUS = env.number("VDI_DEFAULT_MAX_VCPUS", 8, minimum=0)
DEFAULT_MAX_MEMORY_MIB = env.number("VDI_DEFAULT_MAX_MEMORY_MIB", 8192, minimum=0)
DEFAULT_MAX_SNAPSHOTS = env.number("VDI_DEFAULT_MAX_SNAPSHOTS", 10, minimum=0)
DEFAULT_MAX_SNAPSHOT_GIB = env.number("VDI_DEFAULT_MAX_SNAPSHOT_GIB", 20, minimum=0)
POLICY_INTERVAL = env.number("VDI_POLICY_INTERVAL", 30, minimum=5)
RECONCILE_INTERVAL = env.number("VDI_RECONCILE_INTERVAL", 60, minimum=5)
RECONCILE_GRACE = env.number("VDI_RECONCILE_GRACE", 600, minimum=0)
STUCK_AFTER = env.number("VDI_STUCK_AFTER", 1200, minimum=0)
# A delivery that held an operation this long is presumed dead; a redelivery may take over.
OPERATION_LEASE = env.number("VDI_OPERATION_LEASE", 600, minimum=1)
# An operation whose host does not answer waits and retries (backoff 1, 2, 4... up to
# HOST_RETRY_MAX_SECONDS) this long before it fails.
HOST_OUTAGE_WINDOW = env.number("VDI_HOST_OUTAGE_WINDOW", 300, minimum=0)
HOST_RETRY_MAX_SECONDS = env.number("VDI_HOST_RETRY_MAX_SECONDS", 30, minimum=1)
HISTORY_DAYS = env.number("VDI_HISTORY_DAYS", 90, minimum=1)
HISTORY_INTERVAL = env.number("VDI_HISTORY_INTERVAL", 3600, minimum=5)
TICKET_PURGE_INTERVAL = env.number("VDI_TICKET_PURGE_INTERVAL", 600, minimum=5)
# How often beat looks for persistent desktops whose pool's backup interval has passed.
BACKUP_SCHEDULE_INTERVAL = env.number("VDI_BACKUP_SCHEDULE_INTERVAL", 600, minimum=5)
# Backups of a deleted desktop are kept this long (restorable as a new desktop), then removed.
BACKUP_ORPHAN_DAYS = env.number("VDI_BACKUP_ORPHAN_DAYS", 30, minimum=1)

# --- Operations: metrics, health, logs, webhooks ------------------------------------------
# /metrics answers a scraper presenting "Authorization: Bearer <VDI_METRICS_TOKEN>" (when
# set) and signed-in administrators; everyone else gets 401 (no credentials) or 403.
METRICS_TOKEN = env.text("VDI_METRICS_TOKEN", "")
if METRICS_TOKEN and len(METRICS_TOKEN) < 16:
    raise ImproperlyConfigured("VDI_METRICS_TOKEN: must be at least 16 characters long")
# Each enabled host's worker writes a heartbeat every INTERVAL s (beat sends it to the host's
# queue); /health/ready calls a host whose last beat is older than STALE s down.
HEARTBEAT_INTERVAL = env.number("VDI_HEARTBEAT_INTERVAL", 30, minimum=5)
HEARTBEAT_STALE = env.number("VDI_HEARTBEAT_STALE", 120, minimum=10)
if HEARTBEAT_STALE < 2 * HEARTBEAT_INTERVAL:
    raise ImproperlyConfigured(
        f"VDI_HEARTBEAT_STALE: must be at least twice VDI_HEARTBEAT_INTERVAL "
        f"({2 * HEARTBEAT_INTERVAL}), got {HEARTBEAT_STALE}")
# Webhooks: each attempt waits TIMEOUT s for an answer; a failed one is tried again after
# BACKOFF s, doubling each time up to BACKOFF_MAX s, at most MAX_ATTEMPTS times in all.
# Beat re-sends deliveries whose retry message was lost every SWEEP_INTERVAL s.
WEBHOOK_TIMEOUT = env.number("VDI_WEBHOOK_TIMEOUT", 10, minimum=1, maximum=60)
WEBHOOK_MAX_ATTEMPTS = env.number("VDI_WEBHOOK_MAX_ATTEMPTS", 8, minimum=1, maximum=50)
WEBHOOK_BACKOFF = env.number("VDI_WEBHOOK_BACKOFF", 10, minimum=1)
# A retry waits in Redis as a message with a countdown: past the visibility timeout, Redis
# would hand it to a second worker. So the longest pause stays below it (checked further down).
WEBHOOK_BACKOFF_MAX = env.number("VDI_WEBHOOK_BACKOFF_MAX",
                                 min(1800, TASK_VISIBILITY_TIMEOUT // 2), minimum=1)
WEBHOOK_SWEEP_INTERVAL = env.number("VDI_WEBHOOK_SWEEP_INTERVAL", 60, minimum=5)
# Webhooks reach public addresses only (vdi/webhook_targets.py): loopback, link-local,
# private, unspecified, multicast and reserved ones are refused unless a network listed here
# (comma-separated CIDRs, e.g. "10.20.0.0/16,fd00:1::/64") holds them.
WEBHOOK_ALLOWED_NETWORKS = env.networks("VDI_WEBHOOK_ALLOWED_NETWORKS")
# The dashboard: each host's worker takes a thumbnail of every running desktop's screen every
# THUMBNAIL_INTERVAL s (0: never; the dashboard then shows none).
THUMBNAIL_INTERVAL = env.number("VDI_THUMBNAIL_INTERVAL", 30, minimum=0)
if 0 < THUMBNAIL_INTERVAL < 5:
    raise ImproperlyConfigured(
        f"VDI_THUMBNAIL_INTERVAL: must be 0 (off) or at least 5, got {THUMBNAIL_INTERVAL}")

CELERY_BEAT_SCHEDULE = {
    "maintain-pools": {"task": "vdi.maintain_pools", "schedule": POLICY_INTERVAL},
    "enforce-policies": {"task": "vdi.enforce_policies", "schedule": POLICY_INTERVAL},
    "purge-console-tickets": {"task": "vdi.purge_console_tickets",
                              "schedule": TICKET_PURGE_INTERVAL},
    "reconcile": {"task": "vdi.reconcile_hosts", "schedule": RECONCILE_INTERVAL},
    "purge-history": {"task": "vdi.purge_history", "schedule": HISTORY_INTERVAL},
    "schedule-backups": {"task": "vdi.schedule_backups", "schedule": BACKUP_SCHEDULE_INTERVAL},
    "advance-rollouts": {"task": "vdi.advance_rollouts", "schedule": POLICY_INTERVAL},
    "purge-retired-versions": {"task": "vdi.purge_retired_versions",
                               "schedule": HISTORY_INTERVAL},
    "flush-console-refusals": {"task": "vdi.flush_console_refusals",
                               "schedule": REFUSAL_AUDIT_INTERVAL},
    "heartbeat-hosts": {"task": "vdi.heartbeat_hosts", "schedule": HEARTBEAT_INTERVAL},
    "sweep-webhooks": {"task": "vdi.sweep_webhooks", "schedule": WEBHOOK_SWEEP_INTERVAL},
}
if THUMBNAIL_INTERVAL:
    CELERY_BEAT_SCHEDULE["take-thumbnails"] = {"task": "vdi.take_thumbnails",
                                               "schedule": THUMBNAIL_INTERVAL}

# --- The demo (scripts/run's setup_demo) ---
DEMO_DESKTOP_IMAGE = env.flag("VDI_DEMO_DESKTOP_IMAGE", True)  # build it in the background
DEMO_NETWORK = env.choice("VDI_DEMO_NETWORK", "none", ("none", "nat"))

# --- Hypervisor ---------------------------------------------------------------------------------
LIBVIRT_URI = env.text("VDI_LIBVIRT_URI", "qemu:///system")
DOMAIN_TYPE = env.choice("VDI_DOMAIN_TYPE", "auto", ("auto", "kvm", "qemu"))
HOST_NAME = env.text("VDI_HOST_NAME", "local")
SHUTDOWN_TIMEOUT = env.number("VDI_SHUTDOWN_TIMEOUT", 60, minimum=1)
DOMAIN_PREFIX = env.text("VDI_DOMAIN_PREFIX", "vdi")
PROBE_TIMEOUT = env.number("VDI_PROBE_TIMEOUT", 20, minimum=1)
# A booted guest has this long to say it is ready (agent, or marker); it is asked every POLL s.
GUEST_READY_TIMEOUT = env.number("VDI_GUEST_READY_TIMEOUT", 600, minimum=10)
GUEST_READY_POLL = env.number("VDI_GUEST_READY_POLL", 2, minimum=1)

_timing_problems = problems(Timing(
    shutdown_timeout=SHUTDOWN_TIMEOUT, operation_lease=OPERATION_LEASE, stuck_after=STUCK_AFTER,
    host_outage_window=HOST_OUTAGE_WINDOW, host_retry_max=HOST_RETRY_MAX_SECONDS,
    visibility_timeout=TASK_VISIBILITY_TIMEOUT, console_heartbeat=CONSOLE_HEARTBEAT,
    console_stale=CONSOLE_STALE))
if _timing_problems:
    raise ImproperlyConfigured("Timing settings that do not fit together:\n- "
                               + "\n- ".join(_timing_problems))
if WEBHOOK_BACKOFF_MAX >= TASK_VISIBILITY_TIMEOUT:
    raise ImproperlyConfigured(
        f"VDI_WEBHOOK_BACKOFF_MAX: must be below VDI_TASK_VISIBILITY_TIMEOUT "
        f"({TASK_VISIBILITY_TIMEOUT}), got {WEBHOOK_BACKOFF_MAX}")

LOG_LEVEL = env.choice("VDI_LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR"))
# plain: one line for people; json: one JSON object a line for a log pipeline. Both carry the
# request id and user of a web request and the task id of a Celery task (vdi/request_log.py).
LOG_FORMAT = env.choice("VDI_LOG_FORMAT", "plain", ("plain", "json"))
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"context": {"()": "vdi.request_log.ContextFilter"}},
    "formatters": {
        "plain": {"()": "vdi.request_log.PlainFormatter",
                  "format": "%(asctime)s %(levelname)-7s %(name)s%(context)s: %(message)s"},
        "json": {"()": "vdi.request_log.JsonFormatter"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT,
                             "filters": ["context"]}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
