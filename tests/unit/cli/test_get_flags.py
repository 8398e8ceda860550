"""``get`` flags scripts use: --no-headers, --sort-by, -o custom-columns, and -o wide NODE."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import Result

from meshgate.cli.columns import columns_for
from meshgate.cli.customcols import custom_table, parse_columns
from meshgate.cli.sortby import sort_by

Run = Callable[..., Result]

SE = """apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: {name}, namespace: {ns}}}
spec:
  hosts: [{host}]
  ports: [{{number: {port}, name: http, protocol: HTTP}}]
  resolution: DNS
"""


@pytest.fixture
def three(mg: Run, tmp_path: Path) -> Run:
    """Three ServiceEntries applied in the order c, a, b (so creation order is not name order)."""
    for name, host, port, ns in (
        ("c-se", "z.example.com", 8080, "default"),
        ("a-se", "y.example.com", 80, "default"),
        ("b-se", "x.example.com", 443, "other"),
    ):
        path = tmp_path / f"{name}.yaml"
        path.write_text(SE.format(name=name, host=host, port=port, ns=ns))
        assert mg("apply", "-f", str(path)).exit_code == 0
    return mg


def lines(result: Result) -> list[list[str]]:
    assert result.exit_code == 0, result.stderr
    return [line.split() for line in result.stdout.splitlines()]


def test_no_headers(three: Run) -> None:
    got = lines(three("get", "se", "-A", "--no-headers"))
    assert [row[:2] for row in got] == [["default", "a-se"], ["default", "c-se"], ["other", "b-se"]]
    assert lines(three("get", "se", "--no-headers", "-o", "name")) == [
        ["serviceentry.networking.istio.io/a-se"],
        ["serviceentry.networking.istio.io/c-se"],
    ]


def test_sort_by_paths(three: Run) -> None:
    def names(*flags: str) -> list[str]:
        return [row[1] for row in lines(three("get", "se", "-A", "--no-headers", *flags))]

    assert names("--sort-by=.spec.hosts[0]") == ["b-se", "a-se", "c-se"]
    # Numbers sort as numbers (80 < 443 < 8080), not as text.
    assert names("--sort-by={.spec.ports[0].number}") == ["a-se", "b-se", "c-se"]
    # Applied c, a, b: the store's resourceVersion records that order.
    assert names("--sort-by=.metadata.resourceVersion") == ["c-se", "a-se", "b-se"]
    assert names("--sort-by=.metadata.name") == ["a-se", "b-se", "c-se"]


def test_sort_by_applies_to_other_formats(three: Run) -> None:
    result = three("get", "se", "-A", "--sort-by=.spec.hosts[0]", "-o", "name")
    assert result.stdout.split() == [
        "serviceentry.networking.istio.io/b-se",
        "serviceentry.networking.istio.io/a-se",
        "serviceentry.networking.istio.io/c-se",
    ]


def test_sort_by_a_missing_field_fails_as_kubectl(three: Run) -> None:
    result = three("get", "se", "--sort-by=.spec.nope")
    assert result.exit_code == 1
    assert 'couldn\'t find any field with path "{.spec.nope}"' in result.stderr


def test_custom_columns(three: Run) -> None:
    result = three(
        "get", "se", "-A", "-o", "custom-columns=NAME:.metadata.name,HOST:{.spec.hosts[*]},X:.nope"
    )
    assert lines(result) == [
        ["NAME", "HOST", "X"],
        ["a-se", "y.example.com", "<none>"],
        ["c-se", "z.example.com", "<none>"],
        ["b-se", "x.example.com", "<none>"],
    ]
    quiet = three("get", "se", "-o", "custom-columns=N:.metadata.name", "--no-headers")
    assert quiet.stdout.split() == ["a-se", "c-se"]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "custom-columns format specified but no custom columns given"),
        ("NAME", "unexpected custom-columns spec: NAME, expected <header>:<json-path-expr>"),
        ("NAME:.a,:.b", "unexpected custom-columns spec: :.b"),
    ],
)
def test_custom_columns_spec_errors(three: Run, spec: str, message: str) -> None:
    result = three("get", "se", "-o", f"custom-columns={spec}")
    assert result.exit_code == 1
    assert message in result.stderr


def test_custom_table_joins_many_values_and_prints_json_for_maps() -> None:
    objs = [{"a": [1, 2], "m": {"k": "v"}, "s": "x"}, {"s": None}]
    cols = parse_columns("A:.a[*],M:.m,S:.s")
    assert custom_table(cols, objs).splitlines() == [
        "A        M           S",
        '1,2      {"k":"v"}   x',
        "<none>   <none>      <none>",
    ]
    assert custom_table(cols, objs, headers=False).splitlines()[0].split() == [
        "1,2",
        '{"k":"v"}',
        "x",
    ]


def test_sort_by_puts_missing_values_first_and_keeps_ties_in_order() -> None:
    objs: list[dict[str, object]] = [
        {"n": "b", "v": 2},
        {"n": "a"},
        {"n": "c", "v": 1},
        {"n": "d", "v": 2},
    ]
    assert [o["n"] for o in sort_by(".v", objs)] == ["a", "c", "b", "d"]
    with pytest.raises(ValueError, match="couldn't find any field"):
        sort_by(".w", objs)
    assert sort_by(".w", []) == []


def _node(pod: dict[str, object]) -> str:
    [node] = [c for c in columns_for("", "Pod", wide=True) if c.header == "NODE"]
    return node.value(pod)


def test_wide_pod_node_is_the_mesh_node_once_placed() -> None:
    placed = {"metadata": {"name": "p"}, "spec": {}, "status": {"hostIP": "10.34.0.1"}}
    assert _node(placed) == "meshgate-node"
    assert _node({"metadata": {"name": "p"}, "spec": {}, "status": {}}) == "<none>"
    assert _node({"metadata": {"name": "p"}, "spec": {"nodeName": "n1"}}) == "n1"


def test_boolean_flags_take_kubectls_true_and_false() -> None:
    from meshgate.cli.options import bare_flags_with_values

    args = ["delete", "vs", "x", "--ignore-not-found=true", "--overwrite=false", "--dry-run"]
    assert bare_flags_with_values(args) == [
        "delete",
        "vs",
        "x",
        "--ignore-not-found",
        "--dry-run=client",
    ]
    # Not a boolean flag, or after "--": untouched.
    assert bare_flags_with_values(["--set", "a=true", "--", "--overwrite=true"]) == [
        "--set",
        "a=true",
        "--",
        "--overwrite=true",
    ]
