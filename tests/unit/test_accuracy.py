"""Scoring detections against labelled boxes (benchmarks/accuracy.py), with exact numbers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from atcs.errors import DataError
from atcs.types import Detections, VehicleClass
from benchmarks.accuracy import ClassScore, Scorer, average_precision
from benchmarks.bench_accuracy import far_field, meets_targets
from benchmarks.labelled_frames import LabelledBox, LabelledFrame, load_labels
from detectors.crop import PixelBox

CAR, MOTO = VehicleClass.CAR, VehicleClass.MOTORCYCLE


def _frame(*boxes: LabelledBox) -> LabelledFrame:
    return LabelledFrame("clip.mp4", 0, 0.0, 200, 100, "0" * 64, boxes)


def _dets(rows: list[tuple[float, float, float, float, float, VehicleClass]]) -> Detections:
    return Detections(
        xyxy=np.array([r[:4] for r in rows], np.float32).reshape(-1, 4),
        confidence=np.array([r[4] for r in rows], np.float32),
        class_id=np.array([int(r[5]) for r in rows], np.int64),
    )


def test_hits_false_alarms_and_unscored_boxes() -> None:
    frame = _frame(
        LabelledBox(10, 10, 30, 50, MOTO, ignore=False),
        LabelledBox(60, 10, 80, 50, MOTO, ignore=False),
        LabelledBox(100, 0, 200, 40, CAR, ignore=True),  # a region not scored
        LabelledBox(100, 50, 160, 90, CAR, ignore=False),
    )
    found = _dets([
        (11, 10, 31, 50, 0.9, MOTO),  # hit
        (12, 11, 30, 49, 0.8, MOTO),  # the same motorcycle again: a false alarm
        (120, 5, 140, 30, 0.7, MOTO),  # on the region not scored: ignored
        (100, 50, 160, 90, 0.6, MOTO),  # the car, as a motorcycle: a false alarm
        (100, 50, 160, 90, 0.2, CAR),  # the car, below the 0.25 threshold
    ])  # fmt: skip
    scorer = Scorer([CAR, MOTO])
    scorer.add(frame, found)
    car, moto = scorer.scores(0.25)
    assert (moto.labelled, moto.found, moto.false) == (2, 1, 2)
    assert moto.recall == 0.5
    assert moto.precision == pytest.approx(1 / 3)
    assert (car.labelled, car.found, car.false) == (1, 0, 0)
    assert car.ap50 == pytest.approx(1.0)  # the car is the only car detection, below 0.25
    # precision 1, 1/2, 1/3 at recall 1/2: AP = 1/2
    assert moto.ap50 == pytest.approx(0.5)
    # three scored boxes 40 px tall; the car's match (0.2) is below the threshold
    assert scorer.recall_by_height(0.25, [0, 32, 64]) == [(0, 32, 0, 0), (32, 64, 3, 1)]
    assert scorer.recall_by_height(0.1, [0, 32, 64])[1] == (32, 64, 3, 2)


def test_scope_keeps_only_anchors_inside() -> None:
    frame = _frame(
        LabelledBox(10, 10, 30, 50, MOTO, ignore=False),  # anchor (20, 50): in scope
        LabelledBox(10, 60, 30, 95, MOTO, ignore=False),  # anchor (20, 95): out of scope
    )
    found = _dets([(10, 60, 30, 95, 0.9, MOTO), (150, 80, 170, 99, 0.9, MOTO)])

    def upper(points: np.ndarray) -> np.ndarray:
        return np.asarray(points[:, 1] <= 60)

    scorer = Scorer([MOTO])
    scorer.add(frame, found, upper)
    (moto,) = scorer.scores(0.25)
    assert (moto.labelled, moto.found, moto.false) == (1, 0, 0)  # both detections outside


def test_average_precision_all_points() -> None:
    conf = np.array([0.9, 0.8, 0.7, 0.6])
    hits = np.array([True, False, True, False])
    # recall 1/3 at precision 1, 2/3 at 2/3: AP = 1/3 + 1/3 * 2/3
    assert average_precision(conf, hits, 3) == pytest.approx(1 / 3 + 2 / 9)
    assert average_precision(conf[:0], hits[:0], 3) == 0.0
    assert np.isnan(average_precision(conf, hits, 0))


def test_a_broken_label_file_is_one_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "boxes.coco.json"
    bad.write_text("{", encoding="utf-8")
    with pytest.raises(DataError, match="cannot be read"):
        load_labels(bad)
    doc = {
        "clips": {"a.mp4": {"sha256": "0"}},
        "images": [{"id": 1, "clip": "a.mp4", "frame_index": 0, "timestamp_s": 0,
                    "width": 10, "height": 10, "frame_sha256": "0"}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1]}],
    }  # fmt: skip
    bad.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(DataError, match="unknown category 1"):
        load_labels(bad)


def test_far_field_is_the_upper_half_of_the_measured_region() -> None:
    far = far_field(PixelBox(0.0, 100.0, 960.0, 540.0), 960, 540)
    assert (far.x0, far.y0, far.x1, far.y1) == (0.0, 100.0, 960.0, 320.0)
    whole = far_field(None, 1280, 720)
    assert (whole.y0, whole.y1) == (0.0, 360.0)


def test_targets_need_every_labelled_class_and_no_false_unlabelled_one() -> None:
    good_moto = ClassScore(MOTO, labelled=10, found=9, false=1, ap50=0.9)
    poor_car = ClassScore(CAR, labelled=20, found=18, false=0, ap50=0.9)  # recall 0.90 < 0.95
    absent_car = ClassScore(CAR, labelled=0, found=0, false=0, ap50=float("nan"))
    assert meets_targets([good_moto, absent_car])
    # no car labelled, but three reported: false alarms in the density, precision 0
    unlabelled_car = ClassScore(CAR, labelled=0, found=0, false=3, ap50=float("nan"))
    assert not meets_targets([good_moto, unlabelled_car])
    assert not meets_targets([good_moto, poor_car])
    assert not meets_targets([ClassScore(MOTO, labelled=10, found=9, false=2, ap50=0.9)])
