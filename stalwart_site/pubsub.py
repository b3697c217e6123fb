"""Listening on a Redis channel from a worker's event loop, for the hubs that fan one channel out
to the streams they hold (jmapapi.push: the journal's changes; telemetry.live: trace events).

One loop for both: subscribe, run the catch-up (what was published before the subscription took
effect is not heard), hand each message to the hub, and on a lost connection log it and
subscribe again a second later, for as long as the hub still has streams. Cancelling the task
(the hub's last stream went away) closes the connection.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from django.conf import settings

log = logging.getLogger(__name__)

RETRY_AFTER = 1.0  # seconds between a lost connection and the next subscription


async def listen(channel: str, deliver: Callable[[bytes], None], *, running: Callable[[], bool], label: str,
                 on_subscribed: Callable[[], Awaitable[None]] | None = None) -> None:
    """Hand the data of every message on `channel` (REDIS_URL) to deliver() while running()."""
    # why: redis is needed only when REDIS_URL is set; the embedded default never loads it.
    import redis.asyncio as aioredis

    while running():
        client = aioredis.Redis.from_url(settings.REDIS_URL)
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(channel)
            if on_subscribed is not None:
                await on_subscribed()
            async for message in pubsub.listen():
                deliver(message.get("data", b""))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("%s: lost the Redis channel (%s); listening again in %g s", label,
                        exc.__class__.__name__, RETRY_AFTER)
            await asyncio.sleep(RETRY_AFTER)
        finally:
            try:
                await pubsub.aclose()
                await client.aclose()
            except Exception:  # closing a connection that is already gone
                pass
