"""How much a count depends on the exact boxes: counts under small noise, per tracker.

A count that a 1-pixel change of the detector's boxes can move far is luck, not accuracy:
the same road seen by another camera, CPU or model build gives other boxes. For every clip
with hand counts (as :mod:`benchmarks.bench_counts`, the same cached boxes and the same
analyzer), each repeat adds its own noise to every box (normal, ``--jitter-px`` standard
deviation per coordinate) and confidence (uniform, ``--jitter-confidence``), and every
tracker counts the same perturbed boxes. Printed per rate, line and direction: the hand
count and, per tracker, the median count, its range and how many repeats are within 5 %
or 1 vehicle of the hand count; then per rate and tracker, the share of (line, direction,
repeat) totals on target and the worst line's.

    python -m benchmarks.bench_count_stability                 # 5 and 10 fps, 10 repeats
    python -m benchmarks.bench_count_stability --rates 5 --repeats 20 \
        --clips pontianak_motorcycles.mp4
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from pathlib import Path

from atcs.config import load_config
from benchmarks.bench_counts import (
    Clip,
    Jitter,
    count_clip,
    counting_parser,
    counting_setup,
    on_target,
    totals,
)

Pair = tuple[str, str]  # line, direction
Runs = dict[tuple[float, str], dict[Pair, list[int]]]  # (rate, tracker) -> line -> counts


def collect(
    clips: Sequence[Clip],
    rates: Sequence[float],
    trackers: Sequence[str],
    *,
    repeats: int,
    jitter_px: float,
    jitter_confidence: float,
    cache: Path,
    config: Path,
) -> dict[str, Runs]:
    """Per clip: the (line, direction) totals of every repeat, per rate and tracker."""
    cfg = load_config(config)
    out: dict[str, Runs] = {}
    for clip in clips:
        runs: Runs = {(r, t): {} for r in rates for t in trackers}
        pairs = set(totals(clip.truth))
        per_repeat = []
        for seed in range(1, repeats + 1):
            jitter = Jitter(jitter_px, jitter_confidence, seed)
            counts = count_clip(cfg, clip, rates, trackers, cache, jitter=jitter)
            per_repeat.append(counts)
            for counted in counts.values():
                pairs |= set(totals(counted))
        for counts in per_repeat:
            for (rate, tracker), counted in counts.items():
                got = totals(counted)
                for pair in pairs:
                    runs[rate, tracker].setdefault(pair, []).append(got[pair])
        out[clip.camera_id] = runs
        print(f"{clip.path.name}: {repeats} repeats", flush=True)
    return out


def print_report(
    clips: Sequence[Clip],
    results: dict[str, Runs],
    rates: Sequence[float],
    trackers: Sequence[str],
) -> None:
    """Per line the median, range and repeats on target; then the summary per tracker."""
    head = " | ".join(f"{t:>22}" for t in trackers)
    for rate in rates:
        print(f"\n=== {rate:g} frames/s: median [min-max] (repeats on target) ===")
        print(f"{'clip / line':<44} {'dir':<8} {'true':>4} | {head}")
        for clip in clips:
            truth = totals(clip.truth)
            lines = results[clip.camera_id][rate, trackers[0]]
            for pair in sorted(lines):
                cells = []
                for tracker in trackers:
                    got = results[clip.camera_id][rate, tracker][pair]
                    hits = sum(on_target(n, truth[pair]) for n in got)
                    cell = f"{statistics.median(got):g} [{min(got)}-{max(got)}] ({hits}/{len(got)})"
                    cells.append(f"{cell:>22}")
                name = f"{clip.path.stem[:18]} / {pair[0]}"
                print(f"{name:<44} {pair[1]:<8} {truth[pair]:>4} | {' | '.join(cells)}")
    print("\n=== totals on target, share of (line, direction, repeat); worst line ===")
    for rate in rates:
        parts = []
        for tracker in trackers:
            hit = total = 0
            worst = 1.0
            for clip in clips:
                truth = totals(clip.truth)
                for pair, got in results[clip.camera_id][rate, tracker].items():
                    line_hits = sum(on_target(n, truth[pair]) for n in got)
                    hit += line_hits
                    total += len(got)
                    worst = min(worst, line_hits / len(got))
            parts.append(f"{tracker} {hit}/{total} (worst line {worst:.0%})")
        print(f"{rate:>4g} fps: " + ", ".join(parts))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark (see the module docstring)."""
    parser = counting_parser(__doc__ or "", "5,10", "ours,bytetrack")
    parser.add_argument("--repeats", type=int, default=10, help="noise draws (seeds 1..N)")
    parser.add_argument("--jitter-px", type=float, default=1.0, help="box noise, px (std)")
    parser.add_argument(
        "--jitter-confidence", type=float, default=0.02, help="confidence noise (half-width)"
    )
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    rates, trackers, clips = counting_setup(args)
    results = collect(
        clips, rates, trackers, repeats=args.repeats, jitter_px=args.jitter_px,
        jitter_confidence=args.jitter_confidence, cache=args.cache, config=args.config,
    )  # fmt: skip
    print_report(clips, results, rates, trackers)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
