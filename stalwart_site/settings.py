"""Settings for the Stalwart HTTP service.

Everything an operator may change comes from environment variables (see docs/configuration.md);
nothing here needs editing for a deployment.
"""
import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from . import varfiles
from .env import env_bool, env_int, env_list, env_str, persistent_secret

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("STALWART_VAR_DIR", str(BASE_DIR / "var")))
# Before anything is written there: every file under var/ is owner-only.
varfiles.secure(VAR_DIR)

SECRET_KEY = persistent_secret("SECRET_KEY", VAR_DIR / "secret_key")
# The key that encrypts the secrets stored in the database (registry/crypto.py), and the
# previous ones, which still decrypt until `manage.py rotate_encryption_key` has run.
ENCRYPTION_KEY = env_str("STALWART_ENCRYPTION_KEY")
ENCRYPTION_KEYS_OLD = env_list("STALWART_ENCRYPTION_KEYS_OLD", [])
DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
# The URL clients use to reach this server; it appears in discovery documents and links.
# Without PUBLIC_URL, the address `make run HOST=… PORT=…` serves on (the first listener is
# created there), so that what the server advertises is where it answers.
_host = env_str("HOST", "127.0.0.1")
_host = "127.0.0.1" if _host in ("", "0.0.0.0", "::") else (f"[{_host}]" if ":" in _host else _host)
# Set: every advertised URL (JMAP session, OAuth and OIDC discovery, device verification) starts
# with it. Unset, and SystemSettings.publicUrl unset too, they are derived from each request
# (network/endpoint.py: public_base), so that a server on another port or name is reachable at
# what it advertises; PUBLIC_URL below is then only the fallback of commands and cookies.
PUBLIC_URL_CONFIGURED = env_str("PUBLIC_URL").rstrip("/")
PUBLIC_URL = PUBLIC_URL_CONFIGURED or f"http://{_host}:{env_str('PORT', '8080')}"
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [PUBLIC_URL])

INSTALLED_APPS = [
    "stalwart_site.apps.StalwartAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "registry",
    "security",
    "directories",
    "accounts",
    "journal",
    "jmapapi",
    "blobs",
    "cli",
    "oauth2_provider",
    "oauth",
    "wellknown",
    "telemetry",
    "network",
    "contactform",
    "certificates",
    # No models: the Sieve language library (validate and run scripts), for delivery and JMAP.
    "sieve",
    "mail",
    # Identities, the vacation response, the relay routes and the outbound engine.
    "submission",
    # Full-text search behind one interface (SQLite FTS5 or PostgreSQL tsvector).
    "fulltext",
    # Address books and vCards (the store under CardDAV; no HTTP of its own).
    "contacts",
    # The calendar store (calendars, objects, the occurrence index) under CalDAV.
    "calendars",
    # Mail in: LMTP, `manage.py deliver`, the Sieve scripts of RFC 9661 and what delivery runs.
    "delivery",
    # WebDAV: the /dav tree (principals, the file store, the protocol layer for calendars and
    # contacts).
    "dav",
    # The /calendar/rsvp page the answer links of iMIP invitations open.
    "rsvp",
    # No models: its `manage.py spectacular` command writes /api/openapi.json to a file.
    "drf_spectacular",
]

# django-prometheus's pair brackets the chain (its request, latency and response counters);
# telemetry's counter comes next, so that it also sees what WhiteNoise answers. One chain for
# every request: what only pages need is wrapped by network.middleware.pages_only(), which
# machine endpoints (/jmap, /api, /auth/, …) pass straight through.
MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "telemetry.middleware.RequestMetricsMiddleware",
    "network.middleware.EdgeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "network.middleware.PageStaticFiles",  # whitenoise
    "network.middleware.PageSessions",
    "network.middleware.PageCommon",
    "network.middleware.PageCsrf",
    "network.middleware.PageAuthentication",
    "network.middleware.RateLimitMiddleware",
    "network.middleware.PageExpiredPassword",
    "network.middleware.PageMessages",
    "network.middleware.PageClickjacking",
    "stalwart_site.csp.PageCspMiddleware",
    "telemetry.middleware.PrometheusAfter",
]

