"""``scripts/sim_results.py --collect``: one table from runs saved by separate batches."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from atcs.sim import run_simulation

REPO = Path(__file__).resolve().parents[1]


def test_collect_builds_one_table_from_two_batches(tmp_path: Path) -> None:
    # Two short batches, as two invocations would leave them (scenario/run/summary.json).
    run_simulation("cologne1", ["fixed"], 120, 1, tmp_path / "a" / "cologne1" / "fixed-1", False)
    free = tmp_path / "b" / "cologne1" / "resco-greedy-1"
    run_simulation("cologne1", ["resco-greedy"], 120, 1, free, False)
    docs = tmp_path / "docs"
    args = ["--collect", "--out", str(tmp_path / "a"), "--also", str(tmp_path / "b")]
    subprocess.run(
        [sys.executable, "scripts/sim_results.py", *args, "--docs", str(docs), "--name", "t"],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, check=True,
        capture_output=True, timeout=300,
    )  # fmt: skip
    table = json.loads((docs / "simulation-results-t.json").read_text())["table"]["cologne1"]
    assert set(table) == {"fixed", "resco-greedy"}
    assert (table["fixed"]["kind"], table["resco-greedy"]["kind"]) == ("engine", "peer")
    assert table["fixed"]["safety_violations"] == 0
    assert table["resco-greedy"]["safety_violations"] > 0  # RESCO's rules: no all-red
    page = (docs / "simulation-results-t.md").read_text()
    assert "| cologne1 | fixed | engine | 1 |" in page
    assert "--also" in page  # the command that made it
    assert (docs / "img" / "simulation-t.png").stat().st_size > 10_000


def test_first_seed_runs_the_later_seeds_of_a_split_batch(tmp_path: Path) -> None:
    # The second half of a batch split in two: its own folder, SUMO's seed 3, not seed 1.
    out, docs = tmp_path / "out", tmp_path / "docs"
    args = ["--scenario", "cologne1", "--controller", "fixed", "--focus", "fixed"]
    args += ["--seeds", "1", "--first-seed", "3", "--other-seeds", "0", "--seconds", "60"]
    subprocess.run(
        [sys.executable, "scripts/sim_results.py", *args, "--out", str(out), "--docs", str(docs),
         "--name", "t"],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, check=True,
        capture_output=True, timeout=300,
    )  # fmt: skip
    summary = json.loads((out / "cologne1" / "fixed-1-from3" / "summary.json").read_text())
    assert [r["seed"] for r in summary["controllers"]["fixed"]["runs"]] == [3]
    table = json.loads((docs / "simulation-results-t.json").read_text())["table"]["cologne1"]
    assert table["fixed"]["seeds"] == [3]


def _saved_run(
    folder: Path,
    controller: str,
    seeds: dict[int, tuple[float, bool]],
    settings: Mapping[str, object] | None = None,
) -> None:
    """A batch's summary.json as run_simulation leaves it (only the fields the table reads)."""
    runs = [
        {"seed": seed, "mean_delay_s": delay, "p95_delay_s": 2 * delay, "gridlocked": locked,
         "safety_violations": 0, "wall_s": 20.0, "vehicles_completed": 2000}
        for seed, (delay, locked) in seeds.items()
    ]  # fmt: skip
    folder.mkdir(parents=True)
    doc: dict[str, object] = {
        "scenario": "arterial4x4",
        "controllers": {controller: {"kind": "engine", "runs": runs}},
    }
    if settings is not None:
        doc["settings"] = dict(settings)
    (folder / "summary.json").write_text(json.dumps(doc))


