"""YAML decode/encode round trips, and fuzzed YAML that gives problems, never a traceback.

- Any JSON-like value dumped as YAML reads back equal (scalar typing must not turn a
  quoted "on" or "0o17" into a bool or a number, nor a number into a string).
- A valid ServiceEntry/VirtualService/Service, in any YAML style, decodes to a resource
  whose wire form is what was written (plus Kubernetes defaults), and that wire form,
  dumped again as ``get -o yaml`` does, decodes to the same wire form.
- Random and mutated texts, YAML or JSON, decode to problems with a code and a line that
  is a line of the text as an editor shows it (``editor_lines``), whatever odd characters
  they hold (CR, tab, BOM, NUL, NEL/LS/PS, a lone surrogate).
"""

from __future__ import annotations

import string
from pathlib import Path
from typing import Any

import yaml
from hypothesis import example, given
from hypothesis import strategies as st
from tests.property.editor_lines import line_count

from meshgate.api.decode import decode_text
from meshgate.api.yamlsource import SourceDocument, iter_documents

ROOT = Path(__file__).resolve().parents[2]
SOURCES = sorted((ROOT / "examples" / "walkthrough").glob("*.yaml"))
SAMPLES = [
    p.read_text(encoding="utf-8")
    for p in [*SOURCES, ROOT / "tests" / "unit" / "api" / "data" / "reference-examples.yaml"]
]

TRICKY = st.sampled_from(
    ["on", "off", "yes", "No", "null", "~", "0o17", "017", "0x1f", "1e3", "1_000", ".5",
     "12:30", "2023-12-14", "true", "-", "*", "&a", "!x", "a: b", "# c", "'", '"', "", " x",
     "x ", "\t", "é", "中文", "<<", "=", "1.0", "-0", "+1", ".inf", ".nan"]
)  # fmt: skip
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63),
    st.floats(allow_nan=False, allow_infinity=False),
    TRICKY,
    st.text(max_size=10),
)
JSONISH: st.SearchStrategy[Any] = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(TRICKY, st.text(max_size=6)), inner, max_size=4),
    ),
    max_leaves=30,
)
STYLES = st.sampled_from([False, None, True])


@given(values=st.lists(JSONISH, min_size=1, max_size=3), flow=STYLES)
def test_plain_values_round_trip(values: list[Any], flow: bool | None) -> None:
    # Dumped as `get -o yaml` does (non-ASCII escaped: PyYAML's emitter writes NEL and
    # LS raw inside quotes when allowed unicode, and no reader can get them back).
    text = yaml.dump_all(values, Dumper=yaml.CSafeDumper, default_flow_style=flow)
    read = [d.value for d in iter_documents(text) if isinstance(d, SourceDocument)]
    assert read == [v for v in values if v is not None]
    assert all(isinstance(d, SourceDocument) for d in iter_documents(text))


