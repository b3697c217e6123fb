"""/healthz/live and /healthz/ready, including readiness against real failures: a server whose
cache (Redis) is unreachable and one whose database cannot be opened."""
import pytest
import requests

from tests.live import free_port, live_server

from .helpers import problem_of

OK = {"type": "about:blank", "title": "OK", "status": 200, "detail": "OK"}


@pytest.mark.parametrize("path", ["/healthz/live", "/healthz/ready"])
def test_ok(client, db, path):
    resp = client.get(path)
    assert resp.status_code == 200
    assert resp["Content-Type"] == "application/problem+json"
    assert resp.json() == OK
    assert client.head(path).status_code == 200


@pytest.mark.parametrize("path", ["/healthz/live", "/healthz/ready"])
@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "OPTIONS"])
def test_wrong_methods(client, db, path, method):
    resp = client.generic(method, path)
    problem_of(resp, 405)
    assert resp["Allow"] == "GET, HEAD"


def test_other_paths_are_not_found(client, db):
    assert client.get("/healthz/other").status_code == 404


def test_ready_on_the_live_server(live):
    resp = requests.get(live.url + "/healthz/ready", timeout=30)
    assert resp.status_code == 200 and resp.json() == OK


def test_cache_down():
    env = {"REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    with live_server(workers=1, extra_env=env) as server:
        assert requests.get(server.url + "/healthz/live", timeout=30).json() == OK
        resp = requests.get(server.url + "/healthz/ready", timeout=30)
        assert resp.status_code == 503
        assert resp.headers["Content-Type"] == "application/problem+json"
        body = resp.json()
        assert body["title"] == "Service Unavailable" and body["status"] == 503
        assert body["detail"].startswith("cache unavailable: ")
        assert "database" not in body["detail"]


def _unreachable_database(tmp_path) -> dict:
    return {"DATABASE_URL": f"sqlite:///{tmp_path}/missing-directory/stalwart.sqlite3"}


def test_readiness_names_an_unreachable_database(tmp_path):
    """The readiness check itself, in a process whose database cannot be opened."""
    from tests.live import LiveServer

    with live_server(workers=1, extra_env=_unreachable_database(tmp_path), migrate=False) as server:
        down = LiveServer(server.url, server.env, server.var_dir).shell_json(
            "from wellknown.services import readiness\nresult = readiness()")
    assert len(down) == 1 and down[0].startswith("database unavailable: "), down


def test_database_down(tmp_path):
    with live_server(workers=1, extra_env=_unreachable_database(tmp_path), migrate=False) as server:
        assert requests.get(server.url + "/healthz/live", timeout=30).json() == OK
        resp = requests.get(server.url + "/healthz/ready", timeout=30)
        assert resp.status_code == 503
        body = resp.json()
        assert body["status"] == 503
        assert body["detail"].startswith("database unavailable: ")
        assert "cache" not in body["detail"]
