"""``delete`` over the control plane's API: one request, missing names skipped by the server."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import Result

from meshgate.api.meta import ResourceKey
from meshgate.cli.api_backend import ApiBackend

Run = Callable[..., Result]
GROUP = "networking.istio.io"


def se(name: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/v1",
        "kind": "ServiceEntry",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"hosts": [f"{name}.example.com"], "resolution": "DNS"},
    }


def key(name: str) -> ResourceKey:
    return ResourceKey(GROUP, "ServiceEntry", "default", name)


class Counting:
    """Counts the requests a backend makes through a client."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls: list[tuple[str, str]] = []

    def call(self, method: str, path: str, body: Any = None, **kw: Any) -> Any:
        self.calls.append((method, path))
        return self.inner.call(method, path, body, **kw)


def test_delete_of_many_keys_is_one_request(api: tuple[Any, Any]) -> None:
    cp, client = api
    names = [f"se-{i}" for i in range(50)]
    ApiBackend(client).apply([se(n) for n in names], dry_run=False)
    counting = Counting(client)
    changes = ApiBackend(counting).delete([*map(key, names), key("ghost")], dry_run=False)
    assert counting.calls == [("POST", "/v1/delete")]
    assert [c.key.name for c in changes] == names
    assert cp.store.list() == []
    assert cp.kicks >= 2  # the apply and the delete each pushed


def test_delete_dry_run_over_the_api_keeps_objects(api: tuple[Any, Any]) -> None:
    cp, client = api
    ApiBackend(client).apply([se("a")], dry_run=False)
    changes = ApiBackend(client).delete([key("a"), key("ghost")], dry_run=True)
    assert [(c.key.name, c.action) for c in changes] == [("a", "deleted")]
    assert cp.store.get(key("a")) is not None


def test_api_delete_without_missing_ok_is_all_or_nothing(api: tuple[Any, Any]) -> None:
    from meshgate.client import ApiError

    cp, client = api
    ApiBackend(client).apply([se("a")], dry_run=False)
    with pytest.raises(ApiError) as caught:
        client.call("POST", "/v1/delete", {"keys": [list(key("a")), list(key("ghost"))]})
    assert caught.value.status == 404
    assert cp.store.get(key("a")) is not None


def test_cli_delete_file_over_the_api_reports_missing(
    mg: Run, api: tuple[Any, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _, client = api
    remote = ApiBackend(client)
    monkeypatch.setattr("meshgate.cli.context.get_backend", lambda: remote)
    path = tmp_path / "two.yaml"
    path.write_text(
        "\n---\n".join(
            f"apiVersion: {GROUP}/v1\nkind: ServiceEntry\nmetadata: {{name: {n}}}\n"
            f"spec: {{hosts: [{n}.example.com], resolution: DNS}}"
            for n in ("a", "b")
        )
    )
    remote.apply([se("a")], dry_run=False)
    result = mg("delete", "-f", str(path))
    assert result.exit_code == 1
    assert result.stdout == f'serviceentry.{GROUP} "a" deleted\n'
    assert '"b" not found' in result.stderr
    again = mg("delete", "-f", str(path), "--ignore-not-found")
    assert again.exit_code == 0 and again.stdout == ""
