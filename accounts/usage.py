"""What an account uses, as the apps above accounts measure it.

The blob store (a higher layer) owns the disk usage; the account's admin page (here) shows it.
The store registers its measure when it starts (blobs.apps), so that this app imports nothing
above it. With nothing registered (an installation without the blob store) the usage is unknown.
"""
from __future__ import annotations

from typing import Callable

_DISK: list[Callable[[int], int]] = []


def register_disk_usage(measure: Callable[[int], int]) -> None:
    _DISK[:] = [measure]


def disk_usage(account_id: int) -> int | None:
    return _DISK[0](account_id) if _DISK else None


def human_size(octets: int | None) -> str:
    """1536 -> "1.5 KiB": binary units, as a disk quota is usually thought of."""
    if octets is None:
        return "unknown"
    value = float(octets)
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            if unit == "bytes":
                return f"{int(value)} bytes"
            return f"{value:.1f} {unit}".replace(".0 ", " ")
        value /= 1024
    return f"{octets} bytes"
