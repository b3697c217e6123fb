"""Issue 10 item 4: every form that carries a secret posts, so that without JavaScript a password
never lands in a URL (the address bar, the history, the access log)."""
import re
from html.parser import HTMLParser

import pytest

from conftest import STRONG_PASSWORD

pytestmark = pytest.mark.django_db

SECRET_NAME = re.compile(r"secret|password|otp|mfa|code", re.I)


class _Forms(HTMLParser):
    def __init__(self):
        super().__init__()
        self.forms, self._open = [], None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self._open = {"method": (a.get("method") or "get").lower(), "id": a.get("id"), "secret": []}
            self.forms.append(self._open)
        elif tag in ("input", "textarea") and self._open is not None:
            if (a.get("type") or "").lower() == "password" or SECRET_NAME.search(a.get("name") or ""):
                self._open["secret"].append(a.get("name"))

    def handle_endtag(self, tag):
        if tag == "form":
            self._open = None


def secret_forms(html: str):
    parser = _Forms()
    parser.feed(html)
    return [f for f in parser.forms if f["secret"]]


def test_every_form_with_a_secret_posts(client, admin_account, make_account):
    from accounts.models import Account

    pages = ["/login?client_id=x&redirect_uri=https://app.example.net/cb", "/device", "/device/?code=ABCD-EFGH",
             "/admin/login/"]
    seen = []
    for path in pages:
        seen += [(path, f) for f in secret_forms(client.get(path).content.decode())]
    client.login(username="admin@example.org", password=STRONG_PASSWORD)
    bob = make_account("bob")
    pages = ["/account/", "/account/password/", f"/admin/accounts/account/{bob.pk}/change/",
             "/admin/accounts/account/add/", "/admin/oauth/oauthclient/add/"]
    client.post("/account/two-factor/")          # the enrolment form asks for the password and a code
    for path in pages:
        resp = client.get(path)
        assert resp.status_code == 200, path
        seen += [(path, f) for f in secret_forms(resp.content.decode())]
    paths = {p for p, _ in seen}
    assert {"/login?client_id=x&redirect_uri=https://app.example.net/cb", "/device", "/admin/login/", "/account/",
            "/account/password/"} <= paths, paths
    for path, form in seen:
        assert form["method"] == "post", (path, form)
    assert Account.objects.filter(pk=bob.pk).exists()


@pytest.mark.parametrize("path", ["/login?client_id=x&redirect_uri=https://app.example.net/cb", "/device"])
def test_the_login_form_posted_without_javascript_reads_nothing_and_says_why(client, make_account, path):
    make_account("alice")
    resp = client.post(path, {"accountName": "alice@example.org", "accountSecret": STRONG_PASSWORD,
                              "code": "ABCD-EFGH"})
    assert resp.status_code == 400
    html = resp.content.decode()
    assert "needs JavaScript" in html and STRONG_PASSWORD not in html and 'id="login"' not in html
