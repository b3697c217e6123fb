"""A JMAP client over Django's test client, for the HTTP tests of every app."""
import base64
import json

STRONG_PASSWORD = "Tr0ubador-Quartz-Lantern-91"
USING = ["urn:ietf:params:jmap:core", "urn:stalwart:jmap"]


def basic(name, password=STRONG_PASSWORD):
    return "Basic " + base64.b64encode(f"{name}:{password}".encode()).decode()


class Jmap:
    """Speaks JMAP to the app over HTTP (Django's test client)."""

    def __init__(self, client, auth):
        self.client, self.auth = client, auth

    def post(self, body, path="/jmap/", content_type="application/json", **extra):
        data = body if isinstance(body, (bytes, str)) else json.dumps(body)
        return self.client.post(path, data=data, content_type=content_type, HTTP_AUTHORIZATION=self.auth, **extra)

    def call(self, name, args, using=USING, **request):
        resp = self.post({"using": using, "methodCalls": [[name, args, "c0"]], **request})
        assert resp.status_code == 200, resp.content
        responses = resp.json()["methodResponses"]
        assert len(responses) == 1
        return responses[0]

    def ok(self, name, args, **kw):
        got = self.call(name, args, **kw)
        assert got[0] == name, got
        return got[1]

    def error(self, name, args, **kw):
        got = self.call(name, args, **kw)
        assert got[0] == "error", got
        return got[1]


def can_log_in(name, password, ip="203.0.113.9"):
    """Whether the credential service accepts this login (the same check every face uses)."""
    from accounts import login  # on use: conftest loads this module before the apps are ready

    try:
        login.authenticate(name, password, ip)
    except login.AuthError:
        return False
    return True
