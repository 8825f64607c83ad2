"""Reproduce the closed-loop results table and plot of ``docs/simulation.md``.

Runs ``atcs simulate`` (full scenario hour) on each scenario with each controller and
seed, then writes ``docs/simulation-results.md`` (the tables), ``simulation-results.json``
(the numbers, per run) and ``docs/img/simulation.png`` (the plot). Usage::

    .venv/bin/python scripts/sim_results.py --jobs 2                # the documented runs
    .venv/bin/python scripts/sim_results.py --scenario cologne1 --merge
    .venv/bin/python scripts/sim_results.py --clearances minimum --name minimum

The documented runs: every scenario; the ``--focus`` controllers (the engine's
``delay-balance`` and the four RESCO peers) with ``--seeds`` seeds (10), every other
controller with ``--other-seeds`` (3). ``--merge`` keeps the saved runs this invocation
does not redo, so the table can be rebuilt piece by piece on a shared machine;
``--jobs`` runs that many scenarios at once. ``--name`` writes
``simulation-results-<name>.*`` instead (for instance the 3 s / 1 s clearances run);
``--collect`` builds the tables from runs saved under ``--out`` (and each ``--also``)
by earlier invocations, for a table assembled from several batches; ``--first-seed``
splits one controller's seeds over batches (``--seeds 5``, then ``--first-seed 6
--seeds 5``; a seed collected twice counts once). ``--collect --merge`` starts from the
runs saved in the ``.json`` beside the tables and adds the collected ones (a seed already
saved keeps its saved run), so new rows join the table without the old batches' folders.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SCENARIOS = (
    "demo",
    "cologne1",
    "cologne3",
    "cologne8",
    "ingolstadt1",
    "ingolstadt7",
    "ingolstadt7-restored",
    "ingolstadt21",
    "grid4x4",
    "arterial4x4",
)
FOCUS = (
    "delay-balance",
    "resco-max-pressure",
    "resco-greedy",
    "resco-max-pressure-envelope",
    "resco-greedy-envelope",
)
PEERS_IN_ENVELOPE = ("resco-max-pressure-envelope", "resco-greedy-envelope")
# RESCO (Ault & Sharon 2021), average delay (s) of its best learning controller, read
# from its figure (3 s yellow, no all-red, an older SUMO, RESCO's own ingolstadt7).
RESCO_LEARNING_S = {
    "cologne1": 27.0,
    "cologne3": 19.0,
    "cologne8": 22.0,
    "ingolstadt1": 20.0,
    "ingolstadt7": 31.0,
    "ingolstadt21": 67.0,
    "grid4x4": 34.0,
    "arterial4x4": 650.0,
}
Runs = dict[str, dict[str, dict[str, Any]]]  # scenario -> controller -> {"kind", "runs"}


Job = tuple[str, list[str], int, int, str, Path, int | None, float, float, str, float, float, float]


def _run_one(job: Job) -> Runs:
    """One scenario: its controllers over their seeds (in a worker process)."""
    from atcs.sim import RunSettings, run_simulation

    scenario, controllers, first, seeds, clearances, out, seconds, outages, wave, view = job[:10]
    age_s, loss, blocker_s = job[10], job[11], job[12]
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    summary = run_simulation(
        scenario,
        controllers,
        seconds,
        first,
        out / scenario / (f"{controllers[0]}-{seeds}" + (f"-from{first}" if first > 1 else "")),
        progress=False,
        settings=RunSettings(
            seeds=seeds,
            clearances=clearances,
            outage_share=outages,
            green_wave_m_s=wave,
            phase_view=view,
            zone_age_s=age_s,
            zone_loss=loss,
            junction_blocker_s=blocker_s,
        ),
    )
    out_runs: Runs = {scenario: {}}
    for s in summary.summaries:
        out_runs[scenario][s.controller] = {
            "kind": s.kind,
            "runs": [r.to_json() for r in s.runs],
        }
    return out_runs


def _jobs(args: argparse.Namespace) -> list[Job]:
    out = []
    for scenario in args.scenario:
        focus = [c for c in args.controller if c in args.focus]
        others = [c for c in args.controller if c not in args.focus]
        for group, seeds in ((focus, args.seeds), (others, args.other_seeds)):
            if group and seeds > 0:
                out.append(
                    (scenario, group, args.first_seed, seeds, args.clearances, args.out,
                     args.seconds, args.camera_outages, args.green_wave, args.phase_view,
                     args.zone_age_s, args.zone_loss, args.ignore_junction_blocker)
                )  # fmt: skip
    return out


def aggregate(runs: Runs) -> dict[str, Any]:
    """Per scenario and controller: mean, median, p95, gridlocks, violations, wall time."""
    table: dict[str, Any] = {}
    for scenario, by_controller in runs.items():
        for controller, entry in by_controller.items():
            items = entry["runs"]
            delays = [float(r["mean_delay_s"]) for r in items]
            table.setdefault(scenario, {})[controller] = {
                "kind": entry["kind"],
                "seeds": [r["seed"] for r in items],
                "mean_delay_s": statistics.fmean(delays),
                "median_delay_s": statistics.median(delays),
                "sd_delay_s": statistics.pstdev(delays) if len(delays) > 1 else 0.0,
                "p95_delay_s": statistics.fmean(float(r["p95_delay_s"]) for r in items),
                "gridlocks": sum(bool(r["gridlocked"]) for r in items),
                "safety_violations": sum(int(r["safety_violations"]) for r in items),
                "wall_s": statistics.fmean(float(r["wall_s"]) for r in items),
                "vehicles_completed": statistics.fmean(int(r["vehicles_completed"]) for r in items),
            }
    return table


def best(rows: dict[str, Any], names: list[str] | tuple[str, ...]) -> str | None:
    """Return the controller of ``names`` with the fewest gridlocks, then the lowest mean.

    None when none ran. A run that locks is a failure a lower mean cannot buy back.
    """
    present = [c for c in names if c in rows]
    if not present:
        return None
    return min(present, key=lambda c: (rows[c]["gridlocks"], rows[c]["mean_delay_s"]))


def _row(name: str, r: dict[str, Any]) -> str:
    return (
        f"| {name} | {r['kind']} | {len(r['seeds'])} | {r['mean_delay_s']:.1f} | "
        f"{r['median_delay_s']:.1f} | {r['p95_delay_s']:.0f} | {r['gridlocks']} | "
        f"{r['safety_violations']} | {r['wall_s']:.0f} |"
    )


def markdown(table: dict[str, Any], command: str, clearances: str) -> str:
    """Return the results page: the summary per network, then every controller."""
    lines = [
        "<!-- generated by scripts/sim_results.py; do not edit by hand -->",
        f"Clearances: `{clearances}`. Delay: time loss plus departure delay per vehicle "
        "(RESCO's definition), seconds; mean and median over seeds of each run's mean; p95: "
        "mean over seeds of each run's 95th percentile. Gridlocks: runs in which 10 or more "
        "vehicles at once had each stood still for 300 s or more. Violations: envelope "
        "rules broken in what SUMO showed (engine and peers in the envelope must have 0; "
        "RESCO's own rules have no all-red). Wall: seconds per simulated hour on the "
        "machine that ran it. Best: the fewest gridlocked runs, then the lowest mean.",
        "",
        "| network | best engine | mean | median | p95 | gridlocks | wall s | best peer in "
        "envelope | mean | median | gridlocks | best peer (RESCO rules) | mean "
        "| RESCO learning (published) |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | --- | ---: "
        "| ---: |",
    ]
    for scenario, rows in table.items():
        engine = best(rows, [c for c, r in rows.items() if r["kind"] == "engine"])
        peer_env = best(rows, PEERS_IN_ENVELOPE)
        peer = _best_free_peer(rows)
        target = RESCO_LEARNING_S.get(scenario)
        cells = [scenario]
        if engine is None:
            cells += ["-"] * 6
        else:
            r = rows[engine]
            cells += [engine, f"{r['mean_delay_s']:.1f}", f"{r['median_delay_s']:.1f}",
                      f"{r['p95_delay_s']:.0f}", str(r["gridlocks"]),
                      f"{r['wall_s']:.0f}"]  # fmt: skip
        if peer_env is None:
            cells += ["-"] * 4
        else:
            r = rows[peer_env]
            cells += [peer_env, f"{r['mean_delay_s']:.1f}", f"{r['median_delay_s']:.1f}",
                      str(r["gridlocks"])]  # fmt: skip
        if peer is None:
            cells += ["-"] * 2
        else:
            cells += [peer, f"{rows[peer]['mean_delay_s']:.1f}"]
        cells.append("" if target is None else f"{target:g}")
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "| network | controller | kind | seeds | mean s | median s | p95 s | gridlocks "
        "| violations | wall s |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for scenario, rows in table.items():
        for name, r in sorted(rows.items(), key=lambda kv: kv[1]["mean_delay_s"]):
            lines.append(_row(f"{scenario} | {name}", r))
    lines += ["", f"Reproduce with `{command}`."]
    return "\n".join(lines) + "\n"


def _best_engine(rows: dict[str, Any]) -> str | None:
    return best(rows, [c for c, r in rows.items() if r["kind"] == "engine" and c != "fixed"])


def _best_free_peer(rows: dict[str, Any]) -> str | None:
    names = [c for c, r in rows.items() if r["kind"] == "peer" and c not in PEERS_IN_ENVELOPE]
    return best(rows, names)


def _fixed(rows: dict[str, Any]) -> str | None:
    return "fixed" if "fixed" in rows else None


def plot(table: dict[str, Any], path: Path, clearances: str = "ite") -> None:
    """Bars per network: best engine, best peer in the envelope, best peer, fixed time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scenarios = list(table)
    groups: tuple[tuple[str, Callable[[dict[str, Any]], str | None]], ...] = (
        ("best engine controller", _best_engine),
        ("best RESCO peer, engine envelope", lambda rows: best(rows, PEERS_IN_ENVELOPE)),
        ("best RESCO peer, RESCO rules (no all-red)", _best_free_peer),
        ("fixed time (network's program, made safe)", _fixed),
    )
    fig, ax = plt.subplots(figsize=(12, 5))
    width = 0.8 / len(groups)
    for k, (label, pick) in enumerate(groups):
        xs, ys, err = [], [], []
        for i, scenario in enumerate(scenarios):
            name = pick(table[scenario])
            if name is None:
                continue
            r = table[scenario][name]
            xs.append(i + (k - (len(groups) - 1) / 2) * width)
            ys.append(r["mean_delay_s"])
            err.append(r["sd_delay_s"])
        ax.bar(xs, ys, width, yerr=err, capsize=2, label=label)
    for i, scenario in enumerate(scenarios):
        if scenario in RESCO_LEARNING_S:
            ax.plot(i, RESCO_LEARNING_S[scenario], "*", color="black", markersize=9)
    ax.plot([], [], "*", color="black", label="RESCO best learning controller, published")
    ax.set_xticks(range(len(scenarios)), scenarios, rotation=20)
    ax.set_yscale("log")
    ax.set_ylabel("mean delay per vehicle (s, log scale)")
    ax.set_title(
        f"atcs simulate, one hour per run, mean over seeds (engine: cameras; clearances: "
        f"{clearances})"
    )
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--scenario", action="append", help="scenario (repeatable)")
    parser.add_argument("--controller", action="append", help="controller (repeatable)")
    parser.add_argument("--focus", action="append", help="controllers run with --seeds")
    parser.add_argument("--seeds", type=int, default=10, help="seeds of the focus controllers")
    parser.add_argument("--other-seeds", type=int, default=3, help="seeds of the others")
    parser.add_argument(
        "--first-seed",
        type=int,
        default=1,
        help="first SUMO seed (seeds 6..10 of a batch split in two: --first-seed 6 --seeds 5)",
    )
    parser.add_argument("--clearances", choices=("ite", "minimum"), default="ite")
    parser.add_argument("--seconds", type=int, default=None, help="simulated seconds")
    parser.add_argument(
        "--camera-outages", type=float, default=0.0, help="share of cameras down 15 min once"
    )
    parser.add_argument(
        "--green-wave", type=float, default=0.0, help="green-wave speed (m/s; 0: none)"
    )
    parser.add_argument(
        "--phase-view",
        choices=("vehicles", "windows", "bus"),
        default="vehicles",
        help="phase controllers see each vehicle every second, the live service's windows, "
        "or the vehicles as over the bus",
    )
    parser.add_argument(
        "--zone-age-s", type=float, default=1.0, help="--phase-view bus: zone age (s)"
    )
    parser.add_argument(
        "--zone-loss", type=float, default=0.0, help="--phase-view bus: share of zones lost"
    )
    parser.add_argument(
        "--ignore-junction-blocker",
        type=float,
        default=0.0,
        metavar="S",
        help="SUMO's --ignore-junction-blocker (s; 0: off, as RESCO and the tables)",
    )
    parser.add_argument("--jobs", type=int, default=1, help="scenarios run at once")
    parser.add_argument("--name", default="", help="suffix of the output files")
    parser.add_argument("--out", type=Path, default=REPO / "var" / "sim-results")
    parser.add_argument("--docs", type=Path, default=REPO / "docs")
    parser.add_argument(
        "--merge",
        action="store_true",
        help="keep saved runs not redone (with --collect: add to them)",
    )
    parser.add_argument("--replot", action="store_true", help="only redraw from saved runs")
    parser.add_argument(
        "--collect",
        action="store_true",
        help="build the table from every summary.json under --out (runs already done)",
    )
    parser.add_argument(
        "--also",
        action="append",
        type=Path,
        default=[],
        help="with --collect: another output folder to take runs from (repeatable)",
    )
    return parser


