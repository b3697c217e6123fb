"""The LMTP listener (RFC 2033) on aiosmtpd: recipients are checked at RCPT (550 for an
unknown address, so the MTA bounces only those), and after DATA each accepted recipient gets
its own reply, in RCPT order, as LMTP requires.

The event loop only speaks the protocol; every database call runs in one worker thread, so
the loop stays responsive while a message is filed, and the thread keeps its connection.
"""
from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
import socket
import time
from concurrent.futures import ThreadPoolExecutor

from aiosmtpd.lmtp import LMTP
from django.db import close_old_connections

from stalwart_site import checkpoint

from . import services

log = logging.getLogger(__name__)
IDENT = "Stalwart LMTP"


class _Lmtp(LMTP):
    # RFC 5321 caps a line at 1000 octets, but real mail breaks it (generated HTML on one
    # line); such a message is stored as it came rather than refused with 500.
    line_length_limit = 64 * 1024
    on_close = None  # the acceptor's count of open sessions

    def connection_lost(self, exc):
        super().connection_lost(exc)
        done, self.on_close = self.on_close, None
        if done is not None:
            done()


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


def bind(host: str | None, port: int) -> list[socket.socket]:
    """The listening sockets, one per address `host` resolves to (all interfaces when empty),
    bound before any worker starts so that every worker accepts on the same ones."""
    sockets = []
    try:
        for family, kind, proto, _, address in socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                                                  flags=socket.AI_PASSIVE):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(128)
            sock.setblocking(False)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def serve(host: str | None, port: int, max_size: int, hostname: str | None = None, ready=None,
          workers: int = 1) -> None:
    """Run the listener until SIGTERM or SIGINT; `ready(sockets)` is called once it listens.

    With several workers the parent binds the sockets and forks that many processes, each with
    its own event loop, database thread and connection: parsing and filing a message is CPU
    work under one interpreter lock, so a second process is what lets a second core take the
    next message while one is being filed (an MTA opens several LMTP connections at once).
    The parent only supervises: a worker that dies is replaced, and SIGTERM or SIGINT is passed
    on, each worker finishing the message it is filing before it exits.
    """
    hostname = hostname or socket.getfqdn()  # aiosmtpd would look it up per connection
    sockets = bind(host, port)
    if ready is not None:
        ready(sockets)
    if workers <= 1:
        asyncio.run(_serve(sockets, max_size, hostname))
        return
    _supervise(sockets, max_size, hostname, workers)


def _supervise(sockets, max_size, hostname, workers):
    # A worker must not inherit a database connection or cache client of the parent: two
    # processes talking over one socket corrupt each other's conversation.
    from django.core.cache import caches
    from django.db import connections

    connections.close_all()
    caches.close_all()
    stopping = False
    # Open sessions per worker, in memory the workers share (mapped before they fork).
    counts = multiprocessing.RawArray("i", workers)

    parent = os.getpid()

    def stop(signum, frame):
        nonlocal stopping
        if os.getpid() != parent:  # a signal that reached a new worker before it set its own handlers
            os._exit(0)
        stopping = True
        for pid in list(children):
            _signal(pid, signal.SIGTERM)

    def spawn(slot: int) -> int:
        counts[slot] = 0
        pid = os.fork()
        if pid == 0:
            status = 1
            try:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                asyncio.run(_serve(sockets, max_size, hostname, counts, slot))
                status = 0
            except BaseException:
                log.exception("lmtp: worker %d failed", os.getpid())
            finally:
                os._exit(status)
        return pid

    children: dict[int, int] = {}  # pid -> slot
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for slot in range(workers):
        children[spawn(slot)] = slot
    last_spawn = 0.0
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        slot = children.pop(pid, None)
        if stopping or slot is None:
            continue
        log.error("lmtp: worker %d ended (status %d); starting another", pid, status)
        # A worker that dies at once (a database that refuses connections) is not restarted in
        # a tight loop.
        pause = 1.0 - (time.monotonic() - last_spawn)
        if pause > 0:
            time.sleep(pause)
        last_spawn = time.monotonic()
        children[spawn(slot)] = slot
    for sock in sockets:
        sock.close()


def _signal(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


class _Acceptor:
    """Accepts on the shared sockets, and only while this worker holds no more open sessions
    than any other (`counts`, shared): an event loop is free to accept while its database
    thread files a message, so without this one worker would take every connection of an MTA
    and the others would idle. A worker that may not accept stops watching the sockets and
    looks again 20 ms later; one with the fewest sessions always may, so none is refused."""

    PAUSE = 0.02

    def __init__(self, loop, sockets, factory, counts=None, slot=0):
        self.loop, self.sockets, self.factory = loop, sockets, factory
        self.counts, self.slot = counts, slot
        self.open = 0
        self.watching = False
        self.stopped = False

    def start(self) -> None:
        self._watch()

    def stop(self) -> None:
        self.stopped = True
        self._unwatch()

    def _watch(self) -> None:
        if not self.watching and not self.stopped:
            for sock in self.sockets:
                self.loop.add_reader(sock, self._ready, sock)
            self.watching = True

    def _unwatch(self) -> None:
        if self.watching:
            for sock in self.sockets:
                self.loop.remove_reader(sock)
            self.watching = False

    def _may_accept(self) -> bool:
        return self.counts is None or self.counts[self.slot] <= min(self.counts)

    def _pause(self) -> None:
        self._unwatch()
        self.loop.call_later(self.PAUSE, self._watch)

    def _ready(self, sock) -> None:
        if not self._may_accept():
            self._pause()
            return
        try:
            conn, _ = sock.accept()
        except (BlockingIOError, InterruptedError):
            return  # another worker took it
        except OSError as exc:  # out of descriptors, say: try again shortly rather than spin
            log.warning("lmtp: accept failed: %s", exc)
            self._pause()
            return
        conn.setblocking(False)
        self._count(+1)
        self.loop.create_task(self._connect(conn))

    async def _connect(self, conn) -> None:
        def protocol():
            proto = self.factory()
            proto.on_close = lambda: self._count(-1)
            return proto

        try:
            await self.loop.connect_accepted_socket(protocol, conn)
        except Exception:
            log.exception("lmtp: a connection could not be set up")
            conn.close()
            self._count(-1)

    def _count(self, delta: int) -> None:
        self.open += delta
        if self.counts is not None:
            self.counts[self.slot] = self.open


async def _serve(sockets, max_size, hostname, counts=None, slot=0):
    checkpoint.start()  # SQLite's WAL checkpoint off the delivery's commits
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lmtp-db")
    handler = Handler(executor)
    loop = asyncio.get_running_loop()

    def factory():
        return _Lmtp(handler, data_size_limit=max_size, enable_SMTPUTF8=True, hostname=hostname, ident=IDENT,
                    loop=loop)

    acceptor = _Acceptor(loop, sockets, factory, counts, slot)
    acceptor.start()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        acceptor.stop()
        # A message being filed is finished before the process ends: it must not be half-stored.
        executor.shutdown(wait=True)
