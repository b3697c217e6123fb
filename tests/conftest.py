import pytest

from .live import live_server


@pytest.fixture(scope="session")
def live():
    """One gunicorn server (2 workers) for the session's end-to-end tests."""
    with live_server(workers=2) as server:
        yield server
