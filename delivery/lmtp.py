"""The LMTP listener (RFC 2033) on aiosmtpd: recipients are checked at RCPT (550 for an
unknown address, so the MTA bounces only those), and after DATA each accepted recipient gets
its own reply, in RCPT order, as LMTP requires.

The event loop only speaks the protocol; every database call runs in one worker thread, so
the loop stays responsive while a message is filed, and the thread keeps its connection.
"""
from __future__ import annotations

import asyncio
import logging
import signal
import socket
from concurrent.futures import ThreadPoolExecutor

from aiosmtpd.lmtp import LMTP
from django.db import close_old_connections

from . import services

log = logging.getLogger(__name__)
IDENT = "Stalwart LMTP"


class _Lmtp(LMTP):
    # RFC 5321 caps a line at 1000 octets, but real mail breaks it (generated HTML on one
    # line); such a message is stored as it came rather than refused with 500.
    line_length_limit = 64 * 1024


def _in_db_thread(fn, *args):
    # What Django does around each request: a connection older than CONN_MAX_AGE, or one that
    # failed and no longer answers (the database restarted), is replaced before the next
    # message rather than failing every delivery after it.
    close_old_connections()
    return fn(*args)


class Handler:
    def __init__(self, executor: ThreadPoolExecutor):
        self.executor = executor

    async def _run(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self.executor, _in_db_thread, fn, *args)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802 - aiosmtpd's name
        try:
            account = await self._run(services.resolve, address)
        except Exception:
            log.exception("lmtp: looking up %s failed", address)
            return "451 4.3.0 Address lookup failed."
        if account is None:
            return services.unknown(address).reply()
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
        content = envelope.original_content or envelope.content
        if isinstance(content, str):
            content = content.encode("utf-8", "surrogateescape")
        try:
            outcomes = await self._run(services.deliver, content, envelope.mail_from or "", list(envelope.rcpt_tos))
        except Exception:  # deliver() answers per recipient; this is the thread itself failing
            log.exception("lmtp: delivery failed")
            outcomes = [services.Outcome(r, services.TEMPORARY, 451, "4.3.0", "Transient server failure.")
                        for r in envelope.rcpt_tos]
        # RFC 2033 §4.2: one reply per successful RCPT, in order; aiosmtpd sends each line as is.
        return "\r\n".join(o.reply() for o in outcomes)


def serve(host: str, port: int, max_size: int, hostname: str | None = None, ready=None) -> None:
    """Run the listener until SIGTERM or SIGINT; `ready(sockets)` is called once it listens."""
    asyncio.run(_serve(host, port, max_size, hostname, ready))


async def _serve(host, port, max_size, hostname, ready):
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lmtp-db")
    # aiosmtpd would look the name up for each connection; once is enough.
    hostname = hostname or socket.getfqdn()
    handler = Handler(executor)
    loop = asyncio.get_running_loop()

    def factory():
        return _Lmtp(handler, data_size_limit=max_size, enable_SMTPUTF8=True, hostname=hostname, ident=IDENT,
                    loop=loop)

    server = await loop.create_server(factory, host=host, port=port)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if ready is not None:
        ready(server.sockets)
    try:
        await stop.wait()
    finally:
        server.close()
        await server.wait_closed()
        # A message being filed is finished before the process ends: it must not be half-stored.
        executor.shutdown(wait=True)
