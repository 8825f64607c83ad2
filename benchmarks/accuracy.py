"""Detection accuracy against labelled frames: per class precision, recall and AP50.

Matching follows PASCAL VOC / COCO at IoU 0.5: per frame and class, detections are taken best
confidence first and each is matched to the unmatched labelled box of its class it overlaps
most (IoU >= 0.5): a true positive; otherwise a false positive, unless it lies on something
that is not scored (see below). AP50 is the area under the precision envelope over recall
(VOC all points), pooled over every frame.

A *scope* limits scoring to part of the image, e.g. a camera's segments: a box belongs to it
when its anchor (bottom-centre, the point the engine measures) lies inside. Not scored, so
neither a hit nor a false alarm: labelled ``iscrowd`` boxes and regions (a detection with
half its area on one), and labelled boxes of the class whose anchor lies outside the scope
(a detection matching one). Pure numpy, no model.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import pairwise

import numpy as np
import numpy.typing as npt

from atcs.types import Detections, VehicleClass

from .labelled_frames import LabelledBox, LabelledFrame

MATCH_IOU = 0.5
IGNORE_SHARE = 0.5
"""A detection with at least this share of its area on an ``iscrowd`` box is not scored."""

Scope = Callable[[npt.NDArray[np.float64]], npt.NDArray[np.bool_]]
"""Given (N, 2) anchor points in image pixels, tell which lie in the scored part."""


def whole_frame(points: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]:
    """The scope of the whole image: every anchor counts."""
    return np.ones(len(points), dtype=bool)


def anchors(xyxy: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Bottom-centre points (N, 2) of boxes (N, 4)."""
    return np.stack([(xyxy[:, 0] + xyxy[:, 2]) / 2, xyxy[:, 3]], axis=1)


