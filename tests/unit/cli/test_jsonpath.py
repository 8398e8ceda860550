"""kubectl JSONPath templates, as `meshgate get -o jsonpath=...` prints them."""

from __future__ import annotations

import pytest

from meshgate.cli.jsonpath import JsonPathError, render

PODS = {
    "kind": "List",
    "items": [
        {
            "metadata": {"name": "sleep-a", "labels": {"app": "sleep"}},
            "status": {"podIP": "10.34.0.10", "phase": "Running"},
            "spec": {"containers": [{"name": "sleep", "ports": [{"containerPort": 80}]}]},
        },
        {
            "metadata": {"name": "gw-b", "labels": {"app": "gw"}},
            "status": {"podIP": "10.34.0.11", "phase": "Pending"},
            "spec": {"containers": [{"name": "istio-proxy"}]},
        },
    ],
}


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{.items..metadata.name}", "sleep-a gw-b"),
        ("{.items[*].status.podIP}", "10.34.0.10 10.34.0.11"),
        ("{.items[0].metadata.name}", "sleep-a"),
        ("{.items[-1].metadata.name}", "gw-b"),
        ('{.items[?(@.metadata.labels.app=="gw")].status.podIP}', "10.34.0.11"),
        ("{.items[0].metadata.labels}", '{"app":"sleep"}'),
        ("{.items[0].spec.containers[0].ports[0].containerPort}", "80"),
        ("name={.items[0].metadata.name};", "name=sleep-a;"),
        (
            '{range .items[*]}{.metadata.name}{"\\t"}{.status.phase}{"\\n"}{end}',
            "sleep-a\tRunning\ngw-b\tPending\n",
        ),
        ("{range .items}{.metadata.name},{end}", "sleep-a,gw-b,"),
        ("{.kind}", "List"),
        ("{.items[5].metadata.name}", ""),
        ('{"{literal}"}', "{literal}"),
    ],
)
def test_templates(template: str, expected: str) -> None:
    assert render(template, PODS) == expected


def test_current_object() -> None:
    assert render("{@}", "x") == "x"
    assert render("{.status.podIP}", PODS["items"][0]) == "10.34.0.10"  # type: ignore[index]


@pytest.mark.parametrize("template", ["{.items[", "{range .items[*]}{.x}", "{end}", "{.a"])
def test_bad_templates_say_why(template: str) -> None:
    with pytest.raises(JsonPathError):
        render(template, PODS)
