"""Charts and the traffic graph as SVG text, drawn on the server (no script, no library).

Rules of this module:
- Every text that came from the mesh (host, pod, label) is XML-escaped here; the result
  is safe to embed in a page as it is.
- Output is deterministic for the same input (fixed sizes, sorted nodes), so a test can
  look for a host's label or an edge's count in it.
- Colours: one per reporter (sidecar, gateway); edges with errors are red and dashed.
"""

from __future__ import annotations

from html import escape

from meshgate.console.traffic import Graph

COLOURS = {"sidecar": "#2563eb", "gateway": "#ea580c"}
_W, _H, _PAD_L, _PAD_B, _PAD_T = 320, 140, 40, 18, 18


def _fmt(v: float) -> str:
    return f"{v:.0f}" if v >= 10 or v == int(v) else f"{v:.1f}"


def line_chart(title: str, lines: dict[str, list[float | None]], unit: str = "") -> str:
    """A small line chart: one polyline per reporter, y from 0 to the largest value."""
    values = [v for line in lines.values() for v in line if v is not None]
    top = max(values, default=0.0) or 1.0
    n = max((len(line) for line in lines.values()), default=1)
    plot_w, plot_h = _W - _PAD_L - 8, _H - _PAD_B - _PAD_T

    def x(i: int) -> float:
        return _PAD_L + (plot_w * i / max(1, n - 1))

    def y(v: float) -> float:
        return _PAD_T + plot_h * (1 - v / top)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{_W}" height="{_H}" '
        f'viewBox="0 0 {_W} {_H}" role="img" aria-label="{escape(title)}">',
        f'<text x="{_PAD_L}" y="12" class="chart-title">{escape(title)}</text>',
        f'<line x1="{_PAD_L}" y1="{_PAD_T + plot_h}" x2="{_W - 8}" y2="{_PAD_T + plot_h}" '
        'class="axis"/>',
        f'<line x1="{_PAD_L}" y1="{_PAD_T}" x2="{_PAD_L}" y2="{_PAD_T + plot_h}" class="axis"/>',
        f'<text x="{_PAD_L - 4}" y="{_PAD_T + 4}" class="tick" text-anchor="end">'
        f"{escape(_fmt(top))}{escape(unit)}</text>",
        f'<text x="{_PAD_L - 4}" y="{_PAD_T + plot_h}" class="tick" text-anchor="end">0</text>',
    ]
    for label, line in sorted(lines.items()):
        colour = COLOURS.get(label, "#6b7280")
        segment: list[str] = []
        segments: list[list[str]] = [segment]
        for i, v in enumerate(line):
            if v is None:  # no request in the bucket: a gap, not a zero
                segment = []
                segments.append(segment)
                continue
            segment.append(f"{x(i):.1f},{y(v):.1f}")
        for seg in segments:
            if len(seg) == 1:
                cx, cy = seg[0].split(",")
                parts.append(f'<circle cx="{cx}" cy="{cy}" r="2" fill="{colour}"/>')
            elif seg:
                parts.append(
                    f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" '
                    f'points="{" ".join(seg)}" data-reporter="{escape(label)}"/>'
                )
    legend_x = _PAD_L
    for label in sorted(lines):
        colour = COLOURS.get(label, "#6b7280")
        parts.append(
            f'<rect x="{legend_x}" y="{_H - 10}" width="8" height="8" fill="{colour}"/>'
            f'<text x="{legend_x + 11}" y="{_H - 3}" class="tick">{escape(label)}</text>'
        )
        legend_x += 80
    parts.append("</svg>")
    return "".join(parts)


_COL_W, _ROW_H, _NODE_W, _NODE_H = 330, 46, 250, 28


def graph_svg(g: Graph) -> str:
    """Three columns (workloads, gateways, external hosts), one box per node, one curve per
    edge labelled with its request count (and errors)."""
    columns = {"w": g.workloads, "g": g.gateways, "h": g.hosts}
    pos: dict[str, tuple[float, float]] = {}
    for ci, (prefix, names) in enumerate(columns.items()):
        for ri, name in enumerate(names):
            pos[f"{prefix}:{name}"] = (20 + ci * _COL_W, 40 + ri * _ROW_H)
    rows = max((len(v) for v in columns.values()), default=0)
    bottom = 40.0 + max(1, rows) * _ROW_H  # direct edges (workload -> host) pass below the nodes
    width, height = 20 + 2 * _COL_W + _NODE_W + 20, bottom + 44
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="graph" width="{width}" '
        f'height="{height:.0f}" viewBox="0 0 {width} {height:.0f}" role="img" '
        'aria-label="workloads to gateways to external hosts">',
        '<text x="20" y="20" class="col">Workloads</text>',
        f'<text x="{20 + _COL_W}" y="20" class="col">Egress gateways</text>',
        f'<text x="{20 + 2 * _COL_W}" y="20" class="col">External hosts</text>',
    ]
    for e in g.edges:
        if e.source not in pos or e.target not in pos:
            continue
        sx, sy = pos[e.source]
        tx, ty = pos[e.target]
        x1, y1 = sx + _NODE_W, sy + _NODE_H / 2
        x2, y2 = tx, ty + _NODE_H / 2
        mid = (x1 + x2) / 2
        bad = e.errors > 0
        style = 'stroke="#dc2626" stroke-dasharray="5 3"' if bad else 'stroke="#64748b"'
        label = f"{e.requests} req" + (f", {e.errors} err" if e.errors else "")
        if x2 - x1 > _COL_W:  # skips the gateways' column: around it, below every node
            y1, y2 = sy + _NODE_H, ty + _NODE_H
            d = (
                f"M{sx + _NODE_W / 2:.0f},{y1:.0f} C{sx + _NODE_W / 2:.0f},{bottom + 20:.0f} "
                f"{tx + _NODE_W / 2:.0f},{bottom + 20:.0f} {tx + _NODE_W / 2:.0f},{y2:.0f}"
            )
            lx, ly = mid, bottom + 34  # under the curve's lowest point
        else:
            d = f"M{x1:.0f},{y1:.0f} C{mid:.0f},{y1:.0f} {mid:.0f},{y2:.0f} {x2:.0f},{y2:.0f}"
            lx, ly = mid, (y1 + y2) / 2 - 4
        parts.append(
            f'<path d="{d}" fill="none" stroke-width="1.5" {style} '
            f'data-edge="{escape(e.source)}->{escape(e.target)}"/>'
            f'<text x="{lx:.0f}" y="{ly:.0f}" class="edge" '
            f'text-anchor="middle">{escape(label)}</text>'
        )
    kinds = {"w": "workload", "g": "gateway", "h": "host"}
    for node, (nx, ny) in pos.items():
        prefix, name = node.split(":", 1)
        parts.append(
            f'<g class="node {kinds[prefix]}" data-node="{escape(node)}">'
            f'<rect x="{nx}" y="{ny}" width="{_NODE_W}" height="{_NODE_H}" rx="6"/>'
            f'<text x="{nx + 8}" y="{ny + 18}">{escape(name)}</text></g>'
        )
    if not pos:
        parts.append('<text x="20" y="50" class="empty">No traffic in the window yet.</text>')
    parts.append("</svg>")
    return "".join(parts)
