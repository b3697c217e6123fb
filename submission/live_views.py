"""`GET /api/live/delivery/{target}`: the delivery test (submission.deliverytest) streamed as
server-sent events, one `event: event` frame per stage, `data: [<stage>]`, and a last
`{"type": "completed"}` frame (spec http.md §8.6).

The caller authenticates as on every endpoint, or with `?token=` from /api/token/delivery (spec
§8.7: only on this path; the token stands for its account and the one permission
liveDeliveryTest). The checks run here, synchronously; the test itself runs on the worker's event
loop and holds no thread and no database connection while it waits.
"""
from __future__ import annotations

import json
import logging

from django.conf import settings
from django.http import HttpResponse

from jmapapi import inflight
from network import endpoint, live_token
from stalwart_site.problem import problem

from . import deliverytest

log = logging.getLogger(__name__)

KIND = "delivery"
DEFAULT_TIMEOUT = 30


def frame(stage: dict) -> bytes:
    return f"event: event\ndata: [{json.dumps(stage, separators=(',', ':'))}]\n\n".encode()


def stage_timeout(raw: str | None) -> int:
    """?timeout= as the reference reads it (whole seconds, at least 1, else the default of 30),
    capped at DELIVERY_TEST_MAX_TIMEOUT."""
    value = int(raw) if raw and raw.isascii() and raw.isdigit() and len(raw) < 10 else 0
    return min(value if value >= 1 else DEFAULT_TIMEOUT, max(1, settings.DELIVERY_TEST_MAX_TIMEOUT))


async def stages(target: str, timeout: int):
    # A comment line first: the client has its headers and knows the stream is open.
    yield b": delivery test\n\n"
    try:
        async for stage in deliverytest.run(target, timeout):
            yield frame(stage)
    except Exception:  # noqa: BLE001  (a bug must end the stream cleanly, not cut it)
        log.exception("delivery test of %s failed", target)
        yield frame({"type": "error", "reason": "The delivery test failed unexpectedly; see the server's log."})
    yield frame({"type": "completed"})


@endpoint.endpoint(endpoint.ANY, options="bare")
def delivery(request, target: str):
    if request.method != "GET":
        return problem(404, endpoint.NOT_FOUND)
    caller = live_token.stream_caller(request, KIND)
    if isinstance(caller, HttpResponse):
        return caller
    account_id = caller.account_id

    try:
        deliverytest.parse_target(target)
    except deliverytest.TargetError as exc:
        return problem(400, str(exc), title="Invalid parameters")
    timeout = stage_timeout(request.GET.get("timeout"))

    limit = settings.DELIVERY_TEST_MAX_PER_ACCOUNT or None
    slot = inflight.acquire("delivery-test", account_id, limit)
    if slot is False:
        return problem(429, f"This account already runs {limit} delivery tests.", title="Too Many Requests",
                       headers={"Retry-After": "30"})
    return inflight.SlotStream(stages(target, timeout), "delivery-test", account_id, slot)
