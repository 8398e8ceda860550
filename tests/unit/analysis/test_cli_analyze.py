"""``meshgate analyze``: offline files, the store, thresholds and output formats."""

from __future__ import annotations

import json
from pathlib import Path

from tests.unit.cli.conftest import WALKTHROUGH, Run

BAD_VS = """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: foo
spec:
  hosts: [foo.example.com]
  http:
  - route:
    - destination:
        host: bar
"""

TCP_SE = """apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db}
spec:
  hosts: [db.example.com]
  ports: [{number: 5432, name: tcp, protocol: TCP}]
  resolution: DNS
"""


def test_walkthrough_offline_only_notes_that_the_gateway_can_be_gone_around(
    mg: Run, tmp_path: Path
) -> None:
    result = mg("analyze", "--offline", "-f", str(WALKTHROUGH))
    assert result.exit_code == 0, result.output
    path = WALKTHROUGH / "4-egress-gateway.yaml"
    assert result.stdout.splitlines() == [
        f"Info [MG2003] (VirtualService default/egressgateway-vs {path}:47) This VirtualService "
        "sends traffic to the egress gateway istio-egressgateway.istio-system.svc.cluster.local, "
        "but MeshConfig egressEnforcement is OFF: workloads can go around the gateway (a pod "
        "without a sidecar, or traffic its sidecar passes through, reaches external hosts "
        "directly). Set egressEnforcement: GATEWAY_ONLY to make the gateway the only exit."
    ]
    # With the exit enforced, the walkthrough is clean.
    enforced = tmp_path / "enforced.yaml"
    enforced.write_text(
        (WALKTHROUGH / "2-registry-only.yaml").read_text() + "  egressEnforcement: GATEWAY_ONLY\n"
    )
    files = [str(p) for p in sorted(WALKTHROUGH.glob("*.yaml")) if "2-" not in p.name]
    result = mg("analyze", "--offline", *[a for f in [*files, str(enforced)] for a in ("-f", f)])
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert "\u2714 No validation issues found when analyzing all namespaces." in result.stderr


def test_walkthrough_without_the_gateway_workload_is_not_clean(mg: Run) -> None:
    files = [str(p) for p in sorted(WALKTHROUGH.glob("*.yaml")) if "4-" not in p.name]
    gateway_docs = (WALKTHROUGH / "4-egress-gateway.yaml").read_text().split("---\n")[1:]
    result = mg(
        "analyze",
        "--offline",
        *[a for f in files for a in ("-f", f)],
        "-f",
        "-",
        input="---\n".join(gateway_docs),
    )
    assert result.exit_code == 79
    assert 'Referenced selector not found: "istio=egressgateway"' in result.stdout


def test_message_format_and_failure(mg: Run, tmp_path: Path) -> None:
    path = tmp_path / "vs.yaml"
    path.write_text(BAD_VS)
    result = mg("analyze", "--offline", "-f", str(path))
    assert result.exit_code == 79
    assert result.stdout.splitlines() == [
        f'Error [IST0101] (VirtualService default/foo {path}:10) Referenced host not found: "bar"'
    ]
    assert "Analyzers found issues when analyzing all namespaces" in result.stderr


def test_thresholds(mg: Run, tmp_path: Path) -> None:
    path = tmp_path / "se.yaml"
    path.write_text(TCP_SE)
    warned = mg("analyze", "--offline", "-f", str(path))
    assert warned.exit_code == 0 and "Warning [IST0134]" in warned.stdout
    strict = mg("analyze", "--offline", "-f", str(path), "--failure-threshold", "Warning")
    assert strict.exit_code == 79
    quiet = mg("analyze", "--offline", "-f", str(path), "--output-threshold", "Error")
    assert quiet.exit_code == 0 and quiet.stdout == ""
    bad = mg("analyze", "--offline", "-f", str(path), "--failure-threshold", "Loud")
    assert bad.exit_code == 1 and "invalid level" in bad.stderr


def test_json_and_yaml_output(mg: Run, tmp_path: Path) -> None:
    path = tmp_path / "vs.yaml"
    path.write_text(BAD_VS)
    result = mg("analyze", "--offline", "-f", str(path), "-o", "json")
    [entry] = json.loads(result.stdout)
    assert entry["code"] == "IST0101"
    assert entry["origin"] == "VirtualService default/foo"
    assert entry["line"] == 10 and entry["level"] == "Error"
    yaml_out = mg("analyze", "--offline", "-f", str(path), "-o", "yaml")
    assert "code: IST0101" in yaml_out.stdout


def test_namespace_filter(mg: Run, tmp_path: Path) -> None:
    path = tmp_path / "vs.yaml"
    path.write_text(BAD_VS)
    other = mg("analyze", "--offline", "-f", str(path), "-n", "other")
    # -n applies to documents without a namespace, so foo lands in "other" and is shown.
    assert "VirtualService other/foo" in other.stdout
    path.write_text(BAD_VS.replace("name: foo", "name: foo\n  namespace: team"))
    hidden = mg("analyze", "--offline", "-f", str(path), "-n", "default")
    assert hidden.exit_code == 0 and hidden.stdout == ""


def test_offline_needs_files(mg: Run) -> None:
    result = mg("analyze", "--offline")
    assert result.exit_code == 1 and "-f" in result.stderr


def test_store_of_the_walkthrough_only_notes_the_bypassable_gateway(walkthrough: Run) -> None:
    result = walkthrough("analyze")
    assert result.exit_code == 0, result.output
    (line,) = result.stdout.splitlines()
    assert line.startswith("Info [MG2003] (VirtualService default/egressgateway-vs) ")
    everywhere = walkthrough("analyze", "-A", "--output-threshold", "Warning")
    assert everywhere.exit_code == 0 and everywhere.stdout == ""


def test_files_are_laid_over_the_store(walkthrough: Run, tmp_path: Path) -> None:
    path = tmp_path / "vs.yaml"
    path.write_text(BAD_VS.replace("host: bar", "host: aliyun.com"))
    result = walkthrough("analyze", "-f", str(path))
    assert result.exit_code == 0, result.output  # aliyun.com's ServiceEntry is in the store


SUBSET_VS = """apiVersion: v1
kind: Service
metadata: {name: reviews}
spec:
  selector: {app: reviews}
  ports: [{name: http, port: 9080}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v1}
"""
SUBSET_LINE = (
    "Error [IST0101] (VirtualService default/reviews{}) Referenced host+subset in "
    'destinationrule not found: "reviews+v1"'
)


def test_one_missing_subset_prints_once_from_store_files_or_both(mg: Run, tmp_path: Path) -> None:
    path = tmp_path / "reviews.yaml"
    path.write_text(SUBSET_VS)
    offline = mg("analyze", "--offline", "-f", str(path))
    assert offline.stdout.splitlines() == [SUBSET_LINE.format(f" {path}:15")]
    assert mg("apply", "-f", str(path)).exit_code == 0
    stored = mg("analyze")
    assert stored.exit_code == 79 and stored.stdout.splitlines() == [SUBSET_LINE.format("")]
    # The same VirtualService in the store and in a file laid over it is one resource.
    both = mg("analyze", "-f", str(path))
    assert both.stdout.splitlines() == [SUBSET_LINE.format(f" {path}:15")]
