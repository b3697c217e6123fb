"""Django's ASGI handler, as the asgi serving model runs it (gunicorn.conf.py, network/worker.py)."""
import asyncio
import contextvars
import io
import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "stalwart_site.settings")

import django  # noqa: E402
from asgiref.sync import SyncToAsync, sync_to_async  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core import signals  # noqa: E402
from django.core.handlers.base import BaseHandler  # noqa: E402
from django.core.handlers.asgi import ASGIHandler, get_script_prefix  # noqa: E402
from django.core.exceptions import RequestAborted  # noqa: E402
from django.urls import set_script_prefix  # noqa: E402
from django.utils.module_loading import import_string  # noqa: E402

django.setup(set_prefix=False)

from jmapapi import websocket  # noqa: E402  (needs the apps loaded)


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
        self._machine = _machine_handler()

    async def handle(self, scope, receive, send):
        """Django's ASGIHandler.handle, with the synchronous work of a request in one hop.

        Django's own hands a request to the worker's thread three times (the request_started
        receivers, the middleware chain and view, then response.close() and its request_finished
        receivers) and runs a second task per request that waits for the client to disconnect:
        in process that was a third of a Core/echo's CPU time (docs/performance.md). Every
        receiver, the chain and the view are synchronous here, so they run as one call in that
        thread, and a complete (not streaming) response is closed there too, before it is sent:
        its body is already in memory, and close() only releases what the request held. A
        disconnect could not interrupt a synchronous view anyway; its response is then written
        to a closed transport, which gunicorn drops. A streaming response keeps Django's watch
        for the disconnect, which ends it.

        The hop is a plain executor call into asgiref's one thread (where sync_to_async with
        thread_sensitive runs everything else, the close of a streaming response included), in
        a copy of the request's context as sync_to_async would run it. What sync_to_async adds
        (its wrapper object, copying the context back into the loop's task afterwards, the
        bookkeeping that lets async_to_sync inside the call find this loop) is unused here:
        _serve changes nothing the loop reads back, and async_to_sync without that bookkeeping
        still works, on a loop of its own. It was about a tenth of a Core/echo's function calls.
        """
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        try:
            response = await asyncio.get_running_loop().run_in_executor(
                SyncToAsync.single_thread_executor, contextvars.copy_context().run, self._serve, scope, body_file)
            if not response.streaming:
                await self.send_response(response, send)
                return
            try:
                await self._stream(response, receive, send)
            finally:
                await sync_to_async(response.close, thread_sensitive=True)()
        finally:
            body_file.close()

    async def _stream(self, response, receive, send):
        tasks = [asyncio.create_task(self.listen_for_disconnect(receive)),
                 asyncio.create_task(self.send_response(response, send))]
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            if task.done():
                try:
                    task.result()
                except RequestAborted:
                    pass
            else:
                task.cancel()
                try:
                    await task
                except (asyncio.CancelledError, RequestAborted):
                    pass

    def _serve(self, scope, body_file):
        set_script_prefix(get_script_prefix(scope))
        signals.request_started.send(sender=self.__class__, scope=scope)
        request, response = self.create_request(scope, body_file)
        if request is not None:
            machine = self._machine
            response = (machine if machine is not None and machine.is_machine(request) else self).get_response(request)
        if not response.streaming:
            response.close()
        return response

    async def handshake(self, scope):
        """The upgrade request of a WebSocket, as an ordinary GET through the whole HTTP chain
        (the edge's checks, the view's authentication), marked so that only the view of
        jmapapi.websocket's path takes it for an upgrade; Django's response comes back."""
        http_scope = {**scope, "type": "http", "method": "GET",
                      "scheme": "https" if scope.get("scheme") == "wss" else "http", websocket.HANDSHAKE: True}
        return await asyncio.get_running_loop().run_in_executor(
            SyncToAsync.single_thread_executor, contextvars.copy_context().run, self._serve, http_scope, io.BytesIO())

    async def __call__(self, scope, receive, send):
        if scope["type"] == "websocket":
            # JMAP over WebSocket (RFC 8887) is the only WebSocket served; any other path is refused.
            await websocket.serve(scope, receive, send, self.handshake)
            return
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        await self.handle(scope, receive, send)


def _machine_handler() -> BaseHandler | None:
    """The same middleware chain without the page middleware (network.middleware.pages_only),
    for the machine endpoints, which that middleware lets through untouched: each of the eight
    was a call into it and a prefix test per request, and CSRF's view hook one more. The
    counters, the edge, the rate limit and the headers are in both chains, in the same order.

    Django builds a chain from settings.MIDDLEWARE only, so the list is narrowed while this one
    is built, once, when the application is created, and put back."""
    full = list(settings.MIDDLEWARE)
    pages = [import_string(path) for path in full if getattr(import_string(path), "pages_only", False)]
    if not pages:
        return None
    handler = BaseHandler()
    settings.MIDDLEWARE = [path for path in full if not getattr(import_string(path), "pages_only", False)]
    try:
        handler.load_middleware(is_async=False)
    finally:
        settings.MIDDLEWARE = full
    handler.is_machine = pages[0].is_machine
    return handler


application = Handler()
