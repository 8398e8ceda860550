"""``get``'s table output: one table per kind, kubectl's layout.

Rules: a table per kind that has objects, separated by a blank line; NAMESPACE first
when listing every namespace (namespaced kinds only); names as ``kind.group/name`` when
several kinds are printed together, as ``kubectl get se,vs`` does; LABELS last with
``--show-labels``; no header row with ``--no-headers``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from meshgate.cli.columns import Column, age_column, columns_for, dig
from meshgate.cli.render import qualified_kind
from meshgate.cli.tabular import format_table

if TYPE_CHECKING:
    from meshgate.api.registry import KindInfo

Obj = dict[str, Any]


def _labels(o: Obj) -> str:
    labels = dig(o, "metadata.labels") or {}
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items())) or "<none>"


def table_for(
    info: KindInfo,
    items: list[Obj],
    *,
    all_namespaces: bool = False,
    wide: bool = False,
    qualified: bool = False,
    show_labels: bool = False,
    headers: bool = True,
    now: datetime | None = None,
) -> str:
    columns = columns_for(info.group, info.kind, wide)
    # One clock reading per table, so every row's AGE is measured from the same instant.
    moment = now or datetime.now(UTC)
    columns = [age_column(moment) if c.header == "AGE" else c for c in columns]
    if qualified:
        prefix = qualified_kind(info.group, info.kind)
        columns[0] = Column("NAME", lambda o: f"{prefix}/{dig(o, 'metadata.name')}")
    if all_namespaces and info.namespaced:
        columns.insert(0, Column("NAMESPACE", lambda o: str(dig(o, "metadata.namespace") or "")))
    if show_labels:
        columns.append(Column("LABELS", _labels))
    rows = [[c.header for c in columns]] if headers else []
    rows.extend([c.value(o) for c in columns] for o in items)
    return format_table(rows)


def render_tables(
    found: list[tuple[KindInfo, list[Obj]]],
    *,
    all_namespaces: bool = False,
    wide: bool = False,
    qualified: bool = False,
    show_labels: bool = False,
    headers: bool = True,
) -> str:
    tables = [
        table_for(
            info,
            items,
            all_namespaces=all_namespaces,
            wide=wide,
            qualified=qualified,
            show_labels=show_labels,
            headers=headers,
        )
        for info, items in found
        if items
    ]
    return "\n\n".join(tables)
