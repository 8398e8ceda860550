"""Parity of ``meshgate analyze --offline`` with Istio's analyzers, case by case.

Point it at a corpus directory (kept outside the repository) holding ``manifest.json``:

    {
      "description": "free text",
      "defaults": ["istio-test-defaults.yaml"],      # optional: files added to every case
      "cases": [
        {
          "name": "gatewayBadPort",
          "analyzer": "gateway.IngressGatewayPortAnalyzer",   # optional, Istio's name
          "files": ["testdata/gateway-no-port.yaml"],         # relative to the corpus dir
          "mesh_config": "testdata/mesh.yaml",                # optional, Istio MeshConfig
          "expected": [
            {"code": "IST0162", "kind": "Gateway", "namespace": null,
             "resource": "httpbin-gateway"}
          ]
        }
      ]
    }

``namespace: null`` means the input did not name one (Istio's tests then omit it): it
matches a message about the resource in ``default``, where meshgate puts it.

Each case runs in-process exactly as ``meshgate analyze --offline -f FILES...`` does
(``meshgate.cli.analyze.gather_inputs``). When the case names an analyzer, only meshgate's
analyzer of that name runs, as Istio's test runs only the analyzer under test (a name
meshgate lacks runs none); ``--all-analyzers`` runs them all. Input notes always count
(a document meshgate cannot decode is a finding), except Info-level meshgate-only notes
(``MG2001`` skipped kinds). The set of (code, kind, namespace/name) found is compared
with the expected set: ``exact``, or what is ``missing`` and ``extra``. A case with an
``mesh_config`` meshgate cannot express is run anyway and reported with a note.

Prints one line a case and the overall figures; writes figures only (no corpus content
beyond case names) to benchmarks/results/analyzer_parity.json.
Run: .venv/bin/python benchmarks/analyzer_parity.py /tmp/istio-analyzer-corpus [-v]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from meshgate.analysis.messages import Message
from meshgate.analysis.runner import ANALYZERS, Analyzer, analyze
from meshgate.api.problems import Severity
from meshgate.cli.analyze import gather_inputs

RESULTS = Path(__file__).resolve().parent / "results"
Key = tuple[str, str, str, str]  # code, kind, namespace, name


@dataclass
class Outcome:
    name: str
    analyzer: str
    expected: set[Key]
    found: set[Key]
    notes: list[str] = field(default_factory=list)

    @property
    def missing(self) -> set[Key]:
        return self.expected - self.found

    @property
    def extra(self) -> set[Key]:
        return self.found - self.expected

    @property
    def exact(self) -> bool:
        return not self.missing and not self.extra


def expected_key(item: dict[str, Any]) -> Key:
    return (item["code"], item["kind"], item.get("namespace") or "default", item["resource"])


def message_key(m: Message) -> Key | None:
    if not m.origin:
        return (m.type.code, "", "", m.file)
    kind, _, ref = m.origin.partition(" ")
    ns, _, name = ref.rpartition("/")
    return (m.type.code, kind, ns or m.namespace, name)


def counted(m: Message) -> bool:
    return not (m.type.code.startswith("MG") and m.level == Severity.INFO)


def chosen_analyzers(name: str | None, run_all: bool) -> tuple[Analyzer, ...]:
    if run_all or not name:
        return ANALYZERS
    return tuple(a for a in ANALYZERS if a.name == name)


def run_case(root: Path, defaults: list[str], case: dict[str, Any], run_all: bool) -> Outcome:
    paths = [str(root / f) for f in case["files"]] + [str(root / f) for f in defaults]
    outcome = Outcome(
        case["name"],
        case.get("analyzer", ""),
        {expected_key(e) for e in case["expected"]},
        set(),
    )
    if case.get("mesh_config"):
        outcome.notes.append("Istio MeshConfig file not applied (meshgate has no such input)")
    try:
        result = analyze(
            gather_inputs(paths, None, offline=True),
            chosen_analyzers(case.get("analyzer"), run_all),
        )
    except Exception as exc:  # a traceback is itself a finding: report it, keep going
        outcome.notes.append(f"crashed: {type(exc).__name__}: {exc}")
        outcome.found.add(("CRASH", type(exc).__name__, "", str(exc)[:80]))
        return outcome
    for m in result.messages:
        key = message_key(m)
        if key is not None and counted(m):
            outcome.found.add(key)
    return outcome


def fmt(key: Key) -> str:
    code, kind, ns, name = key
    return f"{code} {kind} {ns}/{name}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", type=Path, help="directory holding manifest.json")
    parser.add_argument("--all-analyzers", action="store_true", help="run every analyzer")
    parser.add_argument("-v", "--verbose", action="store_true", help="list missing/extra")
    parser.add_argument("--out", type=Path, default=RESULTS / "analyzer_parity.json")
    args = parser.parse_args()

    manifest = json.loads((args.corpus / "manifest.json").read_text(encoding="utf-8"))
    defaults = list(manifest.get("defaults", []))
    started = time.perf_counter()
    outcomes = [run_case(args.corpus, defaults, c, args.all_analyzers) for c in manifest["cases"]]
    elapsed = time.perf_counter() - started

    for o in outcomes:
        verdict = "exact" if o.exact else f"missing {len(o.missing)} extra {len(o.extra)}"
        print(f"{'OK ' if o.exact else 'BAD'} {o.name}: {verdict}")
        if args.verbose and not o.exact:
            for k in sorted(o.missing):
                print(f"      missing {fmt(k)}")
            for k in sorted(o.extra):
                print(f"      extra   {fmt(k)}")
        for note in o.notes:
            print(f"      note: {note}")

    exact = sum(o.exact for o in outcomes)
    clean = [o for o in outcomes if not o.expected]
    clean_fp = [o for o in clean if o.extra]
    expected_total = sum(len(o.expected) for o in outcomes)
    found_right = sum(len(o.expected & o.found) for o in outcomes)
    extra_total = sum(len(o.extra) for o in outcomes)
    pct = 100.0 * exact / len(outcomes) if outcomes else 0.0
    print()
    print(f"cases exactly right: {exact}/{len(outcomes)} = {pct:.1f}%")
    print(f"expected messages found: {found_right}/{expected_total}; extra messages: {extra_total}")
    print(f"clean inputs with false positives: {len(clean_fp)}/{len(clean)}")
    print(f"time: {elapsed:.2f} s")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    figures = {
        "cases": len(outcomes),
        "exact": exact,
        "exact_percent": round(pct, 1),
        "expected_messages": expected_total,
        "expected_found": found_right,
        "extra_messages": extra_total,
        "clean_cases": len(clean),
        "clean_cases_with_false_positives": len(clean_fp),
        "all_analyzers": args.all_analyzers,
        "seconds": round(elapsed, 2),
        "per_case": [
            {
                "name": o.name,
                "exact": o.exact,
                "missing": len(o.missing),
                "extra": len(o.extra),
            }
            for o in outcomes
        ],
    }
    args.out.write_text(json.dumps(figures, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
