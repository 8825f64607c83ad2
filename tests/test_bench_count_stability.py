"""The count-stability benchmark: its noise, and one real run on a short clip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from atcs.types import Detections
from benchmarks import bench_count_stability
from benchmarks.bench_counts import Jitter


def _frames() -> list[Detections]:
    xyxy = np.array([[100.0, 100.0, 140.0, 180.0], [300.0, 50.0, 302.0, 52.0]], np.float32)
    dets = Detections(xyxy, np.array([0.5, 0.99], np.float32), np.array([0, 1], np.int64))
    return [dets] * 200


def test_jitter_moves_every_box_by_about_its_deviation_and_repeats_per_seed() -> None:
    frames = _frames()
    noisy = Jitter(1.0, 0.02, seed=3).apply(frames)
    again = Jitter(1.0, 0.02, seed=3).apply(frames)
    other = Jitter(1.0, 0.02, seed=4).apply(frames)
    moved = np.concatenate([n.xyxy - f.xyxy for n, f in zip(noisy, frames, strict=True)])
    assert 0.9 < float(moved.std()) < 1.1
    assert abs(float(moved.mean())) < 0.1
    assert all(np.array_equal(a.xyxy, b.xyxy) for a, b in zip(noisy, again, strict=True))
    assert not np.array_equal(noisy[0].xyxy, other[0].xyxy)
    for n, f in zip(noisy, frames, strict=True):
        assert np.all(n.xyxy[:, 2:] >= n.xyxy[:, :2] + 1.0)  # the 2-px box stays a box
        assert np.all(np.abs(n.confidence - f.confidence) <= 0.02 + 1e-6)
        assert np.all(n.confidence <= 1.0)
        assert np.array_equal(n.class_id, f.class_id)


@pytest.mark.e2e
def test_a_run_on_the_truck_clip_prints_its_line_for_every_repeat(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--rates", "5", "--trackers", "ours", "--repeats", "2",
            "--clips", "tjunction_pole_cars_truck.mp4", "--cache", str(tmp_path)]  # fmt: skip
    assert bench_count_stability.main(argv) == 0
    out = capsys.readouterr().out
    row = next(r for r in out.splitlines() if "tjunction-truck-count" in r)
    assert row.split()[-1] == "(2/2)"  # the lorry, hand count 1, counted on both repeats
    assert "ours 2/2" in out
