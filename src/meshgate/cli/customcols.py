"""``get -o custom-columns=HEADER:PATH,...``: a table of the columns the user names.

Rules (as kubectl's custom-columns printer): the spec is comma-separated ``HEADER:PATH``
pairs; a PATH is a JSONPath with or without braces (``.metadata.name``,
``{.status.podIP}``); a cell holds every value the path finds, joined by ``,``, or
``<none>`` when it finds nothing; strings print raw, maps and lists as compact JSON. One
table holds every object, whatever its kind, in the order given; ``--no-headers`` drops
the header row. A malformed spec or path is a ``ValueError`` with kubectl's message.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from meshgate.cli.jsonpath import JsonPathError, show, values
from meshgate.cli.tabular import format_table

Obj = dict[str, Any]


@dataclass(frozen=True)
class CustomColumn:
    header: str
    path: str


def parse_columns(spec: str) -> list[CustomColumn]:
    if not spec.strip():
        raise ValueError("custom-columns format specified but no custom columns given")
    columns = []
    for part in spec.split(","):
        header, sep, path = part.partition(":")
        if not sep or not header or not path:
            raise ValueError(
                f"unexpected custom-columns spec: {part}, expected <header>:<json-path-expr>"
            )
        columns.append(CustomColumn(header, path))
    return columns


def _cell(column: CustomColumn, obj: Obj) -> str:
    try:
        found = values(column.path, obj)
    except JsonPathError as exc:
        raise ValueError(f"error parsing jsonpath {column.path}, {exc}") from None
    found = [v for v in found if v is not None]
    return ",".join(show(v) for v in found) if found else "<none>"


def custom_table(columns: list[CustomColumn], objects: list[Obj], headers: bool = True) -> str:
    rows = [[c.header for c in columns]] if headers else []
    rows.extend([_cell(c, o) for c in columns] for o in objects)
    return format_table(rows)
