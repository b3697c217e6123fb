from __future__ import annotations

from pathlib import Path

import pytest

CARDS = Path(__file__).parent / "cards"
STORABLE = ["apple-person.vcf", "apple-group.vcf", "google.vcf", "thunderbird.vcf", "v4-group.vcf",
            "nonascii.vcf", "outlook-3.0.vcf"]


def card_bytes(name: str) -> bytes:
    return (CARDS / name).read_bytes()


def simple_card(uid: str, fn: str = "Somebody", extra: str = "", version: str = "4.0") -> bytes:
    return (f"BEGIN:VCARD\r\nVERSION:{version}\r\nFN:{fn}\r\nUID:{uid}\r\n{extra}END:VCARD\r\n").encode()


@pytest.fixture
def alice(make_account):
    return make_account("alice")


@pytest.fixture
def bob(make_account):
    return make_account("bob")