def iou_matrix(a: npt.NDArray[np.float64], b: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """IoU of every box of ``a`` (N, 4) with every box of ``b`` (M, 4): (N, M)."""
    inter = _intersection(a, b)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    result: npt.NDArray[np.float64] = np.where(
        union > 0, inter / np.where(union > 0, union, 1.0), 0.0
    )
    return result


def _intersection(
    a: npt.NDArray[np.float64], b: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    w = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    h = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    result: npt.NDArray[np.float64] = np.maximum(w, 0.0) * np.maximum(h, 0.0)
    return result


def _boxes(boxes: Iterable[LabelledBox]) -> npt.NDArray[np.float64]:
    return np.array([(b.x0, b.y0, b.x1, b.y1) for b in boxes], dtype=np.float64).reshape(-1, 4)


@dataclass(slots=True)
class ClassTally:
    """Scored detections of one class over many frames: (confidence, hit) and label count."""

    labelled: int = 0
    confidences: list[float] = field(default_factory=list)
    hits: list[bool] = field(default_factory=list)
    sizes: list[tuple[float, float]] = field(default_factory=list)
    """Per labelled box in scope: (height in image px, confidence of its match or 0)."""


@dataclass(frozen=True, slots=True)
class ClassScore:
    """One class's result: labelled boxes, hits and false alarms at ``threshold``, AP50."""

    vehicle_class: VehicleClass
    labelled: int
    found: int
    false: int
    ap50: float

    @property
    def recall(self) -> float:
        """Share of labelled boxes found (1.0 when none is labelled)."""
        return self.found / self.labelled if self.labelled else 1.0

    @property
    def precision(self) -> float:
        """Share of scored detections that are hits (1.0 when there are none)."""
        total = self.found + self.false
        return self.found / total if total else 1.0


class Scorer:
    """Accumulates detections against labels, frame by frame, per class."""

    def __init__(self, classes: Iterable[VehicleClass] = tuple(VehicleClass)) -> None:
        self.tallies = {c: ClassTally() for c in classes}

    def add(self, frame: LabelledFrame, found: Detections, scope: Scope = whole_frame) -> None:
        """Score one frame's detections (image pixels) inside ``scope``."""
        crowd = _boxes(b for b in frame.boxes if b.ignore)
        for vehicle_class, tally in self.tallies.items():
            labels = [b for b in frame.boxes if not b.ignore and b.vehicle_class is vehicle_class]
            truth = _boxes(labels)
            in_scope = scope(anchors(truth)) if len(truth) else np.zeros(0, bool)
            tally.labelled += int(in_scope.sum())
            mine = found.class_id == int(vehicle_class)
            xyxy = found.xyxy[mine].astype(np.float64)
            conf = found.confidence[mine].astype(np.float64)
            keep = scope(anchors(xyxy)) if len(xyxy) else np.zeros(0, bool)
            xyxy, conf = xyxy[keep], conf[keep]
            order = np.argsort(-conf, kind="stable")
            xyxy, conf = xyxy[order], conf[order]
            ious = iou_matrix(xyxy, truth) if len(truth) else np.zeros((len(xyxy), 0))
            on_crowd = np.zeros(len(xyxy), bool)
            if len(crowd) and len(xyxy):
                area = (xyxy[:, 2] - xyxy[:, 0]) * (xyxy[:, 3] - xyxy[:, 1])
                share = _intersection(xyxy, crowd).max(axis=1) / np.maximum(area, 1e-9)
                on_crowd = share >= IGNORE_SHARE
            taken = np.zeros(len(truth), bool)
            matched = np.zeros(len(truth))
            for k in range(len(xyxy)):
                row = np.where(taken, -1.0, ious[k]) if len(truth) else ious[k]
                best = int(np.argmax(row)) if len(truth) else -1
                if best >= 0 and row[best] >= MATCH_IOU:
                    taken[best] = True
                    matched[best] = conf[k]
                    if in_scope[best]:
                        tally.confidences.append(float(conf[k]))
                        tally.hits.append(True)
                    continue  # a hit on a label outside the scope is not scored
                if on_crowd[k]:
                    continue
                tally.confidences.append(float(conf[k]))
                tally.hits.append(False)
            heights = truth[:, 3] - truth[:, 1]
            tally.sizes += [
                (float(heights[n]), float(matched[n])) for n in np.flatnonzero(in_scope)
            ]

    def recall_by_height(
        self, threshold: float, edges: Sequence[float]
    ) -> list[tuple[float, float, int, int]]:
        """Per height bin [lo, hi) in image px, all classes: (lo, hi, labelled, found)."""
        sizes = [size for tally in self.tallies.values() for size in tally.sizes]
        out = []
        for lo, hi in pairwise(edges):
            inside = [conf for height, conf in sizes if lo <= height < hi]
            out.append((lo, hi, len(inside), sum(conf >= threshold for conf in inside)))
        return out

    def scores(self, threshold: float) -> list[ClassScore]:
        """Per class: hits and false alarms at confidence >= ``threshold``, and AP50."""
        out = []
        for vehicle_class, tally in self.tallies.items():
            conf = np.asarray(tally.confidences, dtype=np.float64)
            hits = np.asarray(tally.hits, dtype=bool)
            at = conf >= threshold
            out.append(
                ClassScore(
                    vehicle_class=vehicle_class,
                    labelled=tally.labelled,
                    found=int(hits[at].sum()),
                    false=int((~hits[at]).sum()),
                    ap50=average_precision(conf, hits, tally.labelled),
                )
            )
        return out


def average_precision(
    confidences: npt.NDArray[np.float64], hits: npt.NDArray[np.bool_], labelled: int
) -> float:
    """VOC all-point AP: area under the precision envelope over recall (nan with no labels)."""
    if labelled == 0:
        return float("nan")
    if not len(confidences):
        return 0.0
    order = np.argsort(-confidences, kind="stable")
    tp = np.cumsum(hits[order])
    fp = np.cumsum(~hits[order])
    recall = np.concatenate([[0.0], tp / labelled, [tp[-1] / labelled]])
    precision = np.concatenate([[1.0], tp / (tp + fp), [0.0]])
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    return float(np.sum((recall[1:] - recall[:-1]) * envelope[1:]))
