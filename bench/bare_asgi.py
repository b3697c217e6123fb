"""The smallest ASGI application: bench/bare_wsgi.py's counterpart for the asgi serving model,
the baseline of what gunicorn's event-loop worker alone costs per request."""

BODY = b"Hello, world!\n"
HEADERS = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(BODY)).encode())]


async def application(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})
