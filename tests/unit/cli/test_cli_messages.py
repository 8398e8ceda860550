"""Smaller kubectl-parity answers: apply without -f, `get all`'s kinds, categories."""

from __future__ import annotations

from collections.abc import Callable

from typer.testing import Result

from meshgate.cli.kindargs import category

Run = Callable[..., Result]


def test_apply_and_validate_without_filename_name_only_real_flags(mg: Run) -> None:
    for verb in ("apply", "validate"):
        result = mg(verb)
        assert result.exit_code == 1
        assert result.stderr == (
            "error: must specify -f FILENAME (a file, a directory, or - for stdin)\n"
        )
        assert "-k" not in result.stderr


def test_get_all_lists_only_kubectls_all_kinds(walkthrough: Run) -> None:
    result = walkthrough("get", "all", "-A")
    assert result.exit_code == 0, result.stderr
    names = [line.split()[1] for line in result.stdout.splitlines() if line.startswith("default")]
    assert names == ["service/sleep", "deployment.apps/sleep"]
    for absent in ("serviceaccount", "namespace", "meshconfig", "serviceentry", "gateway"):
        assert absent not in result.stdout


def test_categories_expand_in_kubectl_order_and_combine_with_kinds(walkthrough: Run) -> None:
    assert [k.kind for k in category("all") or []] == ["Pod", "Service", "Deployment"]
    istio = {k.kind for k in category("istio-io") or []}
    assert {"ServiceEntry", "VirtualService", "AuthorizationPolicy"} <= istio
    assert "Deployment" not in istio and "IstioGateway" not in istio
    assert {k.kind for k in category("security-istio-io") or []} == {
        "AuthorizationPolicy",
        "PeerAuthentication",
        "RequestAuthentication",
    }
    assert category("se") is None
    both = walkthrough("get", "all,se", "-o", "name")
    assert both.stdout.splitlines() == [
        "service/sleep",
        "deployment.apps/sleep",
        "serviceentry.networking.istio.io/external-svc-http",
    ]


def test_non_utf8_stdin_is_a_clean_error_not_a_traceback() -> None:
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "meshgate.cli.main", "validate", "-f", "-"],
        input=b"\xff\xfe\x00",
        capture_output=True,
        check=False,
    )
    assert proc.returncode == 1
    assert b"Traceback" not in proc.stderr
    assert b"<stdin>:1: cannot read: not UTF-8 (byte 0xff" in proc.stderr
    assert b"[MG0009]" in proc.stderr
    # analyze once read stdin as text: the bad byte became a surrogate libyaml choked on.
    proc = subprocess.run(
        [sys.executable, "-m", "meshgate.cli.main", "analyze", "--offline", "-f", "-"],
        input=b"apiVersion: v1\r\nkind: Service\r\nmetadata: {name: a\xff}\r\n",
        capture_output=True,
        check=False,
    )
    assert b"Traceback" not in proc.stderr
    assert b"(<stdin>:3) Schema validation error: cannot read: not UTF-8" in proc.stdout


POD = """apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  containers: [{name: app, image: busybox, command: [sleep, infinity]}]
status: {phase: Running, podIP: 10.34.0.9}
"""


def test_get_pods_without_a_control_plane_warns(mg: Run) -> None:
    assert mg("apply", "-f", "-", input=POD).exit_code == 0
    result = mg("get", "pods")
    assert result.exit_code == 0
    assert "no control plane is running: pod status is as last recorded" in result.stderr
    assert "no control plane" not in mg("get", "svc").stderr