LABEL = st.text(alphabet=string.ascii_lowercase + string.digits, min_size=1, max_size=8)
DNS = st.lists(LABEL, min_size=2, max_size=4).map(".".join)
NAME = st.from_regex(r"[a-z]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)
PROTOCOLS = st.sampled_from(["HTTP", "HTTPS", "GRPC", "HTTP2", "TCP", "TLS", "MONGO"])


@st.composite
def ports(draw: st.DrawFn) -> list[dict[str, Any]]:
    numbers = draw(st.lists(st.integers(1, 65535), max_size=3, unique=True))
    return [
        {"number": n, "name": f"p-{n}", "protocol": draw(PROTOCOLS)}
        | draw(st.fixed_dictionaries({}, optional={"targetPort": st.integers(1, 65535)}))
        for n in numbers
    ]


def meta(name: str, namespace: str, labels: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "namespace": namespace}
    if labels:
        out["labels"] = labels
    return out


@st.composite
def service_entries(draw: st.DrawFn) -> dict[str, Any]:
    spec: dict[str, Any] = {"hosts": draw(st.lists(DNS, min_size=1, max_size=3, unique=True))}
    spec |= draw(
        st.fixed_dictionaries(
            {},
            optional={
                "location": st.sampled_from(["MESH_EXTERNAL", "MESH_INTERNAL"]),
                "resolution": st.sampled_from(["NONE", "DNS", "DNS_ROUND_ROBIN"]),
                "ports": ports(),
                "exportTo": st.sampled_from([["*"], ["."], ["default", "web"]]),
            },
        )
    )
    return {
        "apiVersion": draw(
            st.sampled_from(["networking.istio.io/v1", "networking.istio.io/v1beta1"])
        ),
        "kind": "ServiceEntry",
        "metadata": meta(draw(NAME), draw(NAME), draw(st.dictionaries(NAME, NAME, max_size=2))),
        "spec": spec,
    }


@st.composite
def virtual_services(draw: st.DrawFn) -> dict[str, Any]:
    hosts = draw(st.lists(DNS, min_size=1, max_size=2, unique=True))
    routes = []
    for _ in range(draw(st.integers(1, 3))):
        split = draw(st.integers(1, 3))
        weights = [100 // split] * split
        weights[0] += 100 - sum(weights)
        route: dict[str, Any] = {
            "route": [
                {
                    "destination": {
                        "host": draw(DNS),
                        "port": {"number": draw(st.integers(1, 65535))},
                    }
                }
                | ({"weight": w} if split > 1 else {})
                for w in weights
            ]
        }
        if draw(st.booleans()):
            kind = draw(st.sampled_from(["prefix", "exact"]))
            route["match"] = [{"uri": {kind: "/" + draw(LABEL)}}]
        if draw(st.booleans()):
            route["timeout"] = draw(st.sampled_from(["5s", "1.5s", "100ms", "1m30s"]))
        routes.append(route)
    spec: dict[str, Any] = {"hosts": hosts, "http": routes}
    if draw(st.booleans()):
        spec["gateways"] = draw(st.sampled_from([["mesh"], ["mesh", "egress-gw"]]))
    return {
        "apiVersion": draw(
            st.sampled_from(["networking.istio.io/v1", "networking.istio.io/v1alpha3"])
        ),
        "kind": "VirtualService",
        "metadata": meta(draw(NAME), draw(NAME), {}),
        "spec": spec,
    }


@st.composite
def services(draw: st.DrawFn) -> dict[str, Any]:
    numbers = draw(st.lists(st.integers(1, 65535), min_size=1, max_size=3, unique=True))
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta(draw(NAME), draw(NAME), {"app": draw(NAME)}),
        "spec": {
            "ports": [{"port": n, "name": f"p-{n}"} for n in numbers],
            "selector": {"app": draw(NAME)},
        },
    }


def contains(wire: Any, written: Any) -> bool:
    """``wire`` has everything written, with the same values (defaults may add keys)."""
    if isinstance(written, dict):
        return isinstance(wire, dict) and all(
            k in wire and contains(wire[k], v) for k, v in written.items()
        )
    if isinstance(written, list):
        return (
            isinstance(wire, list)
            and len(wire) == len(written)
            and all(contains(a, b) for a, b in zip(wire, written, strict=True))
        )
    return bool(wire == written and type(wire) is type(written))


@given(
    docs=st.lists(st.one_of(service_entries(), virtual_services(), services()), max_size=4),
    flow=STYLES,
)
def test_resources_round_trip_through_yaml(docs: list[dict[str, Any]], flow: bool | None) -> None:
    text = yaml.safe_dump_all(docs, default_flow_style=flow, sort_keys=False)
    result = decode_text(text, "gen.yaml")
    assert result.ok, [str(p) for p in result.problems]
    wires = [d.resource.to_wire() for d in result.documents]
    assert len(wires) == len(docs)
    for wire, doc in zip(wires, docs, strict=True):
        assert contains(wire, doc), (wire, doc)
        if doc["kind"] != "Service":
            assert wire == doc  # Istio kinds: nothing is added
    # As `get -o yaml` then `apply` does: the wire form decodes to itself.
    again = decode_text(yaml.safe_dump_all(wires), "again.yaml")
    assert again.ok
    assert [d.resource.to_wire() for d in again.documents] == wires


def check_problems(text: str, name: str = "fuzz.yaml") -> None:
    result = decode_text(text, name)
    last = line_count(text)
    for p in result.problems:
        assert p.code and p.code.startswith("MG"), p
        assert p.file == name
        assert p.line is None or 1 <= p.line <= last, (p, last)
    for d in result.documents:
        d.resource.to_wire()
        for line in (d.line, d.line_of(("spec",)), d.line_of(("metadata", "name"))):
            assert line is None or 1 <= line <= last, (d, line, last)


YAML_CHARS = "abk:- \n\t{}[],&*!|>'\"#%@`?~0123456789.\\/"
# What editors, YAML 1.1 and YAML 1.2 disagree on, or no YAML text may hold.
ODD = ["\r", "\r\n", "\t", "\ufeff", "\x00", "\x85", "\u2028", "\u2029", "\x0b", "\x0c", "\x7f",
       "\ud800", "\udcff", "\U0001f600"]  # fmt: skip
ODD_TEXT = st.lists(st.sampled_from([*YAML_CHARS, *ODD]), max_size=60).map("".join)


@given(
    text=st.text(alphabet=YAML_CHARS, max_size=80) | st.text(max_size=40) | ODD_TEXT,
    name=st.sampled_from(["fuzz.yaml", "fuzz.json"]),
)
@example(text="0:\r0", name="fuzz.yaml")  # YAML ends a line at a lone CR, as editors do
@example(text="0:\n0", name="fuzz.yaml")  # an error at the end is on the last line, not after
@example(text="a: \ud800", name="fuzz.yaml")  # no UTF-8 for libyaml: once a traceback
@example(text="[\r1,\r2,]", name="fuzz.json")  # JSON's own lineno counts "\n" alone
def test_random_text_gives_problems_not_tracebacks(text: str, name: str) -> None:
    check_problems(text, name)


PIECES = [":", "-", " ", "\n", "  ", "{", "[", "'", "&x", "*x", "<<", "!!int", "!!bool", "!!float",
          "!!binary", "!x", "---", "...", "\t", "0", "null", "x", "|", ">-", "? ",
          *ODD]  # fmt: skip


@st.composite
def mutated(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from(SAMPLES))
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(text)))
        edit = draw(st.sampled_from(["delete", "insert", "replace"]))
        piece = draw(st.sampled_from(PIECES))
        if edit == "delete":
            text = text[:at] + text[at + draw(st.integers(1, 8)) :]
        elif edit == "insert":
            text = text[:at] + piece + text[at:]
        else:
            text = text[:at] + piece + text[at + len(piece) :]
    return text


@given(text=mutated())
def test_mutated_examples_give_problems_not_tracebacks(text: str) -> None:
    check_problems(text)
