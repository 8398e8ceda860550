"""kubectl's JSONPath templates for ``get -o jsonpath=TEMPLATE``.

Rules (as kubectl documents them):
- A template is text with actions in braces: ``{.items[*].metadata.name}``,
  ``{range .items[*]}{.metadata.name}{"\\n"}{end}``, ``{"literal"}`` and ``{@}``.
- Paths start at the current object (the document, or the item inside a ``range``); ``..``
  descends recursively, ``[*]``, ``[N]``, ``[-1]``, ``[a:b]`` and filters
  ``[?(@.x=="y")]`` work as in kubectl. Path expressions are evaluated by ``jsonpath-ng``.
- Several results of one action are joined by a space; strings print raw, numbers and
  booleans in JSON spelling, maps and lists as compact JSON.
- Outside quotes, text is printed as written; ``\\n``, ``\\t`` and ``\\\\`` are unescaped
  inside quoted literals only. A bad template raises ``JsonPathError`` with the reason.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


class JsonPathError(ValueError):
    pass


@dataclass
class _Node:
    kind: str  # "text" | "path" | "range"
    value: str = ""
    body: list[_Node] = field(default_factory=list)


def _split(template: str) -> list[tuple[bool, str]]:
    """(is_action, text) pieces; braces inside quoted literals do not end an action."""
    out: list[tuple[bool, str]] = []
    i, n = 0, len(template)
    text = ""
    while i < n:
        c = template[i]
        if c != "{":
            text += c
            i += 1
            continue
        if text:
            out.append((False, text))
            text = ""
        j, quote = i + 1, ""
        while j < n:
            ch = template[j]
            if quote:
                if ch == "\\":
                    j += 1
                elif ch == quote:
                    quote = ""
            elif ch in "\"'":
                quote = ch
            elif ch == "}":
                break
            j += 1
        if j >= n:
            raise JsonPathError(f"unclosed action in {template!r}")
        out.append((True, template[i + 1 : j].strip()))
        i = j + 1
    if text:
        out.append((False, text))
    return out


def _parse(template: str) -> list[_Node]:
    root: list[_Node] = []
    stack = [root]
    for is_action, text in _split(template):
        top = stack[-1]
        if not is_action:
            top.append(_Node("text", text))
        elif text == "end":
            if len(stack) == 1:
                raise JsonPathError("{end} without {range}")
            stack.pop()
        elif text.startswith("range "):
            node = _Node("range", text[len("range ") :].strip())
            top.append(node)
            stack.append(node.body)
        elif len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
            top.append(_Node("text", _unescape(text[1:-1])))
        else:
            top.append(_Node("path", text))
    if len(stack) != 1:
        raise JsonPathError("{range} without {end}")
    return root


def _unescape(s: str) -> str:
    return s.replace("\\n", "\n").replace("\\t", "\t").replace("\\\\", "\\")


def _find(expr: str, data: Any) -> list[Any]:
    from jsonpath_ng.ext.parser import parse

    expr = expr.strip()
    if expr in ("@", "$", ""):
        return [data]
    if expr.startswith("@"):
        expr = expr[1:]
    if expr.startswith("$"):
        expr = expr[1:]
    if not expr.startswith((".", "[")):
        expr = "." + expr
    try:
        matches = parse("$" + expr).find(data)
    except Exception as exc:  # the parser raises several unrelated exception types
        raise JsonPathError(f"cannot parse {expr!r}: {exc}") from None
    return [m.value for m in matches]


def _show(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"))


def _render(nodes: list[_Node], data: Any) -> str:
    parts: list[str] = []
    for node in nodes:
        if node.kind == "text":
            parts.append(node.value)
        elif node.kind == "path":
            parts.append(" ".join(_show(v) for v in _find(node.value, data)))
        else:
            items = _find(node.value, data)
            # `range .items[*]` yields the items; `range .items` yields one list: iterate it
            if len(items) == 1 and isinstance(items[0], list):
                items = items[0]
            for item in items:
                parts.append(_render(node.body, item))
    return "".join(parts)


def values(expr: str, data: Any) -> list[Any]:
    """What one path (``.metadata.name``, with or without braces) finds in ``data``, as
    ``--sort-by`` and ``custom-columns`` take it (kubectl's relaxed JSONPath)."""
    expr = expr.strip()
    if expr.startswith("{") and expr.endswith("}"):
        expr = expr[1:-1]
    return _find(expr, data)


def show(value: Any) -> str:
    """One found value as a template prints it: strings raw, anything else as JSON."""
    return _show(value)


def render(template: str, data: Any) -> str:
    """``data`` printed through kubectl JSONPath ``template``."""
    return _render(_parse(template), data)