ROOT_URLCONF = "stalwart_site.urls"
WSGI_APPLICATION = "stalwart_site.wsgi.application"

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
# SQLite under var/ unless DATABASE_URL names another database (PostgreSQL for scale-out).
DATABASE_URL = env_str("DATABASE_URL")
# Every SQLite database the server opens, under var/ or named by a sqlite:// DATABASE_URL, is
# opened this way: WAL lets gunicorn's workers read while one writes; IMMEDIATE takes the write
# lock at BEGIN, so that concurrent writers queue (up to `timeout` seconds, SQLite's busy
# timeout) instead of failing mid-way with "database is locked" when a transaction that began
# by reading tries to write after another writer committed.
# A serving process checkpoints the WAL from a thread of its own every
# SQLITE_CHECKPOINT_INTERVAL seconds (stalwart_site/checkpoint.py; 0: never), so that no request
# pays for it; a commit still checkpoints past SQLITE_WAL_AUTOCHECKPOINT pages (of 4 KiB).
SQLITE_CHECKPOINT_INTERVAL = env_int("SQLITE_CHECKPOINT_INTERVAL", 1)
SQLITE_WAL_AUTOCHECKPOINT = env_int("SQLITE_WAL_AUTOCHECKPOINT", 10000)
SQLITE_OPTIONS = {
    "init_command": ("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; "
                     f"PRAGMA wal_autocheckpoint={SQLITE_WAL_AUTOCHECKPOINT};"),
    "transaction_mode": "IMMEDIATE",
    "timeout": env_int("SQLITE_BUSY_TIMEOUT", 20),
}
if DATABASE_URL:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 60))}
    if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
        DATABASES["default"]["OPTIONS"] = {**SQLITE_OPTIONS, **DATABASES["default"].get("OPTIONS", {})}
        DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": VAR_DIR / "stalwart.sqlite3",
            # Keep each worker's connection: opening SQLite (and its PRAGMAs) per request costs
            # more than an authenticated API request with a cached verdict does otherwise.
            "CONN_MAX_AGE": env_int("DB_CONN_MAX_AGE", 600),
            "CONN_HEALTH_CHECKS": True,
            "OPTIONS": dict(SQLITE_OPTIONS),
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache ----------------------------------------------------------------------------------
# A shared Redis cache when REDIS_URL is set (several workers or nodes share counters and
# verdicts); process-local memory otherwise. Correctness never depends on the cache being
# shared: invalidation goes through per-type states kept in the database (registry app).
REDIS_URL = env_str("REDIS_URL")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env_str("CACHE_KEY_PREFIX", "stalwart"),
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "stalwart"}}

# --- JMAP push over EventSource (docs/push.md) -------------------------------------------------
# The Redis channel journaled commits are announced on (one per deployment: the cache prefix).
PUSH_CHANNEL = f"{env_str('CACHE_KEY_PREFIX', 'stalwart')}:journal"
# Open EventSource connections per account (across workers when REDIS_URL is set, per worker
# otherwise); 0 for no limit.
EVENTSOURCE_MAX_PER_ACCOUNT = env_int("EVENTSOURCE_MAX_PER_ACCOUNT", 25)
# A requested ping interval below the minimum is raised to it (the reference's 30 s); above the
# maximum it is refused with 400.
EVENTSOURCE_MIN_PING = env_int("EVENTSOURCE_MIN_PING", 30)
EVENTSOURCE_MAX_PING = env_int("EVENTSOURCE_MAX_PING", 3600)
# State frames of one connection are at least this far apart (the reference's
# eventSourceThrottle, 1000 ms); changes in between are coalesced.
EVENTSOURCE_THROTTLE_MS = env_int("EVENTSOURCE_THROTTLE_MS", 1000)
# Without Redis, how often a worker with open connections reads the journal's counters.
EVENTSOURCE_POLL_MS = env_int("EVENTSOURCE_POLL_MS", 500)
# How long a token from /api/token/eventsource may be used to open a stream.
EVENTSOURCE_TOKEN_TTL = env_int("EVENTSOURCE_TOKEN_TTL", 60)
# JMAP over WebSocket (docs/push.md#websocket): open connections per account (0: no limit). Its
# push uses the EventSource throttle, and its tokens (/api/token/websocket) the same TTL.
WEBSOCKET_MAX_PER_ACCOUNT = env_int("WEBSOCKET_MAX_PER_ACCOUNT", 25)
# The serving model gunicorn runs (gunicorn.conf.py reads the same variable; docs/http-service.md):
# only `asgi` serves WebSockets, so only there does the JMAP session advertise them.
SERVER_MODEL = env_str("SERVER_MODEL", "asgi").lower() or "asgi"
if SERVER_MODEL not in ("asgi", "sync"):
    raise ImproperlyConfigured(f"SERVER_MODEL must be asgi or sync, got {SERVER_MODEL!r}")