def test_collect_merges_one_seed_batches_and_ranks_gridlocks_first(tmp_path: Path) -> None:
    out, docs = tmp_path / "out" / "arterial4x4", tmp_path / "docs"
    _saved_run(out / "slow-1", "slow", {1: (840.0, False)})
    _saved_run(out / "slow-1-from2", "slow", {2: (830.0, False)})
    _saved_run(out / "fast-2", "fast", {1: (800.0, True), 2: (810.0, False)})
    args = ["--collect", "--out", str(tmp_path / "out"), "--docs", str(docs), "--name", "t"]
    subprocess.run(
        [sys.executable, "scripts/sim_results.py", *args],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, check=True,
        capture_output=True, timeout=300,
    )  # fmt: skip
    table = json.loads((docs / "simulation-results-t.json").read_text())["table"]["arterial4x4"]
    assert sorted(table["slow"]["seeds"]) == [1, 2]  # two one-seed batches, one row
    assert table["slow"]["mean_delay_s"] == 835.0
    page = (docs / "simulation-results-t.md").read_text()
    # The summary line names the controller that never locked, though its mean is higher.
    assert "| arterial4x4 | slow | 835.0 |" in page
    assert "| arterial4x4 | fast | engine | 2 | 805.0 |" in page


def test_collect_with_merge_keeps_the_saved_runs_and_adds_new_batches(tmp_path: Path) -> None:
    # The saved tables' runs (their batch folders long gone) plus a new controller's batch.
    docs, out = tmp_path / "docs", tmp_path / "out"
    _saved_run(
        tmp_path / "old" / "arterial4x4" / "fast-2", "fast", {1: (800.0, True), 2: (810.0, False)}
    )
    _saved_run(out / "arterial4x4" / "new-1", "new", {1: (790.0, False)})
    _saved_run(out / "arterial4x4" / "fast-1-from2", "fast", {2: (999.0, False), 3: (820.0, False)})
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    first = ["--collect", "--out", str(tmp_path / "old"), "--docs", str(docs), "--name", "t"]
    then = ["--collect", "--merge", "--out", str(out), "--docs", str(docs), "--name", "t"]
    for args in (first, then):
        subprocess.run(
            [sys.executable, "scripts/sim_results.py", *args],
            cwd=REPO, env=env, check=True, capture_output=True, timeout=300,
        )  # fmt: skip
    table = json.loads((docs / "simulation-results-t.json").read_text())["table"]["arterial4x4"]
    assert set(table) == {"fast", "new"}  # nothing saved is lost
    assert table["new"]["seeds"] == [1]
    # A seed already saved keeps its saved run; a new seed of a saved row joins it.
    assert sorted(table["fast"]["seeds"]) == [1, 2, 3]
    assert table["fast"]["mean_delay_s"] == 810.0
    page = (docs / "simulation-results-t.md").read_text()
    assert "| arterial4x4 | new | 790.0 |" in page  # the new row leads the summary


def test_collect_refuses_runs_made_with_other_settings(tmp_path: Path) -> None:
    # A diagnostic batch (SUMO's junction-blocker release) must not slip into the table.
    out, docs = tmp_path / "out", tmp_path / "docs"
    plain = {"clearances": "minimum", "phase_view": "vehicles"}
    _saved_run(out / "arterial4x4" / "a-1", "a", {1: (700.0, False)}, plain)
    _saved_run(out / "arterial4x4" / "b-1", "b", {1: (650.0, False)},
               {**plain, "junction_blocker_s": 60.0})  # fmt: skip
    args = ["--collect", "--out", str(out), "--docs", str(docs), "--name", "t"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}

    def collect(*more: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "scripts/sim_results.py", *args, *more],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip

    refused = collect("--clearances", "minimum")
    assert refused.returncode == 2
    assert "b-1" in refused.stderr
    assert "junction_blocker_s 60.0 (this table: 0.0)" in refused.stderr
    assert not (docs / "simulation-results-t.json").exists()
    assert collect().returncode == 2  # ITE asked, minimum saved
    (out / "arterial4x4" / "b-1" / "summary.json").unlink()
    assert collect("--clearances", "minimum").returncode == 0
    table = json.loads((docs / "simulation-results-t.json").read_text())["table"]["arterial4x4"]
    assert set(table) == {"a"}
