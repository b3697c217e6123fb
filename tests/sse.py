"""A small EventSource (Server-Sent Events) client for the live tests and the benchmark: one
stream read by a thread of its own, its events handed over through a queue."""
from __future__ import annotations

import json
import queue
import socket
import threading
import time
from urllib.parse import urlsplit

import httpx

END = ("end", None)


class Stream:
    def __init__(self, url: str, headers: dict | None = None, connect_timeout: float = 10):
        self.client = httpx.Client(timeout=httpx.Timeout(connect_timeout, read=None))
        self._cm = self.client.stream("GET", url, headers=headers or {})
        self.response = self._cm.__enter__()
        self.status = self.response.status_code
        self.events: queue.Queue = queue.Queue()
        self.local_port = None
        self._sock = None
        stream = self.response.extensions.get("network_stream")
        if stream is not None:
            sock = stream.get_extra_info("socket")
            if isinstance(sock, socket.socket):
                self._sock, self.local_port = sock, sock.getsockname()[1]
        self._thread = None
        if self.status == 200:
            self._thread = threading.Thread(target=self._read, daemon=True)
            self._thread.start()
        else:
            self.body = self.response.read()
            self.close()

    def _read(self) -> None:
        event, data = "message", []
        try:
            for line in self.response.iter_lines():
                if line == "":
                    if data:
                        self.events.put((event, json.loads("\n".join(data)), time.monotonic()))
                    event, data = "message", []
                elif line.startswith(":"):
                    continue
                elif line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].lstrip())
        except Exception:  # the stream closed under us
            pass
        self.events.put((*END, time.monotonic()))

    def next(self, timeout: float):
        """The next (event, data), END when the server ended the stream; queue.Empty on timeout."""
        return self.next_timed(timeout)[:2]

    def next_timed(self, timeout: float):
        """(event, data, when the reading thread read it): on a busy machine the test's own
        thread may only look at it later."""
        return self.events.get(timeout=timeout)

    def next_state_timed(self, timeout: float) -> tuple[dict, float]:
        while True:
            event, data, at = self.next_timed(timeout)
            if event == "state":
                return data, at
            assert event == "ping", (event, data)

    def next_state(self, timeout: float) -> dict:
        while True:
            event, data = self.next(timeout)
            if event == "state":
                return data
            assert event == "ping", (event, data)

    def close(self) -> None:
        if self._sock is not None:
            try:  # wakes the reading thread, which close() alone may not
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        try:
            self._cm.__exit__(None, None, None)
        except Exception:  # already closed by the server
            pass
        self.client.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def port_of(url: str) -> int:
    return urlsplit(url).port