# Seconds a JMAP WebSocket may stay open with no push subscription and no message (0: forever).
WEBSOCKET_IDLE_TIMEOUT = env_int("WEBSOCKET_IDLE_TIMEOUT", 300)

# --- JMAP push over Web Push (RFC 8620 §7.2, RFC 8030/8291/8292; docs/push.md) -----------------
# The VAPID key (a P-256 private key, PEM): given in the variable itself or as a file's path.
# Without one, pushes carry no Authorization and the session advertises no webpush-vapid.
WEBPUSH_VAPID_KEY = env_str("WEBPUSH_VAPID_KEY")
WEBPUSH_VAPID_KEY_FILE = env_str("WEBPUSH_VAPID_KEY_FILE")
# The VAPID `sub` claim (the reference's webPushContact): empty for mailto:postmaster@<domain>.
WEBPUSH_CONTACT = env_str("WEBPUSH_CONTACT")
# Push subscriptions per account (the reference's maxSubscriptions, 15).
WEBPUSH_MAX_SUBSCRIPTIONS = env_int("WEBPUSH_MAX_SUBSCRIPTIONS", 15)
# The latest `expires` a subscription may have, in seconds from now (the reference's 7 days).
WEBPUSH_MAX_EXPIRES = env_int("WEBPUSH_MAX_EXPIRES", 7 * 24 * 3600)
# Attempts per message (the reference's pushMaxAttempts); after the last one fails the
# subscription is removed. The wait before attempt n+1 is WEBPUSH_RETRY_WAIT_MS * 2**(n-1).
WEBPUSH_MAX_ATTEMPTS = env_int("WEBPUSH_MAX_ATTEMPTS", 3)
WEBPUSH_RETRY_WAIT_MS = env_int("WEBPUSH_RETRY_WAIT_MS", 1000)
# Changes of one account within this window go out as one StateChange (the reference's pushThrottle).
WEBPUSH_THROTTLE_MS = env_int("WEBPUSH_THROTTLE_MS", 1000)
# Connect and read timeout of one push request, in seconds (the reference's pushRequestTimeout).
WEBPUSH_TIMEOUT = env_int("WEBPUSH_TIMEOUT", 10)
# The TTL header: how long the push service keeps a message for an offline device, in seconds.
WEBPUSH_TTL = env_int("WEBPUSH_TTL", 86400)
# Networks that URLs given by users (push endpoints) may reach although they are not public
# (loopback, private, link-local): CIDRs, comma-separated. Empty by default: none.
EGRESS_ALLOWED_NETWORKS = env_list("EGRESS_ALLOWED_NETWORKS", [])

