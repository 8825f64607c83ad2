"""Ultralytics' ByteTrack and BoT-SORT behind the engine's tracker interface, for benchmarks.

ultralytics builds its trackers from a YAML file into an ``IterableSimpleNamespace``
(``ultralytics/trackers/track.py``); here the same namespace is built from the library's
own default files (``cfg/trackers/bytetrack.yaml`` and ``botsort.yaml``), so the peers run
with their published settings. Two changes, both documented in the benchmark: BoT-SORT's
global motion compensation is off (``gmc_method = "none"``: the cameras are fixed and the
benchmark feeds cached detections, not images), and ``track_buffer`` (frames a lost track
is kept) is scaled to the sampling rate so that it stays the library's 1 s at 30 fps.

Both trackers take every detection down to their ``track_low_thresh`` (0.1): the second,
low-score association stage is what ByteTrack is about.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from atcs.metrics.tracking import TrackedFrame
from atcs.types import Detections, Image, TrackId

PEERS = ("bytetrack", "botsort")


class _Boxes:
    """The slice of ultralytics' ``Boxes`` the trackers read: conf, cls, xywh, xyxy, masks."""

    def __init__(self, xyxy: np.ndarray, conf: np.ndarray, cls: np.ndarray) -> None:
        self.xyxy = xyxy
        self.conf = conf
        self.cls = cls
        centre = (xyxy[:, :2] + xyxy[:, 2:]) / 2.0
        self.xywh = np.concatenate([centre, xyxy[:, 2:] - xyxy[:, :2]], axis=1)

    def __len__(self) -> int:
        return len(self.conf)

    def __getitem__(self, mask: Any) -> _Boxes:
        return _Boxes(self.xyxy[mask], self.conf[mask], self.cls[mask])


def peer_config(name: str, fps: float) -> Any:
    """The library's default namespace for tracker ``name`` at ``fps`` frames per second."""
    import ultralytics
    from ultralytics.utils import YAML, IterableSimpleNamespace

    path = Path(ultralytics.__file__).parent / "cfg" / "trackers" / f"{name}.yaml"
    cfg = IterableSimpleNamespace(**YAML.load(path))  # type: ignore[no-untyped-call]
    cfg.track_buffer = max(1, round(cfg.track_buffer * fps / 30.0))
    if name == "botsort":
        cfg.gmc_method = "none"
        cfg.with_reid = False
    return cfg


class PeerTracker:
    """One ultralytics tracker (``bytetrack`` or ``botsort``) as a :class:`FrameTracker`.

    Detections the peer leaves without a confirmed track get a fresh id of their own (a
    one-frame track), so they are measured but never counted on a line.
    """

    def __init__(self, name: str, fps: float) -> None:
        from ultralytics.trackers.bot_sort import BOTSORT
        from ultralytics.trackers.byte_tracker import BYTETracker

        if name not in PEERS:
            raise ValueError(f"unknown peer tracker {name!r}; known: {', '.join(PEERS)}")
        cfg = peer_config(name, fps)
        self._tracker = (
            BYTETracker(cfg)  # type: ignore[no-untyped-call]
            if name == "bytetrack"
            else BOTSORT(cfg)
        )
        self._live: set[int] = set()
        self._spare = -1

    def __len__(self) -> int:
        return len(self._live)

    def update(
        self, t_s: float, detections: Detections, image: Image | None = None
    ) -> TrackedFrame:
        """Feed one frame to the peer; ``t_s`` and ``image`` are unused (see the module)."""
        boxes = _Boxes(
            detections.xyxy.astype(np.float32),
            detections.confidence.astype(np.float32),
            detections.class_id.astype(np.float32),
        )
        out = self._tracker.update(boxes)
        ids = np.zeros(len(detections), dtype=np.int64)
        for row in np.asarray(out).reshape(-1, 8):
            ids[int(row[7])] = int(row[4])
        for i in np.flatnonzero(ids == 0):
            ids[i] = self._spare
            self._spare -= 1
        alive = {
            int(t.track_id) for t in (*self._tracker.tracked_stracks, *self._tracker.lost_stracks)
        }
        removed = tuple(TrackId(t) for t in sorted(self._live - alive))
        self._live = alive
        return TrackedFrame(
            detections.with_tracker_ids(ids),
            np.full(len(detections), np.nan, dtype=np.float32),
            removed,
        )
