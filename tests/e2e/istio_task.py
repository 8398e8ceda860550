"""Helpers for replaying istio.io's task pages on a local mesh: the page's `kubectl` commands
become `meshgate` commands with the same arguments, run one by one as a user types them."""

from __future__ import annotations

import json
import subprocess

from tests.e2e.meshctl import WALKTHROUGH, Mesh, retry

# Istio's samples/sleep/sleep.yaml (ServiceAccount, Service, Deployment with image
# curlimages/curl running /bin/sleep infinity), as the walkthrough keeps it.
SLEEP_YAML = WALKTHROUGH / "1-sleep.yaml"


def apply_yaml(mesh: Mesh, text: str, namespace: str | None = None) -> str:
    """`kubectl apply [-n NS] -f - <<EOF ... EOF`"""
    ns = ["-n", namespace] if namespace else []
    return mesh.meshgate("apply", *ns, "-f", "-", input=text).stdout


def source_pod(mesh: Mesh, namespace: str = "default") -> str:
    """`export SOURCE_POD=$(kubectl get pod -l app=sleep -o jsonpath={.items..metadata.name})`,
    once the pod runs (the page assumes it does)."""
    mesh.wait_pod(namespace, "sleep-")
    out = mesh.meshgate(
        "get", "pod", "-n", namespace, "-l", "app=sleep", "-o", "jsonpath={.items..metadata.name}"
    ).stdout.strip()
    assert out.startswith("sleep-") and " " not in out, out
    return out


def sleep_exec(
    mesh: Mesh, pod: str, *cmd: str, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """`kubectl exec "$SOURCE_POD" -c sleep -- CMD...`, never raising."""
    return mesh.meshgate("exec", pod, "-c", "sleep", "--", *cmd, check=False, timeout=timeout)


def status_lines(out: str) -> list[str]:
    """`| grep "HTTP/"`: the status lines, trailing whitespace (curl's CR) dropped."""
    return [line.rstrip() for line in out.splitlines() if "HTTP/" in line]


def header_value(out: str, name: str) -> list[str]:
    """Every value of response header ``name`` in curl's `-D -` output, in order."""
    prefix = name.lower() + ":"
    return [
        line.split(":", 1)[1].strip()
        for line in out.splitlines()
        if line.lower().startswith(prefix)
    ]


# `kubectl logs -l istio=egressgateway -c istio-proxy -n istio-system | tail`
GATEWAY = "-l istio=egressgateway"


def access_log(
    mesh: Mesh, target: str, namespace: str = "default", container: str = "istio-proxy"
) -> list[dict[str, object]]:
    """`kubectl logs TARGET -c istio-proxy` (TARGET a pod, or `-l SELECTOR`): the proxy's
    JSON access-log lines."""
    which = target.split(" ", 1) if target.startswith("-l ") else [target]
    out = mesh.meshgate("logs", *which, "-n", namespace, "-c", container, check=False).stdout
    entries = []
    for line in out.splitlines():
        if line.startswith("{"):
            try:
                entries.append(dict(json.loads(line)))
            except ValueError:
                continue
    return entries


def wait_log(
    mesh: Mesh,
    target: str,
    match: dict[str, object],
    namespace: str = "default",
    timeout: float = 15,
) -> dict[str, object]:
    """The first access-log entry of ``target`` whose fields include ``match`` (logs are
    written a moment after the answer)."""
    ok, entries = retry(
        lambda: access_log(mesh, target, namespace),
        lambda es: any(all(e.get(k) == v for k, v in match.items()) for e in es),
        timeout,
        interval=0.5,
    )
    assert ok, f"no log line of {target} with {match}; last lines: {entries[-5:]}"
    return next(e for e in entries if all(e.get(k) == v for k, v in match.items()))
