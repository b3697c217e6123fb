"""The smallest WSGI application: the baseline of what gunicorn alone costs per request.

bench/logins.py serves it with the production gunicorn.conf.py, so that the difference between
this and GET /admin/login/ is what Django and the project add.
"""

BODY = b"Hello, world!\n"
HEADERS = [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(BODY)))]


def application(environ, start_response):
    start_response("200 OK", HEADERS)
    return [BODY]
