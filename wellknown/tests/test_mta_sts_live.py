"""MTA-STS as a real sending MTA sees it: postfix-mta-sts-resolver's STSResolver against the live
gunicorn server. Only its two network boundaries are replaced: the DNS answer for
`_mta-sts.<domain>` is the TXT record we tell operators to publish, and the HTTPS request to
`https://mta-sts.<domain>/...` goes to the live server's address instead."""
import asyncio
import json
from concurrent.futures import ThreadPoolExecutor

import aiohttp
import pytest
from postfix_mta_sts_resolver import resolver as sts
from yarl import URL

DOMAIN = "example.org"
pytestmark = pytest.mark.filterwarnings("ignore:Inheritance class ToLiveServer:DeprecationWarning")


def configure(live, mode, mx_hosts=(), max_age_seconds=86400):
    """Set MtaSts on the live server's database through the service layer; return its TXT record."""
    return live.shell_json(f"""
from datetime import timedelta
from registry import services as registry
from wellknown.models import MtaSts
from wellknown.services import build_policy, current_policy
from accounts.models import SystemSettings
registry.update(SystemSettings._declaration, None, {{"hostname": "mail.example.org"}}, "test")
registry.update(MtaSts._declaration, None, {{"mode": {mode!r}, "mx_hosts": {sorted(mx_hosts)!r},
                "max_age": timedelta(seconds={max_age_seconds})}}, "test")
policy = build_policy(MtaSts.load(), SystemSettings.load())
result = policy.txt_record() if policy else None
""")


class _TxtAnswer:
    def __init__(self, text):
        self.text = text


def resolve(live, monkeypatch, txt_record):
    base = URL(live.url)

    class ToLiveServer(aiohttp.ClientSession):
        async def _request(self, method, str_or_url, **kwargs):
            url = URL(str_or_url)
            assert url.scheme == "https" and url.host == f"mta-sts.{DOMAIN}", url
            return await super()._request(method, base.with_path(url.path), **kwargs)

    monkeypatch.setattr(sts.aiohttp, "ClientSession", ToLiveServer)

    async def run():
        resolver = sts.STSResolver(loop=asyncio.get_running_loop(), timeout=10)
        queried = []

        async def query(name, rtype):
            queried.append((name, rtype))
            return [_TxtAnswer(txt_record)] if txt_record else []

        resolver._resolver.query = query
        result = await resolver.resolve(DOMAIN)
        assert queried == [(f"_mta-sts.{DOMAIN}", "TXT")]
        return result

    # In a thread of its own: Playwright's sync API may keep an event loop running in this one.
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, run()).result()


@pytest.mark.parametrize("mode, mx_hosts, expected_mx", [
    ("enforce", ["mx2.example.org", "mx1.example.org"], ["mx1.example.org", "mx2.example.org"]),
    ("testing", ["*.mx.example.org"], ["*.mx.example.org"]),
    ("testing", [], ["mail.example.org"]),  # from SystemSettings.mailExchangers (default host)
    ("none", [], ["mail.example.org"]),
])
def test_valid_policies(live, monkeypatch, mode, mx_hosts, expected_mx):
    txt = configure(live, mode, mx_hosts, max_age_seconds=86400)
    assert txt.startswith("v=STSv1; id=")
    status, answer = resolve(live, monkeypatch, txt)
    assert status == sts.STSFetchResult.VALID
    policy_id, policy = answer
    assert f"v=STSv1; id={policy_id}" == txt
    assert policy == {"version": "STSv1", "mode": mode, "max_age": 86400, "mx": expected_mx}


def test_id_changes_with_the_policy(live, monkeypatch):
    first = configure(live, "testing", ["mx1.example.org"])
    second = configure(live, "testing", ["mx1.example.org", "mx2.example.org"])
    assert first != second
    status, (policy_id, policy) = resolve(live, monkeypatch, second)
    assert status == sts.STSFetchResult.VALID and policy["mx"] == ["mx1.example.org", "mx2.example.org"]


def test_disabled_policy_is_a_fetch_error(live, monkeypatch):
    txt = configure(live, "disable")
    assert txt is None
    # A sender that still finds an old TXT record fetches the policy and gets 404.
    status, answer = resolve(live, monkeypatch, "v=STSv1; id=stale")
    assert status == sts.STSFetchResult.FETCH_ERROR and answer is None
    import requests

    resp = requests.get(live.url + "/.well-known/mta-sts.txt", timeout=30)
    assert resp.status_code == 404 and json.loads(resp.content)["status"] == 404


def test_no_record_no_policy(live, monkeypatch):
    configure(live, "enforce", ["mx1.example.org"])
    assert resolve(live, monkeypatch, None) == (sts.STSFetchResult.NONE, None)