# --- The delivery test, /api/live/delivery/<target> (docs/mail-delivery.md) --------------------
# The port the test speaks SMTP to on each mail exchanger (25; another for a lab's MX).
DELIVERY_TEST_SMTP_PORT = env_int("DELIVERY_TEST_SMTP_PORT", 25)
# Connect to loopback, private and other non-public addresses too (tests, labs). Off: the target
# is chosen by the caller, and the test must not become a way to reach the server's own network.
DELIVERY_TEST_ALLOW_PRIVATE = env_bool("DELIVERY_TEST_ALLOW_PRIVATE", False)
# At most this many mail exchangers, and addresses of each, are tried.
DELIVERY_TEST_MAX_MX = env_int("DELIVERY_TEST_MAX_MX", 5)
DELIVERY_TEST_MAX_IPS = env_int("DELIVERY_TEST_MAX_IPS", 4)
# A stage waits at most ?timeout= seconds (default 30, at most DELIVERY_TEST_MAX_TIMEOUT); the
# whole test at most DELIVERY_TEST_MAX_SECONDS.
DELIVERY_TEST_MAX_TIMEOUT = env_int("DELIVERY_TEST_MAX_TIMEOUT", 60)
DELIVERY_TEST_MAX_SECONDS = env_int("DELIVERY_TEST_MAX_SECONDS", 120)
# Delivery tests one account may run at once (across workers with REDIS_URL); 0 for no limit.
DELIVERY_TEST_MAX_PER_ACCOUNT = env_int("DELIVERY_TEST_MAX_PER_ACCOUNT", 2)

# --- Live telemetry: /api/live/tracing and /api/live/metrics (docs/telemetry.md) ---------------
# The Redis channel trace events travel on (with REDIS_URL; a file under var/trace otherwise).
TRACE_CHANNEL = f"{env_str('CACHE_KEY_PREFIX', 'stalwart')}:trace"
# Without Redis, how often a worker with live tracing streams reads new events from the file.
TRACE_POLL_MS = env_int("TRACE_POLL_MS", 250)
# Open live tracing/metrics streams per worker; 0 for no limit.
LIVE_MAX_STREAMS = env_int("LIVE_MAX_STREAMS", 50)

# --- Authentication -------------------------------------------------------------------------
AUTH_USER_MODEL = "accounts.Account"
AUTHENTICATION_BACKENDS = ["accounts.backends.StalwartBackend"]
# The password policy lives in the Authentication settings object, not in Django's validators.
AUTH_PASSWORD_VALIDATORS = []
LOGIN_URL = "admin:login"
LOGIN_REDIRECT_URL = "/"
# "name:password": logs in as an administrator whatever the database holds (recovery).
STALWART_RECOVERY_ADMIN = env_str("STALWART_RECOVERY_ADMIN")
# The domain of the first administrator and of bare login names when none is configured.
STALWART_DEFAULT_DOMAIN = env_str("STALWART_DEFAULT_DOMAIN", "example.org").lower()

# OAuth on django-oauth-toolkit: its models with our client model; tokens are kept hashed.
OAUTH2_PROVIDER_APPLICATION_MODEL = "oauth.OAuthClient"
OAUTH2_PROVIDER_DEVICE_GRANT_MODEL = "oauth.DeviceAuthorization"
OAUTH2_PROVIDER = {
    "COMPLIANT_BCP_RFC9700_TOKEN_STORAGE": True,
    "PKCE_REQUIRED": True,
    "ALLOWED_REDIRECT_URI_SCHEMES": ["http", "https"],
}

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_SECURE = PUBLIC_URL.startswith("https://")
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE

# --- /api on Django REST framework (network/drf.py) -------------------------------------------
# The views carry their own authentication and answers; these defaults only keep DRF from
# adding what the plain endpoints never did (sessions, CSRF, the browsable API); the content
# negotiation and exception handler are network.drf.ApiView's own (naming them here would
# import that module while DRF itself is being imported).
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": [],
    "DEFAULT_THROTTLE_CLASSES": [],
    "UNAUTHENTICATED_USER": None,
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # \u escapes, as Django's JsonResponse writes them.
    "UNICODE_JSON": False,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Stalwart HTTP API",
    "DESCRIPTION": "The /api endpoints (JMAP itself is described by RFC 8620 and /api/schema).",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_AUTHENTICATION": [],
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    # Path parameters are named as in the URL table, not guessed from models.
    "COMPONENT_SPLIT_REQUEST": True,
    "PREPROCESSING_HOOKS": ["network.drf.documented_endpoints"],
}

