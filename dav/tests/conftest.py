import pytest

from .helpers import Dav


@pytest.fixture
def alice(client, make_account, builtin_role_rows):
    make_account("alice", description="Alice Example")
    return Dav(client, "alice@example.org")


@pytest.fixture
def bob(client, make_account, builtin_role_rows):
    make_account("bob", description="Bob Example")
    return Dav(client, "bob@example.org")
