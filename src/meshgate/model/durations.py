"""Durations as Istio writes them (``10s``, ``1.5s``, ``100ms``, ``1m``, ``1h``, ``2h45m``).

Rules: parse to whole nanoseconds (no float drift in generated config); an unparsable value
is a ``ValueError`` (validation rejects it before it reaches the model).
"""

from __future__ import annotations

import re
from decimal import Decimal

_UNITS = {
    "h": 3_600_000_000_000,
    "m": 60_000_000_000,
    "s": 1_000_000_000,
    "ms": 1_000_000,
    "us": 1_000,
    "µs": 1_000,
    "ns": 1,
}
_PART = re.compile(r"(\d+(?:\.\d+)?)(h|ms|m|s|us|µs|ns)")


def nanoseconds(text: str) -> int:
    """``"1.5s"`` -> 1_500_000_000."""
    value = text.strip()
    if not value:
        raise ValueError("empty duration")
    pos = 0
    total = 0
    for m in _PART.finditer(value):
        if m.start() != pos:
            raise ValueError(f"bad duration {text!r}")
        total += int(Decimal(m.group(1)) * _UNITS[m.group(2)])
        pos = m.end()
    if pos != len(value):
        raise ValueError(f"bad duration {text!r}")
    return total


def split(text: str) -> tuple[int, int]:
    """(seconds, nanos) as protobuf Duration wants them."""
    ns = nanoseconds(text)
    return ns // 1_000_000_000, ns % 1_000_000_000
