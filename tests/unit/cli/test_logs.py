"""``logs``: kubectl's answers for a bad container, a missing pod, and a pod without logs yet."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest
from typer.testing import Result

from meshgate.runtime.pods import ContainerNotFound, ContainerSpec, PodNotFound, PodSpec

Run = Callable[..., Result]


def add_pod(runtime: Any, name: str = "sleep-1", containers: tuple[str, ...] = ("sleep",)) -> None:
    """A pod record as the runtime keeps one (nothing runs: only log lookups read it)."""
    spec = PodSpec(
        name=name,
        namespace="default",
        containers=[ContainerSpec(name=c, argv=["sleep", "1"]) for c in containers],
    )
    runtime._save_pod(f"default/{name}", {"spec": dataclasses.asdict(spec)})


@pytest.fixture
def served(api: tuple[Any, Any], monkeypatch: pytest.MonkeyPatch) -> Any:
    """The CLI's API calls go to the in-process API app; returns the fake control plane."""
    cp, client = api
    monkeypatch.setattr("meshgate.client.Client", lambda home, timeout=60.0: client)
    add_pod(cp.runtime)
    return cp


def test_runtime_log_path_checks_the_container(api: tuple[Any, Any]) -> None:
    cp, _ = api
    rt = cp.runtime
    add_pod(rt, containers=("sleep", "helper"))
    assert rt.log_path("default", "sleep-1").name == "sleep.log"
    assert rt.log_path("default", "sleep-1", "helper").name == "helper.log"
    with pytest.raises(ContainerNotFound, match=r"^container nope is not valid for pod sleep-1$"):
        rt.log_path("default", "sleep-1", "nope")
    with pytest.raises(PodNotFound, match="pod default/gone not found"):
        rt.log_path("default", "gone")
    with pytest.raises(PodNotFound, match="pod default/gone not found"):
        rt.log_path("default", "gone", "sleep")
    # A removed pod's logs stay readable by container name until the state directory goes.
    kept = rt.state_dir / "logs" / "pods" / "default" / "gone" / "sleep.log"
    kept.parent.mkdir(parents=True)
    kept.write_text("bye\n")
    assert rt.log_path("default", "gone", "sleep") == kept


def test_logs_with_an_unknown_container_says_so_as_kubectl(mg: Run, served: Any) -> None:
    result = mg("logs", "sleep-1", "-c", "nope")
    assert result.exit_code == 1
    assert result.stderr == "error: container nope is not valid for pod sleep-1\n"


def test_logs_of_a_missing_pod_is_not_found(mg: Run, served: Any) -> None:
    result = mg("logs", "gone", "-c", "sleep")
    assert result.exit_code == 1
    assert result.stderr == "Error from server (NotFound): pod default/gone not found\n"


def test_logs_prints_and_tails_the_container_log(mg: Run, served: Any) -> None:
    result = mg("logs", "sleep-1")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: no logs yet for default/sleep-1")
    log = served.runtime.log_path("default", "sleep-1")
    log.parent.mkdir(parents=True)
    log.write_text("one\ntwo\nthree\n")
    assert mg("logs", "sleep-1").stdout == "one\ntwo\nthree\n"
    assert mg("logs", "sleep-1", "-c", "sleep", "--tail", "2").stdout == "two\nthree\n"


def test_logs_previous_prints_the_run_before(mg: Run, served: Any) -> None:
    missing = mg("logs", "sleep-1", "-p")
    assert missing.exit_code == 1
    assert 'previous terminated container "sleep" in pod "sleep-1" not found' in missing.stderr
    previous = served.runtime.log_path("default", "sleep-1", previous=True)
    previous.parent.mkdir(parents=True)
    previous.write_text("first run\n")
    served.runtime.log_path("default", "sleep-1").write_text("second run\n")
    assert mg("logs", "sleep-1", "--previous").stdout == "first run\n"
    assert mg("logs", "sleep-1").stdout == "second run\n"


def test_logs_by_selector_as_kubectl(mg: Run, served: Any) -> None:
    both = mg("logs", "sleep-1", "-l", "app=sleep")
    assert both.exit_code == 1
    assert both.stderr == "error: -l takes no POD and no -f\n"
    none = mg("logs", "-l", "app=nothing-has-this")
    assert none.exit_code == 0
    assert none.stderr == "No resources found in default namespace.\n"
