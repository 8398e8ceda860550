"""annotate, label -l/--all, scale, patch, rollout restart|status, wait and get -w:
kubectl's lines, and what each leaves in the store (the seed's walkthrough as input)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.unit.cli.conftest import Run

from meshgate.api.meta import ResourceKey

DEPLOY = ResourceKey("apps", "Deployment", "default", "sleep")
POD = """
apiVersion: v1
kind: Pod
metadata: {name: %s, namespace: default, labels: {app: probe}}
spec:
  containers: [{name: app, image: busybox, command: [sleep, infinity]}]
"""


def doc(run: Run, *args: str) -> dict[str, Any]:
    result = run("get", *args, "-o", "yaml")
    assert result.exit_code == 0, result.output
    found: dict[str, Any] = yaml.safe_load(result.stdout)
    return found


@pytest.fixture
def store(walkthrough: Run, tmp_path: Path) -> Iterator[Any]:
    """A second handle on the CLI's store, as the control plane would hold one."""
    from meshgate.store import open_store

    handle = open_store(tmp_path / "home")
    yield handle
    handle.close()


def later(delay: float, action: Any, after: threading.Event | None = None) -> threading.Thread:
    """Run ``action`` ``delay`` seconds after ``after`` is set (now, without one)."""

    def run() -> None:
        if after is not None:
            after.wait(30)
        time.sleep(delay)
        action()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


# --- annotate / label -------------------------------------------------------------------


def test_annotate_sets_refuses_overwrites_and_removes(walkthrough: Run) -> None:
    first = walkthrough("annotate", "deploy", "sleep", "owner=team-a", "note=x")
    assert (first.exit_code, first.stdout) == (0, "deployment.apps/sleep annotated\n")
    refused = walkthrough("annotate", "deploy/sleep", "owner=team-b")
    assert refused.exit_code == 1
    assert refused.stderr == (
        "error: --overwrite is false but found the following declared annotation(s): "
        "'owner' already has a value (team-a)\n"
    )
    assert walkthrough("annotate", "deploy/sleep", "owner=team-b", "--overwrite").exit_code == 0
    assert walkthrough("annotate", "deploy/sleep", "note-").exit_code == 0
    assert doc(walkthrough, "deploy", "sleep")["metadata"]["annotations"] == {"owner": "team-b"}
    bad = walkthrough("annotate", "deploy/sleep", "bad key=1")
    assert (bad.exit_code, bad.stderr) == (1, "error: invalid annotation key: 'bad key'\n")


def test_label_and_annotate_all_and_selector(walkthrough: Run) -> None:
    every = walkthrough("label", "sa", "--all", "tier=front")
    assert every.stdout == "serviceaccount/sleep labeled\n", every.output
    chosen = walkthrough("annotate", "svc", "-l", "app=sleep", "seen=yes")
    assert chosen.stdout == "service/sleep annotated\n", chosen.output
    assert doc(walkthrough, "svc", "sleep")["metadata"]["annotations"]["seen"] == "yes"
    none = walkthrough("annotate", "svc", "-l", "app=nothing", "seen=yes")
    assert none.exit_code == 0 and "No resources found" in none.stderr
    mixed = walkthrough("label", "sa", "sleep", "--all", "a=b")
    assert mixed.stderr == "error: --all cannot be combined with resource names\n"
    qualified = walkthrough("label", "deploy", "sleep", "tier=front")
    assert qualified.stdout == "deployment.apps/sleep labeled\n"


# --- scale -------------------------------------------------------------------------------


def test_scale_sets_replicas_with_precondition(walkthrough: Run) -> None:
    result = walkthrough("scale", "deploy", "sleep", "--replicas=3")
    assert (result.exit_code, result.stdout) == (0, "deployment.apps/sleep scaled\n")
    assert doc(walkthrough, "deploy", "sleep")["spec"]["replicas"] == 3
    refused = walkthrough("scale", "deployment/sleep", "--current-replicas=1", "--replicas=2")
    assert (refused.exit_code, refused.stderr) == (1, "error: Expected replicas to be 1, was 3\n")
    assert walkthrough("scale", "svc", "sleep", "--replicas=2").exit_code == 1
    missing = walkthrough("scale", "deploy", "nope", "--replicas=2")
    assert missing.stderr == 'Error from server (NotFound): deployments.apps "nope" not found\n'
    assert doc(walkthrough, "deploy", "sleep")["spec"]["replicas"] == 3
    # A revision like apply's: history shows it, rollback undoes it.
    history = walkthrough("history", "deploy", "sleep")
    assert history.exit_code == 0 and len(history.stdout.splitlines()) >= 3


