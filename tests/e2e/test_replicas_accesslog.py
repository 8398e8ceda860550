"""The mesh-wide access log and the traffic metrics answer for the whole mesh whichever
replica is asked (docs/replicas.md): two control-plane replicas on a real etcd
(tests/etcd_cluster.py), the walkthrough's sleep pod and egress gateway, and proxies that
write Istio's TEXT line, so the backfill (which reads only the seed's JSON lines) cannot
bring a request to a replica: only the proxy's stream to the replica it is connected to,
and that replica's store as read by the other.

Requests while the proxies are connected to replica A are listed by ``meshgate logs`` and
counted by ``meshgate metrics`` on replica B, each once; A killed, B answers at once with a
note naming A; the proxies on B, requests then show on A once it is back."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from meshgate.home import mesh_id
from tests.e2e.conftest import _skip_reason
from tests.e2e.meshctl import Mesh, retry
from tests.e2e.test_replicas_failover import _pid, _proxies, walkthrough
from tests.etcd_cluster import etcd_cluster

pytestmark = pytest.mark.e2e

MESH_CONFIG = """\
apiVersion: meshgate.io/v1alpha1
kind: MeshConfig
metadata:
  name: default
spec:
  outboundTrafficPolicy:
    mode: REGISTRY_ONLY
  accessLogEncoding: TEXT
"""
GATEWAY = ["--gateway", "istio-egressgateway", "-n", "istio-system", "-o", "json"]


def _logged(m: Mesh, agent: str) -> list[dict[str, object]]:
    """The gateway's entries of requests made with user agent ``agent``, as replica ``m``'s
    ``meshgate logs --gateway`` lists them."""
    out = m.meshgate("logs", *GATEWAY).stdout
    found = [json.loads(line) for line in out.splitlines()]
    return [e for e in found if e.get("user_agent") == agent]


def _gateway_requests(m: Mesh) -> float:
    """``istio_requests_total`` of the egress gateway to aliyun.com, in ``m``'s scrape."""
    text = m.meshgate("metrics").stdout
    total = 0.0
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if (
                s.name == "istio_requests_total"
                and s.labels.get("source_workload") == "istio-egressgateway"
                and s.labels.get("destination_service") == "aliyun.com"
            ):
                total += s.value
    return total


def _curl(m: Mesh, sleep: str, agent: str, times: int) -> None:
    for _ in range(times):
        out = m.curl(sleep, "-I", "-A", agent, "aliyun.com").stdout
        assert out.startswith("HTTP/1.1 301"), out


def _settle(m: Mesh, sleep: str, agent: str) -> None:
    """Requests until one is listed by ``m``. Envoy opens a gateway worker's access-log
    stream with its first entry, on any of the five replica sockets the xds-grpc cluster
    lists; one opened on a socket no replica serves loses its entries (the backfill, which
    reads only JSON lines, cannot bring them back under TEXT). Once one is listed, the
    stream of the worker the sidecar's pooled connection goes to is up."""
    ok, _ = retry(lambda: (_curl(m, sleep, agent, 1), _logged(m, agent))[1], bool, 20)
    assert ok, f"no entry of {agent} reached the mesh-wide log\n{m.log_tail()}"


def test_logs_and_metrics_answer_for_the_mesh_on_either_replica(tmp_path: Path) -> None:
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    tag = f"{os.getpid()}-{int(time.time())}"
    with etcd_cluster(members=1) as cluster:
        a, b = Mesh(tmp_path / "a"), Mesh(tmp_path / "b")
        try:
            a.meshgate("up", "--world", "demo", "--store", cluster.store_url)
            a.meshgate("apply", "-f", "-", input=MESH_CONFIG)
            sleep, gateway = walkthrough(a)
            # The gateway writes the TEXT line: nothing a backfill could read.
            own = a.meshgate("-n", "istio-system", "logs", gateway, "-c", "istio-proxy").stdout
            assert '"HEAD / HTTP/1.1" 301' in own and '{"' not in own
            b.meshgate("up", "--store", cluster.store_url)
            # Both proxies are connected to A (they started before B).
            assert len(_proxies(a)) == 2, a.meshgate("proxy-status").stdout

            _settle(a, sleep, f"warm-a-{tag}")
            via_a = f"via-a-{tag}"
            _curl(a, sleep, via_a, 3)
            ok, seen = retry(lambda: _logged(b, via_a), lambda e: len(e) == 3, 15)
            assert ok, f"replica B lists {seen}\n{b.log_tail()}"
            assert {e["pod"] for e in seen} == {gateway}
            # The same entries, each once, on A too. The gateway worker's log stream may
            # be on B's socket slot (Envoy picks among the five): then A has them from its
            # next pull of B's rows, about a second later, not at once.
            ok, on_a = retry(lambda: _logged(a, via_a), lambda e: len(e) >= 3, 15)
            assert ok and on_a == seen, f"A lists {on_a}, B lists {seen}\n{a.log_tail()}"
            # The metrics: B counts what A's proxies streamed to A, each request once.
            ok, counts = retry(
                lambda: (_gateway_requests(a), _gateway_requests(b)),
                lambda c: c[0] >= 3 and c[0] == c[1],
                15,
            )
            assert ok, f"gateway requests on A, on B: {counts}"
            quiet = b.meshgate("logs", *GATEWAY)
            assert quiet.stderr == "", quiet.stderr  # every replica answered: no note

            # A killed: B answers at once, from its own store, naming A in a note.
            os.kill(_pid(a), signal.SIGKILL)
            note = f"note: replica {mesh_id(a.home)} ({a.home.resolve()}) did not answer"

            def asked() -> tuple[float, str, list[str]]:
                started = time.monotonic()
                proc = b.meshgate("logs", *GATEWAY)
                took = time.monotonic() - started
                agents = [json.loads(x).get("user_agent") for x in proc.stdout.splitlines()]
                return took, proc.stderr, agents

            ok, (took, stderr, agents) = retry(asked, lambda r: note in r[1], 15)
            assert ok, f"no note about A: {stderr!r}\n{b.log_tail()}"
            assert took < 5, f"logs on B took {took:.1f}s with A dead"
            assert "(not running)" in stderr and "missing here until it answers" in stderr
            assert agents.count(via_a) == 3
            metrics = b.meshgate("metrics")
            assert note in metrics.stderr
            assert "meshgate_accesslog_replicas_unanswered 1.0" in metrics.stdout

            # The proxies fail over to B; requests now stream to B alone...
            ok, moved = retry(lambda: _proxies(b), lambda p: len(p) == 2, 20)
            assert ok, moved
            _settle(b, sleep, f"warm-b-{tag}")
            via_b = f"via-b-{tag}"
            _curl(b, sleep, via_b, 3)
            ok, seen = retry(lambda: _logged(b, via_b), lambda e: len(e) == 3, 15)
            assert ok, seen
            # ... and A, back (its node and pods ran on), lists and counts them.
            a.meshgate("up", "--world", "demo", "--store", cluster.store_url)
            ok, on_a = retry(lambda: _logged(a, via_b), lambda e: len(e) == 3, 15)
            assert ok, f"replica A lists {on_a}\n{a.log_tail()}"
            assert on_a == seen
            # A's counters started again with it: they hold B's requests, each once.
            assert 3 <= _gateway_requests(a) <= _gateway_requests(b)
            # B hears from A again: its note goes.
            ok, last_err = retry(
                lambda: b.meshgate("logs", *GATEWAY).stderr, lambda err: err == "", 15
            )
            assert ok, last_err
        finally:
            b.meshgate("down", check=False)
            a.meshgate("down", "--force", check=False)
