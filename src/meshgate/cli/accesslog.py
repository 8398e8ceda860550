"""``meshgate logs --gateway NAME``: the mesh-wide access log of a gateway's every replica.

Rules of this module:
- Thin over ``GET /v1/accesslog``: the control plane stores and filters, this prints.
- ``-o json`` prints one object per line: the seed's 24 keys, then ``pod``, ``namespace``,
  ``reporter`` and ``reason``. The default is one short line per request.
- ``-f`` keeps asking for rows after the last one it printed, so nothing prints twice.
"""

from __future__ import annotations

import json
import re
import sys
import time
from typing import Any
from urllib.parse import urlencode

import typer

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(s|m|h|d)$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_since(text: str) -> float:
    """``30s``, ``5m``, ``2h``, ``1d`` -> seconds."""
    m = _DURATION.match(text.strip())
    if not m:
        raise typer.BadParameter(f"{text!r}: want a duration such as 30s, 5m, 2h or 1d")
    return float(m.group(1)) * _UNIT[m.group(2)]


def text_line(e: dict[str, object]) -> str:
    def v(key: str) -> str:
        value = e.get(key)
        return "-" if value is None else str(value)

    line = (
        f"{v('start_time')} {v('pod')} {v('method')} {v('authority')}{v('path')}"
        f" {v('response_code')} {v('response_flags')} {v('duration')}ms {v('upstream_cluster')}"
    )
    if e.get("reason"):
        line += f"  # {e['reason']}"
    return line


def print_notes(data: dict[str, Any], noted: set[str] | None = None) -> None:
    """A replica's answer names the replicas whose entries it misses (on stderr, once)."""
    for note in data.get("notes") or []:
        if noted is None or note not in noted:
            typer.echo(f"note: {note}", err=True)
            if noted is not None:
                noted.add(note)


def print_gateway_log(
    call_api: object,
    *,
    gateway: str,
    namespace: str,
    host: str | None,
    status: str | None,
    since: str | None,
    tail: int,
    output: str | None,
    follow: bool,
) -> None:
    if output not in (None, "json"):
        typer.echo(f"error: unknown output format {output!r} (json)", err=True)
        raise typer.Exit(1)
    params: dict[str, str] = {"gateway": gateway, "namespace": namespace}
    if host:
        params["host"] = host
    if status:
        params["status"] = status
    if since:
        params["since"] = str(parse_since(since))
    if tail >= 0:
        params["tail"] = str(tail)
    after = 0
    out = sys.stdout
    noted: set[str] = set()
    while True:
        data = call_api("GET", f"/v1/accesslog?{urlencode({**params, 'after': str(after)})}")  # type: ignore[operator]
        print_notes(data, noted)
        for e in data["entries"]:
            out.write((json.dumps(e) if output == "json" else text_line(e)) + "\n")
        out.flush()
        after = int(data["last"])
        if not follow:
            return
        params.pop("tail", None)
        time.sleep(0.5)