# --- patch -------------------------------------------------------------------------------


def test_patch_strategic_merges_containers_and_env_by_name(walkthrough: Run) -> None:
    patch = (
        '{"spec":{"template":{"spec":{"containers":[{"name":"sleep",'
        '"env":[{"name":"A","value":"1"}]}]}}}}'
    )
    result = walkthrough("patch", "deploy", "sleep", "-p", patch)
    assert (result.exit_code, result.stdout) == (0, "deployment.apps/sleep patched\n")
    containers = doc(walkthrough, "deploy", "sleep")["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    assert containers[0]["image"] == "curlimages/curl"  # kept: merged by name
    assert containers[0]["env"] == [{"name": "A", "value": "1"}]
    again = walkthrough("patch", "deploy", "sleep", "-p", patch)
    assert again.stdout == "deployment.apps/sleep patched (no change)\n"
    # A merge patch replaces the list whole.
    merge = '{"spec":{"template":{"spec":{"containers":[{"name":"c","image":"busybox"}]}}}}'
    assert walkthrough("patch", "deploy/sleep", "--type", "merge", "-p", merge).exit_code == 0
    containers = doc(walkthrough, "deploy", "sleep")["spec"]["template"]["spec"]["containers"]
    assert containers == [{"name": "c", "image": "busybox"}]


def test_patch_json_and_errors_change_nothing(walkthrough: Run) -> None:
    ops = '[{"op":"replace","path":"/spec/replicas","value":2}]'
    result = walkthrough("patch", "deploy", "sleep", "--type=json", "-p", ops)
    assert result.stdout == "deployment.apps/sleep patched\n", result.output
    assert doc(walkthrough, "deploy", "sleep")["spec"]["replicas"] == 2
    invalid = walkthrough(
        "patch", "deploy", "sleep", "--type=merge", "-p", '{"spec":{"replicas":-1}}'
    )
    assert (
        invalid.exit_code == 1 and "must be greater than or equal to 0 [MG1083]" in invalid.stderr
    )
    bad_op = walkthrough(
        "patch", "deploy", "sleep", "--type=json", "-p", '[{"op":"remove","path":"/x"}]'
    )
    assert bad_op.exit_code == 1 and "non-existent object 'x'" in bad_op.stderr
    rename = walkthrough("patch", "deploy", "sleep", "-p", '{"metadata":{"name":"other"}}')
    assert rename.exit_code == 1
    kind = walkthrough("patch", "deploy", "sleep", "--type=yaml", "-p", "{}")
    assert kind.stderr == 'error: --type must be one of [json merge strategic], not "yaml"\n'
    assert doc(walkthrough, "deploy", "sleep")["spec"]["replicas"] == 2


# --- rollout -----------------------------------------------------------------------------


def test_rollout_restart_stamps_the_template(walkthrough: Run) -> None:
    before = doc(walkthrough, "deploy", "sleep")
    result = walkthrough("rollout", "restart", "deployment/sleep")
    assert (result.exit_code, result.stdout) == (0, "deployment.apps/sleep restarted\n")
    after = doc(walkthrough, "deploy", "sleep")
    stamp = after["spec"]["template"]["metadata"]["annotations"][
        "kubectl.kubernetes.io/restartedAt"
    ]
    assert time.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ")
    assert after["metadata"]["generation"] == before["metadata"]["generation"] + 1
    pod = walkthrough("rollout", "restart", "pod", "x")
    assert pod.exit_code == 1


def test_rollout_status_follows_the_deployments_status(walkthrough: Run, store: Any) -> None:
    dep = store.get(DEPLOY).object
    gen = dep["metadata"]["generation"]
    waiting = walkthrough("rollout", "status", "deploy/sleep", "--watch=false")
    assert waiting.stdout == "Waiting for deployment spec update to be observed...\n"
    steps = [
        {"observedGeneration": gen, "replicas": 1, "updatedReplicas": 1, "readyReplicas": 0,
         "availableReplicas": 0},
        {"observedGeneration": gen, "replicas": 1, "updatedReplicas": 1, "readyReplicas": 1,
         "availableReplicas": 1},
    ]  # fmt: skip
    store.update_status(DEPLOY, steps[0])
    later(0.8, lambda: store.update_status(DEPLOY, steps[1]))
    result = walkthrough("rollout", "status", "deployment", "sleep", "--timeout=20s")
    assert result.exit_code == 0, result.output
    assert result.stdout == (
        'Waiting for deployment "sleep" rollout to finish: 0 of 1 updated replicas are '
        "available...\n"
        'deployment "sleep" successfully rolled out\n'
    )


# --- wait --------------------------------------------------------------------------------


def test_wait_for_ready_delete_and_timeout(walkthrough: Run, store: Any) -> None:
    assert walkthrough("apply", "-f", "-", input=POD % "probe").exit_code == 0
    key = ResourceKey("", "Pod", "default", "probe")
    timed_out = walkthrough("wait", "--for=condition=Ready", "pod/probe", "--timeout=1s")
    assert (timed_out.exit_code, timed_out.stderr) == (
        1,
        "error: timed out waiting for the condition on pods/probe\n",
    )
    ready = {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
    later(0.5, lambda: store.update_status(key, ready))
    met = walkthrough("wait", "--for=condition=ready", "pods", "-l", "app=probe", "--timeout=20s")
    assert (met.exit_code, met.stdout) == (0, "pod/probe condition met\n"), met.output
    later(0.5, lambda: store.delete([key]))
    gone = walkthrough("wait", "--for=delete", "pod/probe", "--timeout=20s")
    assert (gone.exit_code, gone.stdout) == (0, "pod/probe condition met\n"), gone.output
    missing = walkthrough("wait", "--for=condition=Ready", "pod/probe", "--timeout=1s")
    assert missing.stderr == 'Error from server (NotFound): pods "probe" not found\n'
    unknown = walkthrough("wait", "--for=ready", "pod/probe")
    assert unknown.stderr == 'error: unrecognized condition: "ready"\n'


def test_wait_for_available_deployment(walkthrough: Run, store: Any) -> None:
    gen = store.get(DEPLOY).object["metadata"]["generation"]
    status = {"observedGeneration": gen, "replicas": 1, "updatedReplicas": 1,
              "readyReplicas": 1, "availableReplicas": 1}  # fmt: skip
    later(0.5, lambda: store.update_status(DEPLOY, status))
    result = walkthrough("wait", "--for=condition=Available", "deploy/sleep", "--timeout=20s")
    assert (result.exit_code, result.stdout) == (0, "deployment.apps/sleep condition met\n")


# --- get -w ------------------------------------------------------------------------------


@pytest.fixture
def watching(monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """Set once ``get -w`` asks for its first changes (its listing is done by then)."""
    from meshgate.cli import watch

    started = threading.Event()
    inner = watch._next_events

    def signalling(since: int, wait: float) -> Any:
        started.set()
        return inner(since, wait)

    monkeypatch.setattr(watch, "_next_events", signalling)
    return started


def test_get_watch_prints_the_table_then_each_change(
    walkthrough: Run, store: Any, watching: threading.Event
) -> None:
    def change() -> None:
        store.apply([yaml.safe_load(POD % "watched")])

    later(0.1, change, watching)
    result = walkthrough("get", "pods", "-w", "--request-timeout=4s")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert [line.split()[0] for line in lines[1:]] == ["watched"]


def test_get_watch_over_the_api(
    walkthrough: Run, api: tuple[Any, Any], monkeypatch: pytest.MonkeyPatch, watching: Any
) -> None:
    from meshgate.cli import context, fetch
    from meshgate.cli.api_backend import ApiBackend

    cp, client = api
    monkeypatch.setattr(context, "get_backend", lambda: ApiBackend(client))
    monkeypatch.setattr(fetch, "get_backend", lambda: ApiBackend(client))
    assert walkthrough("create", "cm", "one", "--from-literal=a=b").exit_code == 0
    later(0.1, lambda: cp.store.delete([ResourceKey("", "ConfigMap", "default", "one")]), watching)
    two = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "two", "namespace": "default"},
    }
    later(0.6, lambda: cp.store.apply([two]), watching)
    result = walkthrough("get", "cm", "-w", "-o", "name", "--request-timeout=4s")
    assert result.exit_code == 0, result.output
    assert result.stdout == "configmap/one\nconfigmap/one\nconfigmap/two\n"
