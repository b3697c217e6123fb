"""Random mutations of the corpus never make the parser, the header forms or body values raise."""

import json
import random
from pathlib import Path

import pytest

from mail import headers, mime

CORPUS = sorted((Path(__file__).parent / "corpus").glob("*.eml"))
TOKENS = [b"--", b"\r\n", b"\n", b"\r", b"=?", b"?=", b"=?utf-8?B?", b"=?x?Q?=ZZ", b";", b"*",
          b"'", b"\"", b"\x00", b"\xff\xfe", b"\xe9", b"<", b">", b",", b":", b"=", b"\t",
          b"Content-Type: multipart/mixed; boundary=x\r\n", b"\r\n--x\r\n", b"\r\n--x--\r\n",
          b"Content-Transfer-Encoding: base64\r\n", b"Content-Transfer-Encoding: quoted-printable\r\n",
          b"name*0*=bogus''%ZZ; name*1*=%E9", b"charset=iso-2022-jp", b"\x1b$B"]


def mutate(rng: random.Random, raw: bytes) -> bytes:
    data = bytearray(raw)
    for _ in range(rng.randint(1, 8)):
        op = rng.randrange(5)
        pos = rng.randrange(len(data) + 1)
        if op == 0 and data:
            data[min(pos, len(data) - 1)] = rng.randrange(256)
        elif op == 1:
            data[pos:pos] = rng.choice(TOKENS)
        elif op == 2:
            del data[pos:pos + rng.randint(1, 40)]
        elif op == 3 and data:
            start = rng.randrange(len(data))
            data[pos:pos] = data[start:start + rng.randint(1, 200)]
        else:
            del data[pos:]
    return bytes(data)


def exercise(raw: bytes) -> None:
    msg = mime.parse(raw)
    json.dumps(msg.as_dict())
    for part in msg.parts().values():
        assert 0 <= part["bodyStart"] <= part["bodyEnd"] <= len(raw)
        value = mime.body_value(raw, part, 7)
        assert len(value["value"].encode()) <= 7
        mime.public_part(part, mime.DEFAULT_BODY_PROPERTIES + ("headers", "header:X:asText:all"))
    for hd in msg.headers:
        for form in headers.FORMS:
            headers.header(msg.headers, "X-" + hd["name"], form, all=True)
            headers.header([{"name": "X", "value": hd["value"]}], "X", form)


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.name)
def test_mutations_never_raise(path):
    raw = path.read_bytes()
    rng = random.Random(path.name)  # seeded per file: a failure reproduces
    # The huge-header message costs a hundred small ones per round: fewer rounds of it.
    for _ in range(8 if len(raw) > 100_000 else 40):
        exercise(mutate(rng, raw))


def test_nesting_and_part_bombs_stay_bounded():
    deep = b"".join(b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (i, i)
                    for i in range(2000)) + b"\r\nleaf\r\n"
    msg = mime.parse(deep)  # no RecursionError: beyond MAX_DEPTH a multipart is one part
    assert len(msg.parts()) == 1
    wide = b"Content-Type: multipart/mixed; boundary=w\r\n\r\n" + b"--w\r\n\r\nx\r\n" * 20000
    assert len(mime.parse(wide).parts()) <= mime.MAX_PARTS + 1


@pytest.mark.parametrize("raw", [b"", b"\r\n", b"\n\n\n", b":", b"From \r\n", b"\xff" * 100,
                                 b"Content-Type: multipart/mixed; boundary=\"\"\r\n\r\n--\r\n",
                                 b"Content-Type: text/plain; charset=\r\n\r\nx",
                                 b"Content-Type: /\r\n\r\nx", b" folded-first\r\nA: b\r\n\r\n"])
def test_degenerate_inputs(raw):
    exercise(raw)
