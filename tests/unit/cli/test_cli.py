"""The CLI end to end over a real store: apply, get, describe, delete, validate, history."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from typer.testing import Result

Run = Callable[..., Result]
WALKTHROUGH = Path(__file__).resolve().parents[3] / "examples" / "walkthrough"

SE = "serviceentry.networking.istio.io/external-svc-http"


def test_apply_walkthrough_prints_kubectl_lines(mg: Run) -> None:
    result = mg("apply", "-f", str(WALKTHROUGH / "1-sleep.yaml"))
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines() == [
        "serviceaccount/sleep created",
        "service/sleep created",
        "deployment.apps/sleep created",
    ]
    again = mg("apply", "-f", str(WALKTHROUGH / "1-sleep.yaml"))
    assert all(line.endswith(" unchanged") for line in again.stdout.splitlines())


@pytest.mark.parametrize(
    ("args", "header", "name"),
    [
        (["get", "se"], ["NAME", "HOSTS", "LOCATION", "RESOLUTION", "AGE"], "external-svc-http"),
        (["get", "serviceentries"], ["NAME", "HOSTS", "LOCATION", "RESOLUTION", "AGE"], None),
        (["get", "vs"], ["NAME", "GATEWAYS", "HOSTS", "AGE"], "egressgateway-vs"),
        (["get", "gw"], ["NAME", "AGE"], "egress-gw"),
        (["get", "gateway"], ["NAME", "AGE"], "egress-gw"),
        (["get", "deploy"], ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"], "sleep"),
        (["get", "svc"], ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"], "sleep"),
        (["get", "sa"], ["NAME", "SECRETS", "AGE"], "sleep"),
        (["get", "meshconfig"], ["NAME", "MODE", "EGRESS-ENFORCEMENT", "AGE"], "default"),
        (
            ["get", "istiogateway", "-n", "istio-system"],
            ["NAME", "TYPE", "REPLICAS", "AGE"],
            "istio-egressgateway",
        ),
        (
            ["-n", "istio-system", "get", "istiogateways"],
            ["NAME", "TYPE", "REPLICAS", "AGE"],
            "istio-egressgateway",
        ),
    ],
)
def test_get_each_kind(walkthrough: Run, args: list[str], header: list[str], name: str) -> None:
    result = walkthrough(*args)
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == [h for col in header for h in col.split()]
    if name:
        assert lines[1].split()[0] == name


def test_table_is_aligned_like_kubectl(walkthrough: Run) -> None:
    lines = walkthrough("get", "se").stdout.splitlines()
    assert lines[0].startswith(
        "NAME                HOSTS            LOCATION        RESOLUTION   AGE"
    )
    assert lines[1].startswith('external-svc-http   ["aliyun.com"]   MESH_EXTERNAL   DNS          ')
    assert walkthrough("get", "meshconfig").stdout.split()[:7] == [
        "NAME",
        "MODE",
        "EGRESS-ENFORCEMENT",
        "AGE",
        "default",
        "REGISTRY_ONLY",
        "OFF",
    ]


def test_round_trip_get_yaml_then_apply_is_unchanged(walkthrough: Run) -> None:
    kinds = "se,vs,gw,deploy,svc,sa,meshconfig,istiogateway"
    dumped = walkthrough("get", kinds, "-A", "-o", "yaml")
    assert dumped.exit_code == 0, dumped.stderr
    doc = yaml.safe_load(dumped.stdout)
    assert doc["kind"] == "List" and len(doc["items"]) == 8
    result = walkthrough("apply", "-f", "-", input=dumped.stdout)
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 8
    assert all(line.endswith(" unchanged") for line in lines), lines


def test_output_json_of_listing_is_a_list_and_of_one_name_is_the_object(walkthrough: Run) -> None:
    listing = json.loads(walkthrough("get", "se", "-o", "json").stdout)
    assert listing["apiVersion"] == "v1"
    assert listing["kind"] == "List"
    assert listing["metadata"] == {"resourceVersion": ""}
    assert [i["metadata"]["name"] for i in listing["items"]] == ["external-svc-http"]
    one = json.loads(walkthrough("get", "se", "external-svc-http", "-o", "json").stdout)
    assert one["kind"] == "ServiceEntry"
    assert one["spec"]["hosts"] == ["aliyun.com"]
    assert one["metadata"]["resourceVersion"]
    one_yaml = yaml.safe_load(walkthrough("get", "se/external-svc-http", "-o", "yaml").stdout)
    assert one_yaml == one


def test_output_name_and_kind_slash_name(walkthrough: Run) -> None:
    assert walkthrough("get", "se", "-o", "name").stdout == f"{SE}\n"
    result = walkthrough("get", "deploy/sleep", "svc/sleep", "-o", "name")
    assert result.stdout.splitlines() == ["deployment.apps/sleep", "service/sleep"]


def test_several_kinds_print_qualified_names_in_separate_tables(walkthrough: Run) -> None:
    out = walkthrough("get", "se,vs").stdout
    tables = out.split("\n\n")
    assert len(tables) == 2
    assert SE in tables[0]
    assert "virtualservice.networking.istio.io/egressgateway-vs" in tables[1]


def test_all_namespaces_adds_namespace_column(walkthrough: Run) -> None:
    default_only = walkthrough("get", "istiogateway")
    assert default_only.stdout == ""
    assert default_only.stderr.strip() == "No resources found in default namespace."
    lines = walkthrough("get", "istiogateway", "-A").stdout.splitlines()
    assert lines[0].split()[:2] == ["NAMESPACE", "NAME"]
    assert lines[1].split()[:2] == ["istio-system", "istio-egressgateway"]


def test_label_selector(walkthrough: Run) -> None:
    assert walkthrough("get", "svc", "-l", "app=sleep", "-o", "name").stdout == "service/sleep\n"
    assert walkthrough("get", "svc", "-l", "app in (x,y)", "-o", "name").stdout == ""
    assert walkthrough("get", "svc", "-l", "!app", "-o", "name").stdout == ""
    bad = walkthrough("get", "svc", "-l", "app in (x")
    assert bad.exit_code == 1
    assert bad.stderr.startswith("error: ")


def test_unknown_kind_and_missing_name(walkthrough: Run) -> None:
    unknown = walkthrough("get", "foo")
    assert unknown.exit_code == 1
    assert unknown.stderr == 'error: the server doesn\'t have a resource type "foo"\n'
    missing = walkthrough("get", "se", "x")
    assert missing.exit_code == 1
    assert missing.stderr == (
        'Error from server (NotFound): serviceentries.networking.istio.io "x" not found\n'
    )
    partial = walkthrough("get", "se", "external-svc-http", "x", "-o", "name")
    assert partial.exit_code == 1
    assert partial.stdout == f"{SE}\n"


def test_invalid_document_changes_nothing_and_names_file_line_field(
    mg: Run, tmp_path: Path
) -> None:
    bad = tmp_path / "mixed.yaml"
    bad.write_text(
        (WALKTHROUGH / "3-serviceentry.yaml").read_text()
        + "---\n"
        + "apiVersion: networking.istio.io/v1beta1\n"
        + "kind: ServiceEntry\n"
        + "metadata:\n"
        + "  name: broken\n"
        + "spec:\n"
        + "  hosts: [example.com]\n"
        + "  resolutionn: DNS\n"
    )
    result = mg("apply", "-f", str(bad))
    assert result.exit_code == 1
    assert f"{bad}:21" in result.stderr
    assert "spec.resolutionn" in result.stderr
    assert result.stdout == ""
    assert mg("get", "se", "-A").stderr.strip() == "No resources found"


def test_dry_run_changes_nothing(mg: Run) -> None:
    path = str(WALKTHROUGH / "3-serviceentry.yaml")
    for flag in ("--dry-run", "--dry-run=client"):
        result = mg("apply", "-f", path, flag)
        assert result.exit_code == 0, result.stderr
        assert result.stdout == f"{SE} created (dry run)\n"
    server = mg("apply", "--dry-run=server", "-f", path)
    assert server.stdout == f"{SE} created (server dry run)\n"
    assert mg("get", "se", "-o", "name").stdout == ""
    assert mg("apply", "-f", path, "--dry-run=bogus").exit_code == 1
    mg("apply", "-f", path)
    deleted = mg("delete", "se", "external-svc-http", "--dry-run")
    assert deleted.stdout == (
        'serviceentry.networking.istio.io "external-svc-http" deleted (dry run)\n'
    )
    assert mg("get", "se", "-o", "name").stdout == f"{SE}\n"


def test_namespace_flag_and_conflict(mg: Run) -> None:
    se = str(WALKTHROUGH / "3-serviceentry.yaml")
    assert mg("apply", "-f", se, "-n", "team-a").exit_code == 0
    assert mg("get", "se", "-n", "team-a", "-o", "name").stdout == f"{SE}\n"
    assert mg("get", "se", "-o", "name").stdout == ""
    gateway = str(WALKTHROUGH / "4-egress-gateway.yaml")  # names istio-system and default
    conflict = mg("apply", "-f", gateway, "-n", "team-a")
    assert conflict.exit_code == 1
    assert 'does not match the namespace "team-a"' in conflict.stderr
    assert mg("get", "gw", "-A", "-o", "name").stdout == ""


def test_delete_by_name_and_by_file(walkthrough: Run) -> None:
    result = walkthrough("delete", "se", "external-svc-http")
    assert result.exit_code == 0
    assert result.stdout == 'serviceentry.networking.istio.io "external-svc-http" deleted\n'
    again = walkthrough("delete", "se", "external-svc-http")
    assert again.exit_code == 1
    assert "(NotFound)" in again.stderr
    assert walkthrough("delete", "se", "external-svc-http", "--ignore-not-found").exit_code == 0
    by_file = walkthrough("delete", "-f", str(WALKTHROUGH / "4-egress-gateway.yaml"))
    assert by_file.exit_code == 0, by_file.stderr
    assert by_file.stdout.splitlines() == [
        'istiogateway.istio.alibabacloud.com "istio-egressgateway" deleted',
        'gateway.networking.istio.io "egress-gw" deleted',
        'virtualservice.networking.istio.io "egressgateway-vs" deleted',
    ]
    assert walkthrough("get", "gw,vs", "-A", "-o", "name").stdout == ""


def test_describe(walkthrough: Run) -> None:
    result = walkthrough("describe", "se", "external-svc-http")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0] == "Name:         external-svc-http"
    assert lines[1] == "Namespace:    default"
    assert "Kind:         ServiceEntry" in lines
    assert "  Location:    MESH_EXTERNAL" in lines or "  Location:  MESH_EXTERNAL" in lines
    assert lines[-1] == "Events:  <none>"
    assert walkthrough("describe", "se", "nope").exit_code == 1


def test_validate(mg: Run, tmp_path: Path) -> None:
    result = mg("validate", "-f", str(WALKTHROUGH))
    assert result.exit_code == 0, result.stderr
    assert f'"{WALKTHROUGH / "1-sleep.yaml"}" is valid' in result.stdout.splitlines()
    assert len(result.stdout.splitlines()) == 4
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata:\n"
        "  name: x\nspec:\n  hosts: [a.com]\n  ports:\n  - number: abc\n"
        "    name: http\n"
    )
    invalid = mg("validate", "-f", str(bad))
    assert invalid.exit_code == 1
    assert f"{bad}:8" in invalid.stderr
    assert "spec.ports[0].number" in invalid.stderr
    assert not (tmp_path / "home").exists()  # offline: no store was opened


def test_history_and_rollback(mg: Run, tmp_path: Path) -> None:
    original = (WALKTHROUGH / "3-serviceentry.yaml").read_text()
    edited = tmp_path / "se.yaml"
    edited.write_text(original.replace("resolution: DNS", "resolution: NONE"))
    mg("apply", "-f", str(WALKTHROUGH / "3-serviceentry.yaml"))
    assert mg("apply", "-f", str(edited)).stdout == f"{SE} configured\n"
    history = mg("history", "se", "external-svc-http")
    assert history.exit_code == 0, history.stderr
    rows = [line.split() for line in history.stdout.splitlines()[2:]]
    assert [r[1:] for r in rows] == [["1", "created"], ["2", "configured"]]
    first = rows[0][0]
    old = yaml.safe_load(mg("history", "se", "external-svc-http", "--revision", first).stdout)
    assert old["spec"]["resolution"] == "DNS"
    rolled = mg("rollback", "se", "external-svc-http")
    assert rolled.stdout == f"{SE} rolled back\n", rolled.stderr
    now = json.loads(mg("get", "se", "external-svc-http", "-o", "json").stdout)
    assert now["spec"]["resolution"] == "DNS"


@pytest.mark.parametrize(
    "verb", ["apply", "get", "describe", "delete", "validate", "history", "rollback", "version"]
)
def test_every_verb_has_help(mg: Run, verb: str) -> None:
    result = mg(verb, "--help")
    assert result.exit_code == 0
    assert "Usage:" in result.stdout
    if verb != "version":
        assert "Examples:" in result.stdout


def test_console_script_version() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "meshgate.cli.main", "version", "--short"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert proc.stdout.strip().startswith("v")


def test_reading_an_empty_mesh_creates_nothing(mg: Run, tmp_path: Path) -> None:
    result = mg("get", "se")
    assert result.exit_code == 0
    assert result.stderr == "No resources found in default namespace.\n"
    assert mg("delete", "se", "x").exit_code == 1
    assert mg("history", "se", "x").exit_code == 1
    assert not (tmp_path / "home").exists()
