"""Every YAML block of the seed page, and every walkthrough file, through the CLI.

For each source: ``apply`` creates every object, ``get`` shows each one, ``get -o yaml``
of each object (and of the listing) applied again changes nothing, and applying the
source again changes nothing. The CLI runs in-process on a private ``MESHGATE_HOME`` with
no control plane, so the verbs work on the store directly.

The seed blocks are cut out of the seed page itself (``shared/seed/``, beside the
checkout) when it is there; ``tests/unit/api/data/seed-blocks.yaml`` is a verbatim copy,
checked against the page, so the tests also run where ``shared/`` is absent.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import Result

Run = Callable[..., Result]
ROOT = Path(__file__).resolve().parents[3]
SEED = ROOT.parent / "shared" / "seed" / "000_9b900eadde833060.txt"
DATA = ROOT / "tests" / "unit" / "api" / "data"
WALKTHROUGH = ROOT / "examples" / "walkthrough"


def extract_blocks(page: str) -> list[str]:
    """The YAML blocks of the page: an indented run of lines that starts at ``apiVersion:``
    and lasts while lines are blank or indented at least as deep."""
    blocks: list[str] = []
    lines = page.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.lstrip().startswith("apiVersion:"):
            i += 1
            continue
        indent = len(line) - len(line.lstrip())
        block = [line]
        i += 1
        while i < len(lines) and (
            not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) >= indent
        ):
            block.append(lines[i])
            i += 1
        blocks.append(textwrap.dedent("\n".join(block).rstrip()) + "\n")
    return blocks


COPY = (DATA / "seed-blocks.yaml").read_text(encoding="utf-8")
# Without the page, the copy stands for its blocks, as one file.
SEED_BLOCKS = extract_blocks(SEED.read_text(encoding="utf-8")) if SEED.exists() else [COPY]


def docs(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


@pytest.mark.skipif(not SEED.exists(), reason="shared/seed is not beside this checkout")
def test_the_seed_has_three_blocks_and_the_copy_matches() -> None:
    kinds = [[d["kind"] for d in docs(b)] for b in SEED_BLOCKS]
    assert kinds == [
        ["ServiceAccount", "Service", "Deployment"],
        ["ServiceEntry"],
        ["VirtualService"],
    ]
    assert docs(COPY) == [d for b in SEED_BLOCKS for d in docs(b)]


def round_trip(mg: Run, path: Path) -> None:
    """Apply ``path``; every object shows with get and round-trips unchanged."""
    applied = mg("apply", "-f", str(path))
    assert applied.exit_code == 0, applied.stderr
    wanted = docs(path.read_text(encoding="utf-8"))
    assert len(applied.stdout.splitlines()) == len(wanted)
    assert all(
        line.split()[-1] in ("created", "configured") for line in applied.stdout.splitlines()
    )

    for doc in wanted:
        kind, name = doc["kind"], doc["metadata"]["name"]
        ns = doc["metadata"].get("namespace", "default")
        scope = ["-n", ns] if kind not in ("Namespace", "MeshConfig") else []
        shown = mg("get", kind.lower(), name, *scope)
        assert shown.exit_code == 0, shown.stderr
        assert shown.stdout.splitlines()[1].split()[0] == name

        dumped = mg("get", kind.lower(), name, *scope, "-o", "yaml")
        assert dumped.exit_code == 0, dumped.stderr
        stored = yaml.safe_load(dumped.stdout)
        assert stored["kind"] == kind
        # What the user wrote is what is stored (defaults may add, never change).
        for field in ("spec", "data"):
            if field in doc:
                _assert_contains(stored[field], doc[field], f"{kind}/{name}.{field}")
        again = mg("apply", "-f", "-", input=dumped.stdout)
        assert again.exit_code == 0, again.stderr
        assert again.stdout.split()[-1] == "unchanged", again.stdout

    kinds = ",".join(sorted({d["kind"].lower() for d in wanted}))
    listing = mg("get", kinds, "-A", "-o", "yaml")
    assert listing.exit_code == 0, listing.stderr
    again = mg("apply", "-f", "-", input=listing.stdout)
    assert again.exit_code == 0, again.stderr
    assert all(line.endswith(" unchanged") for line in again.stdout.splitlines()), again.stdout
    reapplied = mg("apply", "-f", str(path))
    assert all(line.endswith(" unchanged") for line in reapplied.stdout.splitlines())


def _assert_contains(stored: Any, written: Any, where: str) -> None:
    if isinstance(written, dict):
        assert isinstance(stored, dict), where
        for key, value in written.items():
            assert key in stored, f"{where}.{key} lost"
            _assert_contains(stored[key], value, f"{where}.{key}")
    elif isinstance(written, list):
        assert isinstance(stored, list) and len(stored) == len(written), where
        for i, (s, w) in enumerate(zip(stored, written, strict=True)):
            _assert_contains(s, w, f"{where}[{i}]")
    else:
        assert stored == written, where


@pytest.mark.parametrize("index", range(len(SEED_BLOCKS)))
def test_each_seed_block_applies_shows_and_round_trips(mg: Run, tmp_path: Path, index: int) -> None:
    path = tmp_path / f"seed-block-{index}.yaml"
    path.write_text(SEED_BLOCKS[index], encoding="utf-8")
    round_trip(mg, path)


@pytest.mark.parametrize("name", sorted(p.name for p in WALKTHROUGH.glob("*.yaml")))
def test_each_walkthrough_file_applies_shows_and_round_trips(mg: Run, name: str) -> None:
    round_trip(mg, WALKTHROUGH / name)


def test_reference_examples_apply_show_and_round_trip(mg: Run) -> None:
    round_trip(mg, DATA / "reference-examples.yaml")


def test_seed_in_separate_processes(tmp_path: Path) -> None:
    """Each verb a new process, as a user runs them: apply, get -o yaml, apply again."""
    env = {**os.environ, "MESHGATE_HOME": str(tmp_path / "home")}
    seed = tmp_path / "seed.yaml"
    seed.write_text("---\n".join(SEED_BLOCKS), encoding="utf-8")
    meshgate = [sys.executable, "-m", "meshgate.cli.main"]

    def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*meshgate, *args], input=stdin, capture_output=True, text=True, env=env, timeout=60
        )

    applied = run("apply", "-f", str(seed))
    assert applied.returncode == 0, applied.stderr
    assert len(applied.stdout.splitlines()) == 5
    dumped = run("get", "sa,svc,deploy,se,vs", "-o", "yaml")
    assert dumped.returncode == 0, dumped.stderr
    assert len(yaml.safe_load(dumped.stdout)["items"]) == 5
    again = run("apply", "-f", "-", stdin=dumped.stdout)
    assert again.returncode == 0, again.stderr
    assert [line.split()[-1] for line in again.stdout.splitlines()] == ["unchanged"] * 5


def test_invalid_documents_across_files_change_nothing_and_are_all_named(
    mg: Run, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    good = SEED_BLOCKS[0]
    (src / "a.yaml").write_text(good + "---\n" + _se("fine", "  resolution: DNS\n"))
    (src / "b.yaml").write_text(
        "apiVersion: v1\n"
        "kind: List\n"
        "items:\n"
        "- apiVersion: networking.istio.io/v1\n"
        "  kind: ServiceEntry\n"
        "  metadata: {name: listed}\n"
        "  spec:\n"
        "    hosts: [a.com]\n"
        "    ports:\n"
        "    - number: eighty\n"  # line 10: wrong type
        "      name: http\n"
        "---\n" + _se("typo", "  resolutionn: DNS\n")  # line 21: unknown field
    )
    result = mg("apply", "-f", str(src))
    assert result.exit_code == 1
    assert result.stdout == ""
    err = result.stderr
    assert f"{src / 'b.yaml'}:10" in err and "spec.ports[0].number" in err
    assert f"{src / 'b.yaml'}:21" in err and "spec.resolutionn" in err
    for kind in ("sa", "svc", "deploy", "se"):
        assert mg("get", kind, "-A", "-o", "name").stdout == "", kind


def _se(name: str, extra: str) -> str:
    return (
        "apiVersion: networking.istio.io/v1beta1\n"
        "kind: ServiceEntry\n"
        "metadata:\n"
        f"  name: {name}\n"
        "spec:\n"
        "  hosts:\n"
        f"  - {name}.example.com\n"
        "  location: MESH_EXTERNAL\n" + extra
    )
