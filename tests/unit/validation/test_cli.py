"""``meshgate validate`` and ``meshgate apply`` (in-process backend) use Istio's verdict:
errors refuse, warnings are printed, every problem has file:line, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from meshgate.cli.main import app

BAD = """\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: se, namespace: default}
spec:
  hosts: ["*.example.com"]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: vs, namespace: default}
spec:
  hosts: [a.example.com]
  http:
  - match: [{uri: {regex: "(?=x)"}}]
    route: [{destination: {host: a.example.com}}]
"""
WARN_ONLY = """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: vs, namespace: default}
spec:
  hosts: [a.example.com]
  http:
  - route:
    - {destination: {host: a.example.com}, weight: 50}
    - {destination: {host: b.example.com}, weight: 30}
"""


def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *args: str) -> Result:
    monkeypatch.setenv("MESHGATE_HOME", str(tmp_path / "home"))
    return CliRunner().invoke(app, list(args))


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return str(path)


def test_validate_reports_every_error_with_file_and_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = write(tmp_path, BAD)
    result = run(tmp_path, monkeypatch, "validate", "-f", name)
    assert result.exit_code == 1
    assert f"{name}:5 ServiceEntry default/se spec.hosts[0]" in result.output
    assert "[MG1006]" in result.output
    assert f"{name}:15 VirtualService default/vs spec.http[0].match[0].uri.regex" in result.output
    assert "[MG1045]" in result.output
    assert "Traceback" not in result.output


def test_validate_accepts_warnings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    name = write(tmp_path, WARN_ONLY)
    result = run(tmp_path, monkeypatch, "validate", "-f", name)
    assert result.exit_code == 0, result.output
    assert "Warning:" in result.output and "[MG1005]" in result.output
    assert f'"{name}" is valid' in result.output


def test_apply_refuses_what_istio_rejects(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    result = run(tmp_path, monkeypatch, "apply", "-f", write(tmp_path, BAD))
    assert result.exit_code == 1
    assert "nothing was applied" in result.output
    listed = run(tmp_path, monkeypatch, "get", "serviceentries", "-A")
    assert "se" not in listed.output.split()


def test_apply_prints_warnings_and_applies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    result = run(tmp_path, monkeypatch, "apply", "-f", write(tmp_path, WARN_ONLY))
    assert result.exit_code == 0, result.output
    assert "Warning:" in result.output
    assert "virtualservice.networking.istio.io/vs created" in result.output


@pytest.mark.parametrize(
    "text", ["", "::", "- a\n- b", "kind: Gateway", "{apiVersion: 1, kind: []}", "\t\x00"]
)
def test_validate_never_tracebacks(
    text: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = run(tmp_path, monkeypatch, "validate", "-f", write(tmp_path, text))
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
