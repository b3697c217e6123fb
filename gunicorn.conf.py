"""gunicorn settings for `make run`; every value can be overridden from the environment."""
import multiprocessing
import os
import sys

# The worker class and its limits live in the project (network/worker.py), whatever the cwd.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# Files the master creates (the metrics directory) are the owner's alone, as everything under
# var/ (stalwart_site/varfiles.py); the workers inherit it.
os.umask(0o077)

bind = [f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8080')}"]
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count() * 2 + 1))

# --- serving model (docs/http-service.md#the-serving-model) -------------------------------------
# asgi: an event loop per worker, so that clients who dribble their requests or hold connections
# open (EventSource, WebSocket) cost a socket each, not a worker; the limits below are enforced
# there (network/worker.py). sync: the former model, one request at a time per worker, kept as a
# fallback; it enforces none of them and a slow client holds a whole worker.
SERVER_MODEL = os.environ.get("SERVER_MODEL", "asgi").strip().lower() or "asgi"
if SERVER_MODEL == "asgi":
    from network.worker import limits as _limits

    # A bad HTTP_* value stops the master here, not each worker at boot. A WebSocket message is
    # held whole in memory, as a request body is: the same largest size (HTTP_MAX_BODY), above
    # the JMAP maxSizeRequest, so that a JMAP message over that is answered with the limit error
    # (jmapapi.websocket) instead of a close.
    websocket_max_message_size = _limits()["max_body"]
    worker_class = "network.worker.Worker"
    wsgi_app = "stalwart_site.asgi:application"
    asgi_loop = "asyncio"
    asgi_lifespan = "off"  # Django has no lifespan handler
    worker_connections = int(os.environ.get("WORKER_CONNECTIONS", "1000"))
elif SERVER_MODEL == "sync":
    worker_class = "sync"
    wsgi_app = "stalwart_site.wsgi:application"
else:
    raise SystemExit(f"SERVER_MODEL must be asgi or sync, got {SERVER_MODEL!r}")
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = 10
keepalive = 5
# The access log carries no credentials and no query string (gunicorn's default prints the whole
# request line): an EventSource token travels in the query (docs/push.md), and so may other
# one-time values. Of the headers only the Referer and the User-Agent are logged; the RSVP page
# sends only its origin as a Referer (Referrer-Policy: strict-origin).
accesslog = os.environ.get("ACCESS_LOG", "-") or None  # empty: no access log
access_log_format = '%(h)s %(l)s %(u)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s "%(f)s" "%(a)s"'
# The calendar invitations' answer links carry a token in their query: should the format above
# ever bring the query string back, it is logged as [redacted].
logger_class = "network.accesslog.RedactingLogger"
errorlog = "-"
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")

# --- Prometheus metrics across workers ----------------------------------------------------------
# Each worker keeps its counters in files under PROMETHEUS_MULTIPROC_DIR, and a scrape adds up
# every file, whichever worker answers (telemetry/metrics.py). The variable must be set before
# any worker imports prometheus_client, hence here, in the master.
_var_dir = os.environ.get("STALWART_VAR_DIR") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "var")
PROMETHEUS_MULTIPROC_DIR = os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", os.path.join(_var_dir, "prometheus"))


def on_starting(server):
    # A new server starts from zero: files of a previous run would add their counts to ours.
    os.makedirs(PROMETHEUS_MULTIPROC_DIR, exist_ok=True)
    if os.environ.get("STALWART_METRICS_DIR_READY") == "1":
        return  # manage.py serve emptied it for the servers it starts side by side
    for name in os.listdir(PROMETHEUS_MULTIPROC_DIR):
        if name.endswith(".db"):
            os.remove(os.path.join(PROMETHEUS_MULTIPROC_DIR, name))


def post_worker_init(worker):
    # The application is loaded: take its objects out of the garbage collector's full walks
    # (stalwart_site/settle.py), which otherwise pause a request for about 100 ms.
    from stalwart_site.settle import settle

    settle()
    from django.conf import settings

    if settings.configured:  # not in the bare servers of bench/
        # why: as settle; Django is set up by now in the project's workers only.
        from stalwart_site import checkpoint

        checkpoint.start()  # SQLite's WAL checkpoint off the request path


def child_exit(server, worker):
    # A worker's counters stay in the total after it exits; its live gauges go with it.
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


# --- TLS: the ACME certificates (certificates/tls.py) -----------------------------------------
# Called only when certfile and keyfile are set: gunicorn's context, with the stored ACME
# certificates chosen by SNI and reloaded when renewed.
def ssl_context(conf, default_ssl_context_factory):
    from certificates.tls import server_context
    return server_context(default_ssl_context_factory)