# --- Static files ---------------------------------------------------------------------------
STATIC_URL = "/static/"
STATIC_ROOT = VAR_DIR / "static"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

# The blob store (blobs/): files under var/blobs by default, or any S3-compatible store for
# scale-out (docs/jmap.md, "Blobs").
BLOB_STORE = env_str("BLOB_STORE", "file").lower()
if BLOB_STORE == "file":
    STORAGES["blobs"] = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": env_str("BLOB_DIR", str(VAR_DIR / "blobs")), "file_permissions_mode": 0o600,
                    "directory_permissions_mode": 0o700},
    }
elif BLOB_STORE == "s3":
    STORAGES["blobs"] = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": env_str("BLOB_S3_BUCKET"),
            "endpoint_url": env_str("BLOB_S3_ENDPOINT_URL") or None,
            "region_name": env_str("BLOB_S3_REGION") or None,
            "access_key": env_str("BLOB_S3_ACCESS_KEY_ID") or None,
            "secret_key": env_str("BLOB_S3_SECRET_ACCESS_KEY") or None,
            "location": env_str("BLOB_S3_PREFIX"),
            "default_acl": None,
            "file_overwrite": False,
            # A read spools to disk beyond 1 MB instead of holding the whole object in memory
            # (django-storages' default 0 never rolls over).
            "max_memory_size": 1024 * 1024,
        },
    }
    if not STORAGES["blobs"]["OPTIONS"]["bucket_name"]:
        raise ImproperlyConfigured("BLOB_STORE=s3 needs BLOB_S3_BUCKET.")
else:
    raise ImproperlyConfigured(f"BLOB_STORE must be file or s3, got {BLOB_STORE!r}")

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {"django.request": {"level": "ERROR"}},
}

# --- Outgoing mail (the contact form's submissions) ------------------------------------------
# An SMTP relay: by default the local mail server on port 25, as the reference delivers locally.
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)  # STARTTLS
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)  # implicit TLS (usually port 465)
if EMAIL_USE_TLS and EMAIL_USE_SSL:
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured("Set at most one of EMAIL_USE_TLS and EMAIL_USE_SSL.")
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10)  # seconds, per SMTP operation
SERVER_EMAIL = env_str("SERVER_EMAIL", "postmaster@localhost")
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", SERVER_EMAIL)
# DNS for the contact form's MX check: "host" or "host:port" entries ("[v6]:port"); empty uses
# /etc/resolv.conf. DNS_TIMEOUT bounds the whole check, in seconds.
DNS_SERVERS = env_list("DNS_SERVERS", [])
DNS_TIMEOUT = env_int("DNS_TIMEOUT", 5)

# --- Uploads -----------------------------------------------------------------------------------
# The event-loop worker (network/worker.py) lets a POST to the JMAP upload URL be this large
# (other bodies stop at HTTP_MAX_BODY); the session never advertises a maxSizeUpload above it.
HTTP_MAX_UPLOAD_BODY = max(env_int("HTTP_MAX_UPLOAD_BODY", 64 * 1024 * 1024), env_int("HTTP_MAX_BODY", 16 * 1024 * 1024))

# --- The change journal (journal app) --------------------------------------------------------
# `manage.py journal prune` forgets changes older than JOURNAL_MAX_AGE_DAYS, and beyond the
# JOURNAL_MAX_CHANGES newest of each account and type (0: no such limit); a client whose state
# is older gets cannotCalculateChanges and resynchronises.
JOURNAL_MAX_AGE_DAYS = env_int("JOURNAL_MAX_AGE_DAYS", 30)
JOURNAL_MAX_CHANGES = env_int("JOURNAL_MAX_CHANGES", 0)
# The most journal entries one /queryChanges reads before asking the client to query again.
JOURNAL_QUERY_CHANGES_MAX = env_int("JOURNAL_QUERY_CHANGES_MAX", 10_000)

