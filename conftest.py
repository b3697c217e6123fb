"""Fixtures shared by every app's tests."""
from __future__ import annotations

import os

import pytest

# Playwright's sync API runs an event loop in the test thread; the ORM calls made from the same
# tests are still synchronous and safe.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

# Session-wide resources live here, not in a test folder's conftest: a fixture imported into
# another module would be a second instance (a second browser, a second server).
from tests.browser import chromium, page  # noqa: E402,F401  (one browser for the whole session)

from tests.clients import STRONG_PASSWORD  # noqa: E402,F401  (one strong password for every test)


@pytest.fixture(autouse=True)
def _plain_static_storage(settings):
    """Unit tests run without collectstatic; the live-server tests use the real manifest."""
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


@pytest.fixture(autouse=True)
def _own_blob_store(_plain_static_storage, settings, tmp_path_factory):
    """Each test's blobs in a directory of its own (not the worktree's var/)."""
    settings.STORAGES = {
        **settings.STORAGES,
        "blobs": {"BACKEND": "django.core.files.storage.FileSystemStorage",
                  "OPTIONS": {"location": str(tmp_path_factory.mktemp("blobs"))}},
    }


@pytest.fixture(scope="session", autouse=True)
def _own_rate_counters(tmp_path_factory):
    """Rate-limit counters in a file of this run's (another run on the machine resets its own)."""
    from security import ratelimit

    ratelimit._sqlite.use(tmp_path_factory.mktemp("ratelimit") / "ratelimit.sqlite3")


@pytest.fixture(autouse=True)
def _fresh_caches():
    """Database rows roll back between tests; what was cached under their states must go too."""
    from django.core.cache import cache

    from registry import memo
    from security import ratelimit

    from accounts import external

    def clear():
        cache.clear()
        ratelimit.reset()
        memo.clear()
        # Directory backends are kept under the Directory state too (and own connections).
        external.forget_backends()

    clear()
    yield
    clear()


@pytest.fixture
def domain(db):
    from accounts.models import Domain, SystemSettings

    dom, _ = Domain.objects.get_or_create(name="example.org")
    system = SystemSettings.load()
    system.default_domain = dom
    system.save()
    return dom


@pytest.fixture
def make_account(db, domain):
    """make_account(name, password=None, roles_mode="user", **fields) -> Account (via the services)."""
    from accounts import services
    from accounts.models import Account

    def make(name="alice", password=STRONG_PASSWORD, roles_mode=Account.RolesMode.USER, kind="user", **fields):
        values = {"name": name, "domain": domain.pk, "roles_mode": roles_mode, "kind": kind, **fields}
        return services.create_account(values, "test", password=password if kind == "user" else None)

    return make


@pytest.fixture
def builtin_role_rows(db):
    """The built-in roles as migration 0002 makes them, for a transaction=True test: a test that
    committed before it emptied the tables (serialized_rollback would restore them, but clashes
    with the content types that the other test's flush created again)."""
    import importlib

    from django.apps import apps as global_apps

    importlib.import_module("accounts.migrations.0002_builtin_roles").create(global_apps, None)


@pytest.fixture
def admin_account(make_account):
    from accounts.models import Account

    return make_account("admin", roles_mode=Account.RolesMode.ADMIN, description="System administrator")


@pytest.fixture
def admin_client(client, admin_account):
    assert client.login(username="admin@example.org", password=STRONG_PASSWORD)
    return client


@pytest.fixture
def user_client(client, make_account):
    make_account("bob", description="Bob Example")
    assert client.login(username="bob@example.org", password=STRONG_PASSWORD)
    return client


@pytest.fixture(scope="session")
def live():
    """One gunicorn server (2 workers, its own database) for the session's end-to-end tests."""
    from tests.live import live_server

    with live_server(workers=2) as server:
        yield server


@pytest.fixture
def jmap(client, admin_account):
    """A JMAP client over the test client, as the administrator (tests/clients.py)."""
    from tests.clients import Jmap, basic

    return Jmap(client, basic("admin@example.org"))


@pytest.fixture
def user_jmap(client, make_account):
    """A JMAP client as an ordinary user."""
    from tests.clients import Jmap, basic

    make_account("bob")
    return Jmap(client, basic("bob@example.org"))
