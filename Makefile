# Set-up and day-to-day commands. Needs only python3 and make.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8080
export HOST PORT

.PHONY: run serve install install-dev migrate test test-fast bench bench-jmap bench-directory bench-oauth bench-ratelimit bench-discovery bench-slow bench-mail bench-dav bench-eventsource bench-soak bench-lmtp clean browser promtool pebble cyrus slapd jsclients litmus

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt $(VENV)/.installed
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

migrate: install
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py collectstatic --noinput --verbosity 0

# Creates .venv, installs, migrates, creates the first administrator (its password is printed
# once) and serves with gunicorn on every enabled HTTP listener (manage.py serve; the first
# listener, "http", is created on $(HOST):$(PORT) by the first migration).
run: migrate
	$(BIN)/python manage.py bootstrap
	$(BIN)/python manage.py serve

# Debian's Chromium for the browser tests (no browser download; installed when missing).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
	  else echo "chromium is missing: apt-get install chromium (as root)" >&2; exit 1; fi; }

# Debian's prometheus package for promtool, which checks the scraped metrics in the tests.
promtool:
	@command -v promtool >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq --no-install-recommends prometheus >/dev/null; \
	  else echo "promtool is missing: apt-get install prometheus (as root)" >&2; exit 1; fi; }

# Debian's pebble package (a test ACME CA, with pebble-challtestsrv for its DNS) for the
# certificates round trip (certificates/tests/test_pebble.py).
pebble:
	@command -v pebble >/dev/null 2>&1 && command -v pebble-challtestsrv >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq --no-install-recommends pebble >/dev/null; \
	  else echo "pebble is missing: apt-get install pebble (as root)" >&2; exit 1; fi; }

# Debian's Cyrus IMAP (cyrus-imapd, and cyrus-caldav for its httpd with JMAP; sasl2-bin for
# saslpasswd2): the peer bench/jmap.py compares JMAP with (bench/cyrus.py starts it per run).
cyrus:
	@test -x /usr/lib/cyrus/bin/httpd && command -v saslpasswd2 >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends cyrus-imapd cyrus-caldav sasl2-bin >/dev/null; \
	  else echo "cyrus is missing: apt-get install cyrus-imapd cyrus-caldav sasl2-bin (as root)" >&2; exit 1; fi; }

# Debian's OpenLDAP server for the LDAP directory tests (tests/slapd.py starts its own instances
# on loopback ports). The package's own service is not wanted: when the install started it, it
# is stopped again (policy-rc.d usually prevents the start in containers anyway).
slapd:
	@test -x /usr/sbin/slapd && test -x /usr/sbin/slapadd || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends slapd ldap-utils >/dev/null \
	    && { invoke-rc.d slapd stop >/dev/null 2>&1 || true; }; \
	  else echo "slapd is missing: apt-get install slapd ldap-utils (as root)" >&2; exit 1; fi; }

# The JavaScript JMAP client the mail live tests drive (jmap-jam, pinned with its dependencies by
# tests/js/package-lock.json), installed with `npm ci` when the lock file is newer than the last
# install. npm comes from Debian's nodejs and npm packages, installed when missing as root;
# without npm the jmap-jam test is skipped and says why.
jsclients:
	@command -v npm >/dev/null 2>&1 || [ "$$(id -u)" != 0 ] || { apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null || true; }
	@if ! command -v npm >/dev/null 2>&1; then \
	  echo "npm is missing: the jmap-jam tests will be skipped (apt-get install nodejs npm)" >&2; \
	elif [ ! -f tests/js/node_modules/.installed ] || [ tests/js/package-lock.json -nt tests/js/node_modules/.installed ]; then \
	  npm ci --prefix tests/js --no-audit --no-fund --loglevel=error && touch tests/js/node_modules/.installed; \
	fi

# Debian's litmus, the WebDAV compliance suite dav/tests/test_litmus.py runs against /dav/file.
litmus:
	@command -v litmus >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq --no-install-recommends litmus >/dev/null; \
	  else echo "litmus is missing: apt-get install litmus (as root)" >&2; exit 1; fi; }

