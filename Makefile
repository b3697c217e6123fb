# Set-up and day-to-day commands. Needs only python3 and make.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8080
export HOST PORT

.PHONY: run serve install install-dev migrate test test-fast bench bench-jmap bench-oauth clean browser

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
# once) and serves on http://$(HOST):$(PORT) with gunicorn.
run: migrate
	$(BIN)/python manage.py bootstrap
	$(BIN)/gunicorn -c gunicorn.conf.py stalwart_site.wsgi

# Debian's Chromium for the browser tests (no browser download; installed when missing).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
	  else echo "chromium is missing: apt-get install chromium (as root)" >&2; exit 1; fi; }

test: install-dev browser
	$(BIN)/python -m pytest

# Logins per second per password hash algorithm (docs/performance.md); needs wrk (apt-get install wrk).
# Options through BENCH_ARGS, e.g. make bench BENCH_ARGS="--duration 5 --workers 3".
bench: install-dev
	$(BIN)/python bench/logins.py $(BENCH_ARGS)

# JMAP requests per second with Basic auth (Core/echo, session, x:Authentication/get) against bare
# WSGI (docs/performance.md); needs wrk. Options through BENCH_ARGS, e.g. BENCH_ARGS="--duration 5".
bench-jmap: install-dev
	$(BIN)/python bench/jmap.py $(BENCH_ARGS)

# OAuth requests per second (introspection with Basic, Core/echo with a Bearer access token got
# through dynamic registration and the code flow) against bare WSGI (docs/performance.md); needs wrk.
bench-oauth: install-dev
	$(BIN)/python bench/oauth.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) var .pytest_cache
