"""The self-describing formats of app passwords and API keys (as the reference makes them).

An app password carries its credential number; an API key carries its account and credential
numbers. Only the random part is hashed and stored.
"""
from __future__ import annotations

import base64
import binascii
import secrets
import struct

APP_PREFIX = "app_"
API_PREFIX = "API_"
_STD = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_APP = "abcdefghijklmnopqrstuvwxyz792013"
_TO_APP = str.maketrans(_STD, _APP)
_FROM_APP = str.maketrans(_APP, _STD)


def new_app_password(credential_id: int) -> tuple[str, bytes]:
    secret = secrets.token_bytes(18)
    raw = struct.pack(">I", credential_id) + secret
    text = base64.b32encode(raw).decode().rstrip("=").translate(_TO_APP)
    return APP_PREFIX + text, secret


def parse_app_password(token: str) -> tuple[int, bytes] | None:
    if not token.startswith("app") or len(token) < 5:
        return None
    body = token[4:].translate(_FROM_APP).upper()
    try:
        raw = base64.b32decode(body + "=" * (-len(body) % 8))
    except (binascii.Error, ValueError):
        return None
    if len(raw) != 22:
        return None
    return struct.unpack(">I", raw[:4])[0], raw[4:]


def new_api_key(account_id: int, credential_id: int) -> tuple[str, bytes]:
    secret = secrets.token_bytes(20)
    raw = struct.pack(">II", account_id, credential_id) + secret
    return API_PREFIX + base64.urlsafe_b64encode(raw).decode().rstrip("="), secret


def parse_api_key(token: str) -> tuple[int, int, bytes] | None:
    if not token.startswith(API_PREFIX):
        return None
    body = token[len(API_PREFIX):]
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except (binascii.Error, ValueError):
        return None
    if len(raw) != 28:
        return None
    account_id, credential_id = struct.unpack(">II", raw[:8])
    return account_id, credential_id, raw[8:]
