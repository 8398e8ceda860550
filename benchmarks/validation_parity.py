"""Agreement of ``meshgate validate`` with Istio's accept/reject verdict, case by case.

Point it at a corpus directory (kept outside the repository) holding ``manifest.json``:

    {
      "source": "free text",
      "cases": [
        {
          "test": "TestValidateServiceEntries",      # Istio's test table the case came from
          "name": "discovery type DNS",              # the case's name in that table
          "kind": "ServiceEntry",                    # one of the six Istio kinds
          "spec": "hosts: [a.com]\\nresolution: DNS", # the spec as YAML (Istio's field names);
                                                     # null: the document has no spec
          "metadata": {"name": "n", "namespace": "ns", "annotations": {"k": "v"}},  # optional
          "expected": "accept",                      # Istio's verdict: accept | reject
          "warning": false                           # optional: Istio also warns
        }
      ],
      "skipped": {"TestX": [{"count": 1, "why": "..."}]}   # optional: cases not translated
    }

Each case becomes one full document (``networking.istio.io/v1`` or ``security.istio.io/v1``,
metadata name ``foo`` and namespace ``bar`` unless the case sets them) and runs exactly as
``meshgate validate -f`` does: decode (``meshgate.api.decode``) then ``validate_all``. The
verdict is Istio's: accepted when no problem is an error (warnings allowed). An exception
is counted as a failure and reported with its traceback; there must be none.

Prints agreement per kind and overall, then every disagreement (case, expected, got,
meshgate's error messages); writes counts only (no corpus content) to
benchmarks/results/validation_parity.json.
Run: .venv/bin/python benchmarks/validation_parity.py /tmp/istio-validation-corpus [-v]
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from meshgate.api.decode import decode_text
from meshgate.api.problems import Problem
from meshgate.validation import validate_all

RESULTS = Path(__file__).resolve().parent / "results"
API_VERSIONS = {
    "ServiceEntry": "networking.istio.io/v1",
    "Gateway": "networking.istio.io/v1",
    "VirtualService": "networking.istio.io/v1",
    "DestinationRule": "networking.istio.io/v1",
    "Sidecar": "networking.istio.io/v1",
    "AuthorizationPolicy": "security.istio.io/v1",
}


@dataclass
class Outcome:
    test: str
    name: str
    kind: str
    expected: str
    got: str
    errors: list[str] = field(default_factory=list)
    crash: str = ""

    @property
    def agrees(self) -> bool:
        return not self.crash and self.expected == self.got


def document(case: dict[str, Any]) -> str:
    """One YAML document; metadata is written as JSON, which YAML reads as flow style."""
    meta: dict[str, Any] = {"name": "foo", "namespace": "bar"}
    meta.update(case.get("metadata") or {})
    head = (
        f"apiVersion: {API_VERSIONS[case['kind']]}\nkind: {case['kind']}\n"
        f"metadata: {json.dumps(meta)}\n"
    )
    if case["spec"] is None:
        return head
    return head + "spec:\n" + textwrap.indent(case["spec"], "  ") + "\n"


def run_case(case: dict[str, Any]) -> Outcome:
    out = Outcome(case["test"], case["name"], case["kind"], case["expected"], "")
    try:
        result = decode_text(document(case), "case.yaml")
        problems: list[Problem] = result.problems + validate_all(result.documents)
    except Exception:  # any exception is a finding the benchmark reports
        out.crash = traceback.format_exc()
        out.got = "crash"
        return out
    errors = [p for p in problems if p.is_error]
    out.got = "reject" if errors else "accept"
    out.errors = [f"{p.code} {p.field}: {p.message}" for p in errors]
    return out


def percent(part: int, whole: int) -> float:
    return round(100.0 * part / whole, 1) if whole else 0.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", type=Path)
    parser.add_argument("-v", "--verbose", action="store_true", help="print every case")
    args = parser.parse_args(argv)
    manifest = json.loads((args.corpus / "manifest.json").read_text())
    cases: list[dict[str, Any]] = manifest["cases"]
    started = time.perf_counter()
    outcomes = [run_case(c) for c in cases]
    seconds = round(time.perf_counter() - started, 2)

    per_kind: dict[str, Counter[str]] = {}
    for o in outcomes:
        tally = per_kind.setdefault(o.kind, Counter())
        tally["cases"] += 1
        tally["agree"] += o.agrees
        tally["crashes"] += bool(o.crash)
        if not o.agrees and not o.crash:
            tally["false_reject" if o.got == "reject" else "false_accept"] += 1
        if args.verbose:
            print(f"{'ok ' if o.agrees else 'BAD'} {o.kind} {o.test} / {o.name}")

    agree = sum(o.agrees for o in outcomes)
    crashes = sum(bool(o.crash) for o in outcomes)
    print(f"{'kind':<22}{'cases':>7}{'agree':>7}{'%':>8}{'false rej':>11}{'false acc':>11}")
    for kind, t in sorted(per_kind.items()):
        print(
            f"{kind:<22}{t['cases']:>7}{t['agree']:>7}{percent(t['agree'], t['cases']):>8}"
            f"{t['false_reject']:>11}{t['false_accept']:>11}"
        )
    print(f"{'overall':<22}{len(outcomes):>7}{agree:>7}{percent(agree, len(outcomes)):>8}")
    skipped = sum(s["count"] for v in manifest.get("skipped", {}).values() for s in v)
    print(f"exceptions: {crashes}; cases not translated (in manifest): {skipped}; {seconds} s")

    bad = [o for o in outcomes if not o.agrees]
    if bad:
        print("\ndisagreements:")
    for o in bad:
        print(f"- [{o.kind}] {o.test} / {o.name}: Istio {o.expected}s, meshgate {o.got}s")
        for line in o.errors:
            print(f"    {line}")
        if o.crash:
            print(textwrap.indent(o.crash, "    "))

    RESULTS.mkdir(exist_ok=True)
    summary = {
        "cases": len(outcomes),
        "agree": agree,
        "agree_percent": percent(agree, len(outcomes)),
        "exceptions": crashes,
        "cases_not_translated": skipped,
        "seconds": seconds,
        "per_kind": {k: dict(sorted(t.items())) for k, t in sorted(per_kind.items())},
    }
    (RESULTS / "validation_parity.json").write_text(json.dumps(summary, indent=1) + "\n")
    return 1 if crashes else 0


if __name__ == "__main__":
    sys.exit(main())
