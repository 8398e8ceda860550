"""A trace's JSON result in words a new user can act on.

Rules: first the verdict line (what the client gets), then why and what to change, then
the hops, one line each: proxy, step, the Envoy name, and the Istio resource behind it.
Pure: JSON in, text out.
"""

from __future__ import annotations

from typing import Any

CLIENT_SEES = {
    "reset": "the connection is reset (no HTTP answer; curl: exit 35/56, code 000)",
    "no-answer": "no address: the name does not resolve",
}


def _origin(o: dict[str, Any] | None) -> str:
    if not o:
        return ""
    where = f"{o['namespace']}/{o['name']}" if o.get("namespace") else o.get("name", "")
    return f"{o['kind']} {where} {o.get('detail') or ''}".strip()


def status_words(status: Any) -> str:
    if status is None:
        return "the upstream's own answer"
    if isinstance(status, int):
        return f"HTTP {status}"
    return CLIENT_SEES.get(str(status), str(status))


def render(result: dict[str, Any]) -> str:
    req = result.get("request") or {}
    lines = []
    what = (
        f"{req.get('method')} {req.get('protocol')}://{req.get('host')}:{req.get('port')}"
        f"{req.get('path')}"
        if req.get("protocol") == "http"
        else f"{str(req.get('protocol', '')).upper()} {req.get('host')}:{req.get('port')}"
    )
    src = result.get("source") or {}
    lines.append(f"Request:  {what} from {src.get('namespace')}/{src.get('pod')}")
    if req.get("ip"):
        lines.append(f"Address:  {req['ip']}")
    lines.append(f"Verdict:  {result['verdict']} ({status_words(result.get('status'))})")
    lines.append(f"Why:      {result.get('reason', '')}")
    if result.get("decidedBy"):
        lines.append(f"Decided by: {_origin(result['decidedBy'])}")
    if result.get("fix"):
        lines.append(f"To change it: {result['fix']}")
    for note in result.get("notes") or []:
        lines.append(f"Note:     {note}")
    hops = result.get("hops") or []
    if hops:
        lines.append("")
        lines.append("Path:")
        proxy = None
        for h in hops:
            if h["proxy"] != proxy:
                proxy = h["proxy"]
                lines.append(f"  {proxy}")
            origin = _origin(h.get("origin"))
            tail = f"  <- {origin}" if origin else ""
            detail = f" ({h['detail']})" if h.get("detail") else ""
            lines.append(f"    {h['step']:<13} {h['name']}{detail}{tail}")
    return "\n".join(lines)


def render_dry_run(data: dict[str, Any]) -> str:
    refused = data.get("refused") or []
    resources = data.get("resources") or []
    lines = [
        f"Dry run: outboundTrafficPolicy.mode {data['mode']}"
        + (f" with the {len(resources)} given resource(s)" if resources else "")
        + f", {data.get('requests', 0)} recent request(s) looked at."
    ]
    if data.get("limited"):
        lines.append("Only the newest records were looked at: narrow with -n or --since.")
    if not refused:
        lines.append("No recent request would be refused.")
    else:
        lines.append(f"{len(refused)} kind(s) of recent request would now be refused:")
        for g in refused:
            target = (
                f"{g['method']} http://{g['host']}:{g['port']}{g['path']}"
                if g["protocol"] == "http"
                else f"{g['protocol'].upper()} {g['host']}:{g['port']}"
            )
            after = g["after"]
            lines.append(
                f"  {g['namespace']}/{g['workload']}: {target} x{g['count']} -> "
                f"{after['verdict']}, {status_words(after.get('status'))}"
            )
            lines.append(f"      why: {after.get('reason', '')}")
            if after.get("fix"):
                lines.append(f"      fix: {after['fix']}")
        lines.append(
            "To keep them: `meshgate egress discover --emit yaml > egress.yaml`, then the same "
            "dry run with `-f egress.yaml`."
        )
    kept = data.get("unchanged") or []
    if kept:
        lines.append(f"{len(kept)} kind(s) of recent request keep their verdict.")
    skipped = data.get("skipped") or []
    if skipped:
        pods = ", ".join(f"{s['namespace']}/{s['pod']} x{s['count']}" for s in skipped)
        lines.append("Not traced (the pod is gone and no pod of its Deployment runs now): " + pods)
    return "\n".join(lines)
