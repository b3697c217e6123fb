#!/usr/bin/env python3
"""Speed of the message parser (mail/mime.py), which runs once per imported message.

    .venv/bin/python bench/parse.py [--duration 5]

Prints messages/s and MB/s for:

1. the corpus (mail/tests/corpus/), parsed in turn: small real-world shapes, one with a
   138 KB References header of 3,000 ids; then the corpus without that one;
2. a 10 MB message: multipart/mixed with a text/HTML alternative (200 KB of HTML, converted to
   text for the preview and search) and four base64 attachments;
3. the same 10 MB message, body values of its two text parts read from the stored offsets
   (what Email/get with fetchAllBodyValues costs, without a re-parse).

One process, one core; nothing is contacted.
"""
from __future__ import annotations

import argparse
import base64
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mail import mime  # noqa: E402 - after the path is set


def big_message(target: int = 10 * 1024 * 1024) -> bytes:
    html = ("<html><body>" + "<p>Paragraph with <b>bold</b> and <a href='https://example.com'>a"
            " link</a>.</p>\n" * 2500 + "</body></html>").encode()
    text = b"Plain text line of the alternative.\r\n" * 2000
    head = (b"From: Big Sender <big@example.com>\r\nTo: rcpt@example.com\r\n"
            b"Subject: A large message\r\nDate: Mon, 1 Apr 2024 10:00:00 +0000\r\n"
            b"Message-ID: <big-bench@example.com>\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: multipart/mixed; boundary=outer\r\n\r\n"
            b"--outer\r\nContent-Type: multipart/alternative; boundary=alt\r\n\r\n"
            b"--alt\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + text +
            b"\r\n--alt\r\nContent-Type: text/html; charset=utf-8\r\n\r\n" + html +
            b"\r\n--alt--\r\n")
    per = (target - len(head)) * 3 // 4 // 4
    parts = []
    for i in range(4):
        payload = base64.encodebytes(os.urandom(per)).replace(b"\n", b"\r\n")
        parts.append(b"--outer\r\nContent-Type: application/octet-stream\r\n"
                     b"Content-Transfer-Encoding: base64\r\n"
                     b"Content-Disposition: attachment; filename=\"file%d.bin\"\r\n\r\n" % i
                     + payload)
    return head + b"".join(parts) + b"--outer--\r\n"


def run(label: str, messages: list[bytes], duration: float, work) -> None:
    done = octets = 0
    start = time.perf_counter()
    while time.perf_counter() - start < duration:
        for raw in messages:
            work(raw)
            done += 1
            octets += len(raw)
    elapsed = time.perf_counter() - start
    print(f"{label:<42} {done / elapsed:10.1f} messages/s {octets / elapsed / 1e6:8.1f} MB/s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=5.0)
    args = ap.parse_args()
    corpus = [p.read_bytes() for p in sorted((ROOT / "mail/tests/corpus").glob("*.eml"))]
    big = big_message()
    run(f"corpus ({len(corpus)} messages)", corpus, args.duration, mime.parse)
    small = [raw for raw in corpus if len(raw) < 100_000]
    run(f"corpus without the huge header ({len(small)})", small, args.duration, mime.parse)
    run(f"one {len(big) / 1e6:.1f} MB message", [big], args.duration, mime.parse)
    parsed = mime.parse(big)
    parts = parsed.parts()
    text_parts = [parts[i] for i in parsed.textBody + parsed.htmlBody]

    def values(raw):
        for part in text_parts:
            mime.body_value(raw, part)

    run("its body values, from the stored offsets", [big], args.duration, values)


if __name__ == "__main__":
    main()