# --- Contacts (contacts app) ------------------------------------------------------------------
# The address book every account gets on first use (its href segment; empty: none is created)
# and its display name, followed by the account's address in parentheses, as the reference.
CONTACTS_DEFAULT_SLUG = env_str("CONTACTS_DEFAULT_SLUG", "default")
CONTACTS_DEFAULT_DISPLAY_NAME = env_str("CONTACTS_DEFAULT_DISPLAY_NAME", "Stalwart Address Book")
# The largest vCard stored, in octets (CardDAV max-resource-size), and address books per account.
CONTACTS_MAX_VCARD_SIZE = env_int("CONTACTS_MAX_VCARD_SIZE", 524_288)
CONTACTS_MAX_BOOKS = env_int("CONTACTS_MAX_BOOKS", 250)
# The most cards one addressbook-query answers, whatever limit the client asks (507 beyond).
CONTACTS_MAX_RESULTS = env_int("CONTACTS_MAX_RESULTS", 2000)

# --- The calendar store (calendars app; docs/calendars.md) ----------------------------------
# The reference's Calendar object: the largest iCalendar resource in octets, the most instances
# a finite recurrence may have (an open one is indexed up to it), attendees per instance,
# calendars per account, objects per account (0: no limit), and the first and last moments an
# instance may touch (CalDAV min-date-time / max-date-time).
CALENDAR_MAX_ICALENDAR_SIZE = env_int("CALENDAR_MAX_ICALENDAR_SIZE", 524_288)
CALENDAR_MAX_RECURRENCE_EXPANSIONS = env_int("CALENDAR_MAX_RECURRENCE_EXPANSIONS", 3000)
CALENDAR_MAX_ATTENDEES = env_int("CALENDAR_MAX_ATTENDEES", 20)
CALENDAR_MAX_CALENDARS = env_int("CALENDAR_MAX_CALENDARS", 250)
CALENDAR_MAX_EVENTS = env_int("CALENDAR_MAX_EVENTS", 0)
CALENDAR_MIN_DATE_TIME = env_str("CALENDAR_MIN_DATE_TIME", "00010101T000000Z")
CALENDAR_MAX_DATE_TIME = env_str("CALENDAR_MAX_DATE_TIME", "99991231T235959Z")
# An open-ended recurrence is indexed this many days past the moment it is stored; a query
# reaching further reads the object itself.
CALENDAR_INDEX_HORIZON_DAYS = env_int("CALENDAR_INDEX_HORIZON_DAYS", 730)
# Every account gets a calendar of this name on first use (empty: none), displayed as
# "<display name> (<address>)".
CALENDAR_DEFAULT_HREF_NAME = env_str("CALENDAR_DEFAULT_HREF_NAME", "default")
CALENDAR_DEFAULT_DISPLAY_NAME = env_str("CALENDAR_DEFAULT_DISPLAY_NAME", "Stalwart Calendar")
# iMIP arriving by mail (docs/calendars.md "Scheduling by mail"): an off switch for applying
# invitations and replies found in delivered mail, and whose word that the sender is genuine
# counts: the DMARC result of the Authentication-Results header the MTA in front adds under this
# authserv-id. (The reference's itipMaxSize and autoAddInvitations are x:CalendarScheduling's.)
CALENDAR_IMIP_INBOUND = env_bool("CALENDAR_IMIP_INBOUND", True)
CALENDAR_IMIP_REQUIRE_DMARC = env_bool("CALENDAR_IMIP_REQUIRE_DMARC", True)
CALENDAR_IMIP_AUTHSERV_ID = env_str("CALENDAR_IMIP_AUTHSERV_ID", "")
# --- WebDAV (dav app) -------------------------------------------------------------------------
# Bytes of one file PUT into /dav/file (the reference's FileStorage.maxSize); beyond: 413.
DAV_MAX_FILE_SIZE = env_int("DAV_MAX_FILE_SIZE", 25 * 1024 * 1024)
# Bytes of an XML request body (PROPFIND, PROPPATCH, REPORT, LOCK, ACL, MKCOL); beyond: 413.
DAV_MAX_XML_SIZE = env_int("DAV_MAX_XML_SIZE", 1024 * 1024)
# Responses one PROPFIND or REPORT lists at most (WebDav.maxResults); beyond: a 507 entry.
DAV_MAX_RESULTS = env_int("DAV_MAX_RESULTS", 2000)
# Bytes of all dead properties of one resource, serialised (WebDav.deadPropertyMaxSize).
DAV_DEAD_PROPERTY_MAX_SIZE = env_int("DAV_DEAD_PROPERTY_MAX_SIZE", 16384)
# Bytes of one writable live property value, e.g. displayname (WebDav.livePropertyMaxSize).
DAV_LIVE_PROPERTY_MAX_SIZE = env_int("DAV_LIVE_PROPERTY_MAX_SIZE", 250)
# Seconds a lock lasts at most (WebDav.maxLockTimeout), and locks one user may hold (maxLocks).
DAV_MAX_LOCK_TIMEOUT = env_int("DAV_MAX_LOCK_TIMEOUT", 3600)
DAV_MAX_LOCKS = env_int("DAV_MAX_LOCKS", 10)
# Nodes (files and folders) below one account's file home at most; a MKCOL, PUT or COPY beyond
# gets 507 (the reference's FileStorage.maxFiles + maxFolders; 0: no limit).
DAV_MAX_NODES = env_int("DAV_MAX_NODES", 100_000)

