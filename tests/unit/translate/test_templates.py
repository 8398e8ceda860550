"""Clusters and default routes are built from private templates: results never share state."""

from __future__ import annotations

from tests.golden.seedworld import sleep_proxy, step_snapshot

from meshgate.translate import translate


def test_mutating_a_result_leaves_other_results_alone() -> None:
    snap = step_snapshot(3)
    first = translate(snap, sleep_proxy(snap))
    for cluster in first.clusters:
        cluster.connect_timeout.seconds = 99
        cluster.typed_extension_protocol_options.clear()
    for route_config in first.routes:
        for vhost in route_config.virtual_hosts:
            for route in vhost.routes:
                route.route.retry_policy.num_retries.value = 99

    second = translate(snap, sleep_proxy(snap))
    assert [c.name for c in second.clusters] == [c.name for c in first.clusters]
    assert all(c.connect_timeout.seconds == 10 for c in second.clusters)
    aliyun = next(c for c in second.clusters if c.name == "outbound|80||aliyun.com")
    assert aliyun.typed_extension_protocol_options  # explicit HTTP/1.1 options survived
    retries = [
        r.route.retry_policy.num_retries.value
        for rc in second.routes
        for vh in rc.virtual_hosts
        for r in vh.routes
        if r.name == "default"
    ]
    assert retries and all(n == 2 for n in retries)
