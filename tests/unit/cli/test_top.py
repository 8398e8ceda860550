"""``meshgate top``: ``--once`` prints one kubectl-like table, ``-o json`` the API's object;
no traffic says so; bad flags are refused; live mode redraws until Ctrl-C and exits cleanly.
The CLI talks to the real API app, which reads a real access-log store of fake entries."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from tests.unit.telemetry.test_top import GW, SLEEP, http
from typer.testing import Result

from meshgate.telemetry import entries, service
from meshgate.telemetry.store import AccessLogStore, db_path

Run = Callable[..., Result]


@pytest.fixture
def served(api: tuple[Any, Any], monkeypatch: pytest.MonkeyPatch) -> Any:
    cp, client = api
    monkeypatch.setattr("meshgate.client.Client", lambda home, timeout=60.0: client)
    cp.accesslog_reader = service.Reader(cp.home)
    return cp


def add(cp: Any, new: list[entries.Entry]) -> None:
    # The fake entries start "now" for the API's clock: shift them from the tests' NOW.
    from tests.unit.telemetry import test_top

    monkey_now = time.time()
    shifted = []
    for e in new:
        start = entries.start_ms(e.fields["start_time"]) / 1000 - test_top.NOW + monkey_now
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(start))
        fields = dict(e.fields, start_time=f"{stamp}.{int(start * 1000) % 1000:03d}Z")
        shifted.append(entries.Entry(e.reporter, fields, e.source))
    store = AccessLogStore(db_path(cp.home), max_bytes=10**9, max_age=10**9)
    try:
        store.add(shifted)
    finally:
        store.close()


def traffic(cp: Any) -> None:
    add(
        cp,
        [
            *(http(GW, "aliyun.com", 301, d) for d in (2, 4, 6, 8)),
            *(http(SLEEP, "aliyun.com", 301, 9) for _ in range(3)),
            http(SLEEP, "aliyun.com", 502, 0, cluster="BlackHoleCluster", route="block_all"),
        ],
    )


def test_once_prints_one_table_busiest_first(mg: Run, served: Any) -> None:
    traffic(served)
    result = mg("top", "--once")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines() == [
        "HOST         REPORTER   PROTO   REQ/S   ERRORS   P50   P99   REQUESTS",
        "aliyun.com   gateway    http    0.07    0.0%     4ms   8ms   4",
        "aliyun.com   sidecar    http    0.07    25.0%    9ms   9ms   4",
    ]


def test_once_json_is_the_aggregation(mg: Run, served: Any) -> None:
    traffic(served)
    result = mg("top", "--once", "-o", "json", "--window", "5m", "--reporter", "sidecar")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data == {
        "window": 300.0,
        "hosts": [
            {"host": "aliyun.com", "reporter": "sidecar", "protocol": "http", "requests": 4,
             "errors": 1, "requestsPerSecond": 0.0133, "errorRate": 0.25, "p50Ms": 9.0,
             "p99Ms": 9.0},
        ],
    }  # fmt: skip
    gw = json.loads(mg("top", "--once", "-o", "json", "--gateway", "istio-egressgateway").stdout)
    assert [(h["reporter"], h["requests"]) for h in gw["hosts"]] == [("gateway", 4)]
    ns = json.loads(mg("-n", "default", "top", "--once", "-o", "json").stdout)
    assert [h["reporter"] for h in ns["hosts"]] == ["sidecar"]


def test_no_traffic_says_so(mg: Run, served: Any) -> None:
    result = mg("top", "--once", "-n", "istio-system")
    assert result.exit_code == 0 and result.stdout == ""
    assert result.stderr.startswith(
        "No traffic in namespace istio-system in the last 1m: the mesh-wide access log has no "
        "requests yet"
    )
    assert "accessLogFile" in result.stderr
    assert json.loads(mg("top", "--once", "-o", "json").stdout) == {"window": 60.0, "hosts": []}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--window", "5x"), "want a duration such as 30s"),
        (("--reporter", "pod"), "error: reporter 'pod': want one of gateway, sidecar"),
        (("-o", "yaml"), "error: unknown output format 'yaml' (json)"),
        (("--interval", "0s"), "--interval at least 0.1s"),
    ],
)
def test_bad_flags_are_refused(mg: Run, served: Any, args: tuple[str, ...], message: str) -> None:
    result = mg("top", "--once", *args)
    assert result.exit_code != 0
    assert message in result.stderr


def test_live_mode_redraws_until_ctrl_c_and_exits_cleanly(
    served: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rich.console import Console

    from meshgate.cli import top as cli_top

    traffic(served)
    calls: list[str] = []
    sleeps = iter([None, None, KeyboardInterrupt()])

    def sleep(_s: float) -> None:
        step = next(sleeps)
        if step is not None:
            raise step

    def api(method: str, path: str) -> Any:
        calls.append(path)
        return served_client.call(method, path)

    import meshgate.client

    served_client = meshgate.client.Client(served.home)
    console = Console(record=True, force_terminal=True, width=120)
    monkeypatch.setattr("rich.console.Console", lambda *a, **k: console)
    monkeypatch.setattr(cli_top, "is_terminal", lambda: True)
    monkeypatch.setattr(cli_top.time, "sleep", sleep)
    cli_top.run_top(
        api, window="1m", interval="2s", namespace=None, gateway=None, reporter=None,
        once=False, output=None,
    )  # fmt: skip
    assert calls == ["/v1/top?window=60"] * 3
    text = console.export_text()
    assert "meshgate top: external hosts, last 1m, every namespace" in text
    assert "aliyun.com" in text and "25.0%" in text
