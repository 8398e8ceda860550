"""Lines as an editor numbers them, counted here apart from ``meshgate.api.yamlsource``.

A line ends at ``\\r\\n``, ``\\r`` or ``\\n`` and at nothing else (not at NEL, LS, PS, VT or
FF, where ``str.splitlines`` also breaks). A last line without a break is a line; the empty
end after a final break is not; an empty text has one line.
"""

from __future__ import annotations

import re

_BREAK = re.compile(r"\r\n|\r|\n")


def line_count(text: str) -> int:
    pieces = _BREAK.split(text)
    return max(1, len(pieces) - (pieces[-1] == ""))


def line_at(text: str, offset: int) -> int:
    """The 1-based line of the character at ``offset``."""
    return len(_BREAK.split(text[:offset]))
