"""/api on Django REST framework (issue 11 §4): the OpenAPI 3 document at /api/openapi.json
describes every /api endpoint that runs on DRF, and schemathesis, fed that document, finds no 5xx
on a live server, authenticated as the administrator.

The answers themselves are unchanged from the plain Django views they replace: the tests of
each endpoint (oauth/tests/test_api.py, jmapapi/tests/test_schema.py, …) still pass as written.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.live import live_server
from tests.test_jmap_live import bootstrap

ST = Path(sys.executable).parent / "st"
DRF_PATHS = {"/api/account", "/api/auth", "/api/discover/{email}", "/api/schema", "/api/schema/{digest}"}


def test_openapi_document_describes_the_drf_endpoints(client, db):
    resp = client.get("/api/openapi.json")
    assert resp.status_code == 200
    doc = resp.json()
    assert doc["openapi"].startswith("3.")
    assert set(doc["paths"]) == DRF_PATHS
    assert doc["components"]["securitySchemes"]["basicAuth"] == {"type": "http", "scheme": "basic"}
    # Authenticated operations say so; the login endpoint and discovery do not ask for credentials.
    assert doc["paths"]["/api/account"]["get"]["security"] == [{"basicAuth": []}, {"bearerAuth": []}]
    assert "security" not in doc and "security" not in doc["paths"]["/api/auth"]["post"]
    assert "security" not in doc["paths"]["/api/discover/{email}"]["get"]
    body = doc["paths"]["/api/auth"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body["$ref"].endswith("/AuthRequestRequest")


def test_drf_adds_no_header_and_answers_any_accept(client, jmap):
    resp = client.get("/api/account", HTTP_AUTHORIZATION=jmap.auth, HTTP_ACCEPT="text/html")
    assert resp.status_code == 200 and resp["Content-Type"] == "application/json"
    assert "Allow" not in resp and "Vary" not in resp
    resp = client.get("/api/auth")
    assert resp.status_code == 405 and resp["Allow"] == "POST"
    assert resp["Content-Type"] == "application/problem+json"


@pytest.fixture(scope="module")
def server():
    with live_server(workers=2) as live:
        creds = bootstrap(live)
        assert creds, "bootstrap printed no password"
        live.creds = creds
        yield live


def test_schemathesis_finds_no_server_error(server, tmp_path):
    login, password = server.creds
    run = subprocess.run(
        [str(ST), "run", server.url + "/api/openapi.json", "--checks", "not_a_server_error",
         "--auth", f"{login}:{password}", "--max-examples", "12", "--seed", "11", "--no-shrink",
         "--workers", "1", "--max-time", "45", "--request-timeout", "20",
         "--report", "junit", "--report-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=180, cwd=tmp_path)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    # Every operation was exercised (a schema that failed to load would test nothing).
    report = next(tmp_path.glob("*.xml")).read_text()
    assert report.count("<testcase") >= len(DRF_PATHS), report[:2000]