# --- Sending (submission app) ----------------------------------------------------------------
# The MtaRoute (x:MtaRoute, Settings › MTA › Outbound › Routes) that submitted mail is relayed
# through, by its name.
SUBMISSION_ROUTE = env_str("SUBMISSION_ROUTE", "relay")
# The name this server gives in EHLO to the relay; empty: the machine's fully qualified name.
SUBMISSION_EHLO_NAME = env_str("SUBMISSION_EHLO_NAME", "")
# EmailSubmission/set refuses a message with more envelope recipients (tooManyRecipients) or
# more octets (tooLarge) than these.
SUBMISSION_MAX_RECIPIENTS = env_int("SUBMISSION_MAX_RECIPIENTS", 100)
SUBMISSION_MAX_SIZE = env_int("SUBMISSION_MAX_SIZE", 75_000_000)
# A recipient the relay refused for now is tried again after SUBMISSION_RETRY_FIRST seconds,
# the wait doubling up to SUBMISSION_RETRY_MAX; SUBMISSION_GIVE_UP_AFTER seconds after the
# message was due it is given up (delivered: "no").
SUBMISSION_RETRY_FIRST = env_int("SUBMISSION_RETRY_FIRST", 60)
SUBMISSION_RETRY_MAX = env_int("SUBMISSION_RETRY_MAX", 4 * 3600)
SUBMISSION_GIVE_UP_AFTER = env_int("SUBMISSION_GIVE_UP_AFTER", 5 * 86400)

# --- Delivery (delivery app: `manage.py lmtp`, `manage.py deliver`) ---------------------------
# Where the LMTP listener binds: loopback by default, since LMTP has no authentication (the
# MTA on this machine hands mail over). See docs/mail-delivery.md.
LMTP_HOST = env_str("LMTP_HOST", "127.0.0.1")
LMTP_PORT = env_int("LMTP_PORT", 2424)
# Processes of `manage.py lmtp` (the parent binds, each worker accepts on the same socket): one
# per core, since filing a message is CPU work under one interpreter lock per process.
LMTP_WORKERS = env_int("LMTP_WORKERS", min(os.cpu_count() or 1, 8))
# The largest message LMTP and `deliver` take, in bytes (552 5.3.4 / exit 65, EX_DATAERR, beyond).
LMTP_MAX_MESSAGE_SIZE = env_int("LMTP_MAX_MESSAGE_SIZE", 50_000_000)
# How many Sieve scripts an account may store (RFC 9661 maxNumberScripts).
SIEVE_MAX_SCRIPTS = env_int("SIEVE_MAX_SCRIPTS", 100)
