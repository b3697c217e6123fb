"""stalwart_site.pubsub, the Redis listen loop of the push hub and of the live tracing hub,
against the real Redis of REDIS_URL (skipped without one): it runs the catch-up once subscribed,
hears its channel, runs the catch-up again and still hears it after its connection is killed,
and closes its connection when cancelled."""
from __future__ import annotations

import asyncio
import queue
import secrets
import threading

import pytest
import redis
from django.conf import settings as django_settings

from stalwart_site import pubsub

pytestmark = pytest.mark.skipif(not django_settings.REDIS_URL, reason="needs REDIS_URL (a real Redis)")


def _kill(client, name: str) -> int:
    """Kill the connections named `name` (only ours: the Redis may be shared); how many."""
    killed = 0
    for entry in client.client_list():
        if entry.get("name") == name:
            client.client_kill_filter(_id=entry["id"])
            killed += 1
    return killed


def test_listen_hears_its_channel_again_after_a_lost_connection(settings):
    base = settings.REDIS_URL
    name = f"pubsub-test-{secrets.token_hex(4)}"
    channel = f"stalwart-test-{secrets.token_hex(4)}"
    settings.REDIS_URL = f"{base}{'&' if '?' in base else '?'}client_name={name}"
    heard, subscribed, stop = queue.Queue(), queue.Queue(), threading.Event()

    async def main():
        async def catch_up():
            subscribed.put(True)

        task = asyncio.create_task(pubsub.listen(channel, heard.put, running=lambda: not stop.is_set(),
                                                 label="test", on_subscribed=catch_up))
        while not stop.is_set() and not task.done():
            await asyncio.sleep(0.02)
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass

    # A loop of its own, in a thread: the session's browser keeps one running in the main thread.
    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    client = redis.Redis.from_url(base)
    try:
        assert subscribed.get(timeout=10)
        client.publish(channel, b"one")
        assert heard.get(timeout=10) == b"one"
        assert _kill(client, name) == 1
        # Subscribed again by the loop itself, so the catch-up runs again: what was published
        # while the connection was down is read from the journal. (A redis-py that reconnected
        # and subscribed again inside listen() would skip it: this would then fail.)
        assert subscribed.get(timeout=10)
        for _ in range(50):
            client.publish(channel, b"two")
            try:
                assert heard.get(timeout=0.2) == b"two"
                break
            except queue.Empty:
                continue
        else:
            pytest.fail("the channel was never heard again after the connection was killed")
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()
    assert _kill(client, name) == 0  # the cancelled loop closed its connection
    client.close()
