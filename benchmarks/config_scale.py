"""Decode, validate and store 10,000 ServiceEntries and 2,000 VirtualServices.

Prints the time of each phase and the peak memory, and writes them to
benchmarks/results/config_scale.json. Target (issue 2): under 3 s in all on 2 cores.
Run: .venv/bin/python benchmarks/config_scale.py [--se N] [--vs N]
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def make_yaml(n_se: int, n_vs: int) -> str:
    docs = []
    for i in range(n_se):
        docs.append(
            f"""apiVersion: networking.istio.io/v1beta1
kind: ServiceEntry
metadata:
  name: se-{i}
  namespace: ns-{i % 50}
spec:
  hosts:
  - host-{i}.example.com
  location: MESH_EXTERNAL
  ports:
  - number: 80
    name: http
    protocol: HTTP
  - number: 443
    name: https
    protocol: HTTPS
  resolution: DNS
"""
        )
    for i in range(n_vs):
        docs.append(
            f"""apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata:
  name: vs-{i}
  namespace: ns-{i % 50}
spec:
  hosts:
  - host-{i}.example.com
  gateways:
  - mesh
  http:
  - match:
    - uri:
        prefix: /api
    route:
    - destination:
        host: host-{i}.example.com
        port:
          number: 80
      weight: 100
    timeout: 5s
"""
        )
    return "---\n".join(docs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--se", type=int, default=10_000)
    parser.add_argument("--vs", type=int, default=2_000)
    args = parser.parse_args()

    from meshgate.api.decode import decode_text
    from meshgate.store import open_store
    from meshgate.validation import validate_resource

    text = make_yaml(args.se, args.vs)
    phases: dict[str, float] = {}

    t0 = time.perf_counter()
    result = decode_text(text, "bench.yaml")
    phases["decode_s"] = time.perf_counter() - t0
    assert not [p for p in result.problems if p.is_error], result.problems[:3]

    t0 = time.perf_counter()
    problems = [p for d in result.documents for p in validate_resource(d.resource)]
    phases["validate_s"] = time.perf_counter() - t0
    assert not [p for p in problems if p.is_error], problems[:3]

    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(Path(tmp))
        t0 = time.perf_counter()
        wire = [d.resource.to_wire() for d in result.documents]
        changes = store.apply(wire)
        phases["store_s"] = time.perf_counter() - t0
        assert len(changes) == args.se + args.vs

    total = sum(phases.values())
    figures = {
        "service_entries": args.se,
        "virtual_services": args.vs,
        **{k: round(v, 3) for k, v in phases.items()},
        "total_s": round(total, 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "target_total_s": 3.0,
    }
    for k, v in figures.items():
        print(f"{k:>18}: {v}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "config_scale.json").write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
