"""``meshgate label``: kubectl label's twin, Istio's recipe lines as written."""

from __future__ import annotations

import yaml
from tests.unit.cli.conftest import Run


def labels(run: Run, *args: str) -> dict[str, str]:
    obj = yaml.safe_load(run("get", *args, "-o", "yaml").stdout)
    return dict(obj["metadata"].get("labels") or {})


def test_istio_recipe_labels_namespaces_that_have_no_object_yet(walkthrough: Run) -> None:
    result = walkthrough("label", "namespace", "istio-system", "istio=system")
    assert result.exit_code == 0, result.output
    assert result.stdout == "namespace/istio-system labeled\n"
    assert walkthrough("label", "ns", "kube-system", "kube-system=true").exit_code == 0
    assert labels(walkthrough, "ns", "kube-system") == {"kube-system": "true"}
    assert labels(walkthrough, "namespace", "istio-system") == {"istio": "system"}
    again = walkthrough("label", "ns", "kube-system", "kube-system=true")
    assert again.stdout == "namespace/kube-system not labeled\n"


def test_overwrite_and_removal(walkthrough: Run) -> None:
    assert walkthrough("label", "svc", "sleep", "tier=front").exit_code == 0
    refused = walkthrough("label", "svc/sleep", "tier=back")
    assert refused.exit_code == 1
    assert "'tier' already has a value (front), and --overwrite is false" in refused.stderr
    assert walkthrough("label", "svc/sleep", "tier=back", "--overwrite").exit_code == 0
    assert labels(walkthrough, "svc", "sleep")["tier"] == "back"
    assert walkthrough("label", "svc", "sleep", "tier-").stdout == "service/sleep labeled\n"
    assert "tier" not in labels(walkthrough, "svc", "sleep")


def test_missing_objects_and_bad_labels_change_nothing(walkthrough: Run) -> None:
    missing = walkthrough("label", "svc", "nope", "a=b")
    assert missing.exit_code == 1
    assert 'Error from server (NotFound): services "nope" not found' in missing.stderr
    assert walkthrough("label", "ns", "no-such-ns", "a=b").exit_code == 1
    bad = walkthrough("label", "svc", "sleep", "bad key!=x")
    assert bad.exit_code == 1 and "invalid label key" in bad.stderr
    assert walkthrough("label", "svc", "sleep").exit_code == 1
    dry = walkthrough("label", "svc", "sleep", "a=b", "--dry-run")
    assert dry.stdout == "service/sleep labeled (dry run)\n"
    assert "a" not in labels(walkthrough, "svc", "sleep")
