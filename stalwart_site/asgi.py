"""Django's ASGI handler, as the asgi serving model runs it (gunicorn.conf.py, network/worker.py)."""
import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "stalwart_site.settings")

import django  # noqa: E402
from asgiref.sync import sync_to_async  # noqa: E402
from django.core.handlers.asgi import ASGIHandler  # noqa: E402

django.setup(set_prefix=False)


class Handler(ASGIHandler):
    """Without Django's per-request ThreadSensitiveContext, which starts a thread for every
    request (and with it a new database connection): the synchronous views and middleware of a
    worker run in asgiref's one shared thread, one at a time, as they did in a sync worker,
    while the event loop keeps reading and writing every connection.

    The middleware chain and the view run as one synchronous call, handed to that thread once
    per request: our middleware is synchronous, and Django's asynchronous chain would hand the
    request from the event loop to the thread and back at every change of mode (around the
    view, and between django-prometheus' counters and ours), each a wake-up of a thread."""

    def load_middleware(self, is_async=False):
        super().load_middleware(is_async=False)

    async def get_response_async(self, request):
        return await sync_to_async(self.get_response, thread_sensitive=True)(request)

    async def __call__(self, scope, receive, send):
        if scope["type"] == "websocket":
            # No WebSocket endpoint yet: closing before accepting refuses the upgrade with a
            # 403 (ASGI spec), instead of the 500 Django's ValueError would give.
            await receive()  # websocket.connect
            await send({"type": "websocket.close", "code": 1008})
            return
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        await self.handle(scope, receive, send)


application = Handler()
