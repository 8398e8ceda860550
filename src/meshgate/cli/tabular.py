"""Plain aligned tables and ages, exactly as kubectl prints them.

Rules: kubectl writes tables through Go's tabwriter with minimum cell width 6 and padding
3, so every column but the last is as wide as its longest cell plus 3 (at least 6), and
the last column is never padded. Ages follow Kubernetes' ``HumanDuration``: more detail
for young objects (``95s``, ``3m20s``, ``5h10m``), less as they age (``12d``, ``2y``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

_MIN_WIDTH = 6
_PADDING = 3


def format_table(rows: Sequence[Sequence[str]]) -> str:
    """Rows (header first) as aligned text, one line per row, without a trailing newline."""
    if not rows:
        return ""
    ncols = max(len(r) for r in rows)
    widths = [
        max(_MIN_WIDTH, max(len(r[i]) for r in rows if i < len(r)) + _PADDING)
        for i in range(ncols - 1)
    ]
    lines = []
    for row in rows:
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])]
        lines.append(("".join(cells) + (row[-1] if row else "")).rstrip())
    return "\n".join(lines)


def human_duration(seconds: float) -> str:
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        return f"{minutes}m{s % 60}s" if s % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    days = hours // 24
    if hours < 24 * 8:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    if hours < 24 * 365 * 2:
        return f"{days}d"
    years = days // 365
    if hours < 24 * 365 * 8:
        return f"{years}y{days % 365}d" if days % 365 else f"{years}y"
    return f"{years}y"


def parse_timestamp(value: str) -> datetime | None:
    """An RFC 3339 timestamp (``2024-05-01T10:00:00Z``) as an aware datetime, or None."""
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def age(timestamp: str | None, now: datetime | None = None) -> str:
    """The AGE column for a creationTimestamp; ``<unknown>`` when there is none."""
    created = parse_timestamp(timestamp) if timestamp else None
    if created is None:
        return "<unknown>"
    current = now or datetime.now(UTC)
    return human_duration((current - created).total_seconds())