def _mismatched_settings(doc: dict[str, Any], args: argparse.Namespace) -> list[str]:
    """Return a saved run's settings that differ from the table's (absent: defaults)."""
    from atcs.sim import RunSettings

    saved = doc.get("settings")
    if saved is None:  # written before runs recorded their settings
        return []
    defaults = RunSettings().to_json()
    wanted = {
        "clearances": args.clearances,
        "camera_errors": True,
        "outage_share": args.camera_outages,
        "green_wave_m_s": args.green_wave,
        "phase_view": args.phase_view,
        "phase_window_s": defaults["phase_window_s"],
        "zone_age_s": args.zone_age_s,
        "zone_loss": args.zone_loss,
        "junction_blocker_s": args.ignore_junction_blocker,
    }
    return [
        f"{key} {saved.get(key, defaults[key])!r} (this table: {value!r})"
        for key, value in wanted.items()
        if saved.get(key, defaults[key]) != value
    ]


def main(argv: list[str] | None = None) -> int:
    """Run the scenarios, write the tables, the numbers and the plot under ``docs/``."""
    from atcs.sim.setup import all_controllers

    parser = _parser()
    args = parser.parse_args(argv)
    stem = "simulation-results" + (f"-{args.name}" if args.name else "")
    saved_path = args.docs / f"{stem}.json"
    image = args.docs / "img" / f"{stem.replace('-results', '')}.png"
    runs: Runs = {}
    if (args.merge or args.replot) and saved_path.exists():
        runs = json.loads(saved_path.read_text(encoding="utf-8"))["runs"]
    if args.collect:
        paths = [p for folder in (args.out, *args.also) for p in folder.glob("*/*/summary.json")]
        for path in sorted(paths):
            doc = json.loads(path.read_text(encoding="utf-8"))
            mismatched = _mismatched_settings(doc, args)
            if mismatched:
                print(
                    f"sim_results: {path} was run with other settings: "
                    f"{'; '.join(mismatched)}; give the same options or leave it out",
                    file=sys.stderr,
                )
                return 2
            for name, row in doc["controllers"].items():
                entry = runs.setdefault(doc["scenario"], {}).setdefault(
                    name, {"kind": row["kind"], "runs": []}
                )
                seeds = {r["seed"] for r in entry["runs"]}
                entry["runs"] += [r for r in row["runs"] if r["seed"] not in seeds]
    elif not args.replot:
        args.scenario = args.scenario or list(SCENARIOS)
        args.controller = args.controller or list(all_controllers())
        args.focus = args.focus or list(FOCUS)
        jobs = _jobs(args)
        with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            for done in pool.map(_run_one, jobs):
                for scenario, by_controller in done.items():
                    runs.setdefault(scenario, {}).update(by_controller)
    order = [s for s in SCENARIOS if s in runs] + [s for s in runs if s not in SCENARIOS]
    runs = {s: runs[s] for s in order}
    table = aggregate(runs)
    command = "python scripts/sim_results.py" + "".join(
        f" {a}" for a in (sys.argv[1:] if argv is None else argv)
    )
    args.docs.mkdir(parents=True, exist_ok=True)
    (args.docs / f"{stem}.md").write_text(
        markdown(table, command, args.clearances), encoding="utf-8"
    )
    saved_path.write_text(
        json.dumps({"table": table, "runs": runs}, indent=1) + "\n", encoding="utf-8"
    )
    plot(table, image, args.clearances)
    print((args.docs / f"{stem}.md").read_text(encoding="utf-8"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
