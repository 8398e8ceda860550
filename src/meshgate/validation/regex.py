"""Does a pattern compile as RE2 (Go's ``regexp``, which Istio uses to validate)?

Rules of this module:
- RE2 has no backreferences, lookaround, atomic groups, possessive or nested
  repetition, and repeat counts stop at 1000: such patterns are rejected here even
  though Python's ``re`` accepts some of them.
- RE2 has syntax Python lacks (``\\pL``, ``\\p{Greek}``, ``[[:alpha:]]``, ``\\Q...\\E``,
  ``\\z``): it is rewritten to an equivalent Python form before compiling, so those
  patterns are accepted.
- Istio refuses patterns longer than 1024 characters (Envoy's program-size limit).
- Never raises: the answer is ``None`` (valid) or a reason.
"""

from __future__ import annotations

import re
import warnings

MAX_LENGTH = 1024
_UNSUPPORTED = (
    (re.compile(r"\(\?[=!]"), "lookahead (?= (?! is not supported by RE2"),
    (re.compile(r"\(\?<[=!]"), "lookbehind (?<= (?<! is not supported by RE2"),
    (re.compile(r"\(\?>"), "atomic groups (?> are not supported by RE2"),
    (re.compile(r"\(\?\("), "conditionals (?( are not supported by RE2"),
    (re.compile(r"\(\?#"), "comments (?# are not supported by RE2"),
    (re.compile(r"[*+?}][*+]"), "invalid nested repetition operator"),
    (re.compile(r"\\[1-9]"), "backreferences are not supported by RE2"),
    (re.compile(r"\\[gk][<{]?"), "named backreferences are not supported by RE2"),
)
_QUOTED = re.compile(r"\\Q(.*?)(?:\\E|$)", re.DOTALL)
_UNICODE_CLASS = re.compile(r"\\[pP](?:\{\^?[A-Za-z_]+\}|[A-Za-z])")
_POSIX_CLASS = re.compile(r"\[:\^?[a-z]+:\]")
_REPEAT = re.compile(r"\{(\d+)(?:,(\d*))?\}")
_POSIX_NAMES = frozenset(
    {"alnum", "alpha", "ascii", "blank", "cntrl", "digit", "graph", "lower", "print"}
    | {"punct", "space", "upper", "word", "xdigit"}
)


def _strip_escaped(pattern: str) -> str:
    """The pattern with escaped characters blanked, so scans see only real syntax."""
    blanked = re.sub(r"\\.", "__", pattern, flags=re.DOTALL)
    return re.sub(r"\[\^?\]?[^\]]*\]", "_", blanked)


def re2_problem(pattern: str) -> str | None:
    if len(pattern) > MAX_LENGTH:
        return f"regex is too large, max length allowed is {MAX_LENGTH}"
    pattern = _QUOTED.sub(lambda m: re.escape(m.group(1)), pattern)
    bare = _strip_escaped(pattern)
    for rx, reason in _UNSUPPORTED:
        if rx.search(bare if rx.pattern[:2] != r"\\" else pattern):
            return reason
    for m in _REPEAT.finditer(bare):
        if any(n and int(n) > 1000 for n in m.groups()):
            return f"invalid repeat count {m.group(0)}"
    for m in _POSIX_CLASS.finditer(pattern):
        if m.group(0).strip("[:^]") not in _POSIX_NAMES:
            return f"invalid character class range {m.group(0)}"
    python = _POSIX_CLASS.sub("a", _UNICODE_CLASS.sub(r"\\w", pattern))
    python = python.replace(r"\z", r"\Z").replace("(?<", "(?P<").replace("(?P<P<", "(?P<")
    python = python.replace("(?P<=", "(?<=").replace("(?P<!", "(?<!")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            re.compile(python)
    except (re.error, OverflowError, RecursionError, ValueError) as exc:
        return f"invalid regex {pattern!r}: {exc}"
    return None
