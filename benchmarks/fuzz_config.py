"""Fuzz campaign over the config loader: how many hostile inputs crash it, and how.

The same inputs and judge as the fuzz tests (``tests/support/config_fuzz.py``), many more
of them, counted instead of stopping at the first finding. Four families:

- ``trees``: the complete example config with one to three values replaced by hostile
  ones (nan, inf, 10**400, wrong types, deep lists, odd text, polygons...) or removed,
  validated as a parsed tree (``parse_config``);
- ``files``: the same, written as TOML and loaded from disk (``load_config``);
- ``documents``: raw files: random bytes and text, arrays, inline tables and headers
  nested up to 6 000 deep, numbers with up to 9 000 digits, non-UTF-8;
- ``includes``: one file per hostile ``include`` (itself, a loop, a binary file, a
  5 000-deep file, a folder, a missing file, a NUL in the name, /dev/zero, wrong types).

Inputs are derandomized: the same for a given version of the fuzz module. Each input is
``refused`` (one ConfigError, every line starting with a field path), ``accepted`` (and
the engine's parts build from it), or a finding: ``crash`` (any other exception),
``accepted-broken`` (accepted but would break the engine) or ``unclear`` (an error line
without a field path).

    python -m benchmarks.fuzz_config --examples 5000

Run it under a memory limit (``ulimit -v 3000000``): before the loader bounded its input,
an ``include = ["/dev/zero"]`` read memory until the limit.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

from hypothesis import HealthCheck, given, settings

from atcs.config import parse_config
from tests.support import config_fuzz as fuzz

FINDINGS = ("crash", "accepted-broken", "unclear")


def campaign(examples: int) -> dict[str, Counter[str]]:
    """Run every family with ``examples`` inputs each; outcomes counted per family."""
    outcomes: dict[str, Counter[str]] = {}
    config = settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )

    def record(family: str, outcome: str) -> None:
        outcomes.setdefault(family, Counter())[outcome] += 1

    @config
    @given(fuzz.mutated_trees())
    def trees(tree: dict[str, object]) -> None:
        record("trees", fuzz.judge(lambda: parse_config(tree, Path("/srv/atcs"), environ={})))

    @config
    @given(fuzz.mutated_trees())
    def files(tree: dict[str, object]) -> None:
        record("files", fuzz.judge_file(fuzz.toml_text(tree).encode()))

    @config
    @given(fuzz.hostile_documents)
    def documents(data: bytes) -> None:
        record("documents", fuzz.judge_file(data))

    for family in (trees, files, documents):
        family()
    for kind in fuzz.INCLUDE_KINDS:
        record("includes", fuzz.judge_file(fuzz.toml_text(fuzz.BASE).encode(), kind))
    return outcomes


def main(argv: list[str] | None = None) -> int:
    """Run the campaign and print the counts; exit code 1 when anything was found."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=2000, help="inputs per family")
    args = parser.parse_args(argv)
    started = time.monotonic()
    outcomes = campaign(args.examples)
    total: Counter[str] = Counter()
    for family, counts in outcomes.items():
        found = {f: sum(v for k, v in counts.items() if k.startswith(f)) for f in FINDINGS}
        tried = sum(counts.values())
        total.update({"tried": tried, **found})
        print(f"{family:10} tried {tried:6d}  " + "  ".join(f"{k} {v}" for k, v in found.items()))
        kinds: Counter[str] = Counter()
        for kind, n in counts.items():
            if kind.startswith(FINDINGS):
                kinds[kind[:72]] += n
        for kind, n in kinds.most_common(8):
            print(f"{'':10} {n:6d} {kind}")
    print(
        f"total      tried {total['tried']:6d}  "
        + "  ".join(f"{k} {total[k]}" for k in FINDINGS)
        + f"  ({time.monotonic() - started:.0f} s)"
    )
    return 1 if any(total[k] for k in FINDINGS) else 0


if __name__ == "__main__":
    sys.exit(main())