# TEST_WORKERS=2 runs the suite on two pytest-xdist workers (much of it waits on servers,
# browsers and clients it starts); each has its own databases, Redis database and var directory
# (tests/workers.py). One process (0) until the parallel run is green on PostgreSQL too.
TEST_WORKERS ?= 0
test: install-dev browser promtool pebble slapd jsclients litmus
	$(BIN)/python -m pytest -n $(TEST_WORKERS)

# Logins per second per password hash algorithm (docs/performance.md); needs wrk (apt-get install wrk).
# Options through BENCH_ARGS, e.g. make bench BENCH_ARGS="--duration 5 --workers 3".
bench: install-dev
	$(BIN)/python bench/logins.py $(BENCH_ARGS)

# JMAP requests per second with Basic auth (Core/echo, session, every settings singleton's get)
# beside the bare server and Cyrus IMAP's JMAP in the same run (docs/performance.md); needs wrk.
# Options through BENCH_ARGS, e.g. BENCH_ARGS="--duration 5".
bench-jmap: install-dev cyrus
	$(BIN)/python bench/jmap.py $(BENCH_ARGS)

# Core/echo with Basic through an LDAP directory (a local slapd) beside the internal directory in
# the same run, with slapd's bind count (docs/performance.md); needs wrk.
bench-directory: install-dev slapd
	$(BIN)/python bench/directory.py $(BENCH_ARGS)

# OAuth requests per second (introspection with Basic, Core/echo with a Bearer access token got
# through dynamic registration and the code flow) against bare WSGI (docs/performance.md); needs wrk.
bench-oauth: install-dev
	$(BIN)/python bench/oauth.py $(BENCH_ARGS)

# The anonymous rate limit under load: a steady rate under it (no 429, no 5xx) and one over it
# (only 307 and 429), beside bare WSGI (docs/performance.md); needs wrk and hey (apt-get install wrk hey).
bench-ratelimit: install-dev
	$(BIN)/python bench/ratelimit.py $(BENCH_ARGS)

# Discovery endpoints (autoconfig GET, autodiscover POST, /healthz/live) beside bare WSGI
# (docs/performance.md); needs wrk.
bench-discovery: install-dev
	$(BIN)/python bench/discovery.py $(BENCH_ARGS)

# The mail store's hot JMAP reads at 1,000 and 100,000 messages (bench/mailgen.py fills the
# account) beside the bare server and Core/echo (docs/performance.md); needs wrk. On PostgreSQL:
# DATABASE_URL=postgres://... make bench-mail.
bench-mail: install-dev
	$(BIN)/python bench/mail.py $(BENCH_ARGS)

# /dav/cal at 1,000 and 10,000 events beside Radicale 3.9 (PyPI, in its own venv under var/, made
# by the script) on the same events: PUT, PROPFIND Depth 1, sync-collection, calendar-query,
# calendar-multiget, and a wrk line beside the bare server (docs/performance.md); needs wrk.
# On PostgreSQL: DATABASE_URL=postgres://... make bench-dav.
bench-dav: install-dev
	@command -v wrk >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk >/dev/null; \
	  else echo "wrk is missing: apt-get install wrk (as root)" >&2; exit 1; fi; }
	$(BIN)/python bench/dav.py $(BENCH_ARGS)

# Throughput with 500 slow clients held open, sync vs asgi serving models, and Core/echo and the
# session on both in the same run (docs/performance.md); needs wrk.
bench-slow: install-dev
	$(BIN)/python bench/slow_clients.py $(BENCH_ARGS)

# 1,000 EventSource streams held: Core/echo with and without them, memory per connection, and the
# fan-out latency of one change to every stream (docs/performance.md); needs wrk. With REDIS_URL
# exported, changes travel through Redis.
bench-eventsource: install-dev
	$(BIN)/python bench/eventsource.py $(BENCH_ARGS)

# Ten minutes of EventSource churn (200 clients opening and closing streams, a change a second):
# the workers' memory must stay flat and no connection may be left (docs/performance.md).
bench-soak: install-dev
	$(BIN)/python bench/eventsource_soak.py $(BENCH_ARGS)

# Import through LMTP: messages per second over several sessions into `manage.py lmtp --workers`,
# and the listener's memory before and after (docs/performance.md). BENCH_ARGS="--messages 10000".
bench-lmtp: install-dev
	$(BIN)/python bench/lmtp.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) var .pytest_cache tests/js/node_modules
