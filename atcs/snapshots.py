"""The camera wall's images: the latest analysed frame per camera, annotated, as JPEG.

:meth:`Snapshotter.observe` is an engine frame observer: on the analysis thread it only
keeps a reference to the newest frame and its analysis per camera (one per camera, so
memory is bounded by the camera count) and counts frames, detections and lag. The
snapshot thread encodes at most one image per camera every ``interval_s``: it scales the
frame to ``width_px``, draws the segment polygons, counting lines and boxes
(:func:`atcs.annotate.annotate`) and encodes a JPEG. Encoding never runs on the analysis
thread, except on demand (:meth:`Snapshotter.demand`: an edge node encodes only the
images someone asks for, at most one per camera every ``interval_s``, in the asking
thread, and keeps frames only of the cameras asked for in the last ``WANTED_S``).

:class:`SnapshotSource` is what the dashboard reads: a :class:`Snapshotter` in one process,
:class:`atcs.roles.snapshots.RoomSnapshots` (images fetched from the edges) in the room.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol
from zoneinfo import ZoneInfo

import cv2
import numpy as np

from atcs.annotate import annotate
from atcs.config import AtcsConfig
from atcs.metrics import FrameAnalysis
from atcs.types import Detections, Frame

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One encoded image: camera, frame number, capture time (UTC), JPEG bytes, size (px)."""

    camera_id: str
    frame_seq: int
    captured_at: datetime
    jpeg: bytes
    width_px: int
    height_px: int
    detections: int


@dataclass(slots=True)
class CameraCounters:
    """Frames analysed and vehicles detected per camera, and the last frame's lag (s)."""

    frames: int = 0
    detections: int = 0
    lag_s: float = 0.0
    last_at: datetime | None = None


WANTED_S = 30.0
"""On demand, a camera's frames are kept this long (s) after its image was last asked for."""


class SnapshotSource(Protocol):
    """The camera wall's images as the dashboard reads them."""

    encoded_total: int
    failures_total: int

    @property
    def camera_ids(self) -> Sequence[str]:
        """The configured cameras, in configuration order."""
        ...

    def snapshot(self, camera_id: str) -> Snapshot | None:
        """Return the latest image of ``camera_id`` (None when there is none)."""
        ...

    def problem(self, camera_id: str) -> str:
        """Return why ``camera_id`` has no current image (empty: none to report)."""
        ...

    def counters(self) -> dict[str, CameraCounters]:
        """Return per-camera frame counters (empty where they are not known)."""
        ...

    def start(self) -> None:
        """Start any background work."""
        ...

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the background work."""
        ...


class Snapshotter:
    """Frame observer plus a thread that encodes annotated JPEGs (see the module docstring)."""

    def __init__(
        self,
        cfg: AtcsConfig,
        *,
        interval_s: float = 1.0,
        width_px: int = 960,
        jpeg_quality: int = 75,
    ) -> None:
        self._cfg = cfg
        self._interval_s = interval_s
        self._width_px = width_px
        self._quality = jpeg_quality
        self._lock = threading.Lock()
        self._camera_ids = [c.id for c in cfg.cameras]
        self._latest: dict[str, tuple[Frame, FrameAnalysis]] = {}
        self._encoded_at: dict[str, float] = {}
        self._snapshots: dict[str, Snapshot] = {}
        self._counters = {c: CameraCounters() for c in self._camera_ids}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._wanted: dict[str, float] | None = None
        """On demand: when each camera's image was last asked for (monotonic s)."""
        self._encoding = threading.Lock()
        self.encoded_total = 0
        self.failures_total = 0

    # Analysis thread ---------------------------------------------------------------------

    def observe(self, frame: Frame, analysis: FrameAnalysis) -> None:
        """Keep the newest frame of its camera and count it (returns at once)."""
        counters = self._counters.get(frame.camera_id)
        if counters is None:
            return
        now = datetime.now(UTC)
        with self._lock:
            wanted = self._wanted
            if wanted is None or time.monotonic() - wanted.get(frame.camera_id, -1e9) < WANTED_S:
                self._latest[frame.camera_id] = (frame, analysis)
            counters.frames += 1
            counters.detections += len(analysis.detections)
            counters.lag_s = max(0.0, (now - frame.captured_at).total_seconds())
            counters.last_at = now

    # Readers (any thread) ----------------------------------------------------------------

    def snapshot(self, camera_id: str) -> Snapshot | None:
        """Return the latest encoded image of ``camera_id`` (None before the first)."""
        with self._lock:
            return self._snapshots.get(camera_id)

    def problem(self, camera_id: str) -> str:
        """Nothing to report: the engine has the frames."""
        return ""

    def on_demand(self) -> None:
        """Encode only when asked (:meth:`demand`), with no thread; call before frames come."""
        with self._lock:
            self._wanted = {}

    def demand(self, camera_id: str) -> Snapshot | None:
        """Return ``camera_id``'s image, encoding its newest frame when the last is old enough.

        At most one encoding per camera every ``interval_s`` (in between, the cached image),
        one at a time; None while no frame of the camera was kept (the first ask starts
        keeping them).
        """
        now = time.monotonic()
        with self._lock:
            if self._wanted is not None:
                self._wanted[camera_id] = now
            cached = self._snapshots.get(camera_id)
            if now - self._encoded_at.get(camera_id, -1e9) < self._interval_s:
                return cached
            item = self._latest.pop(camera_id, None)
            if item is None:
                return cached
            self._encoded_at[camera_id] = now
        with self._encoding:
            try:
                snap = self.encode(*item)
            except Exception:  # one bad frame: log, keep the last image
                self.failures_total += 1
                log.exception("camera=%s: snapshot encoding failed", camera_id)
                return cached
        with self._lock:
            self._snapshots[camera_id] = snap
            self.encoded_total += 1
        return snap

    def counters(self) -> dict[str, CameraCounters]:
        """Return a copy of the per-camera counters."""
        with self._lock:
            return {
                c: CameraCounters(v.frames, v.detections, v.lag_s, v.last_at)
                for c, v in self._counters.items()
            }

    # The snapshot thread -----------------------------------------------------------------

    def start(self) -> None:
        """Start the encoding thread."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="atcs-snapshots", daemon=True)
            self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the encoding thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def _due(self) -> list[tuple[Frame, FrameAnalysis]]:
        now = time.monotonic()
        out = []
        with self._lock:
            for cam, item in list(self._latest.items()):
                if now - self._encoded_at.get(cam, -1e9) >= self._interval_s:
                    out.append(item)
                    self._encoded_at[cam] = now
                    del self._latest[cam]
        return out

    def _run(self) -> None:
        tick_s = min(0.2, self._interval_s / 2)
        while not self._stop.wait(tick_s):
            for frame, analysis in self._due():
                try:
                    snap = self.encode(frame, analysis)
                except Exception:  # the thread's loop boundary: one bad frame, log, go on
                    self.failures_total += 1
                    log.exception("camera=%s: snapshot encoding failed", frame.camera_id)
                    continue
                with self._lock:
                    self._snapshots[frame.camera_id] = snap
                    self.encoded_total += 1

    def encode(self, frame: Frame, analysis: FrameAnalysis) -> Snapshot:
        """Scale, annotate and JPEG-encode ``frame`` with its detections and geometry."""
        image: np.ndarray = frame.image
        scale = min(1.0, self._width_px / frame.width_px)
        if scale < 1.0:
            size = (round(frame.width_px * scale), round(frame.height_px * scale))
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        dets = analysis.detections
        scaled = Detections(
            (dets.xyxy * np.float32(scale)).astype(np.float32),
            dets.confidence,
            dets.class_id,
            dets.tracker_id,
        )
        counts = {str(s.segment_id): f"{s.vehicles}" for s in analysis.segments}
        cam = frame.camera_id
        local = frame.captured_at.astimezone(ZoneInfo(self._cfg.site.timezone))
        title = f"{cam} #{frame.seq} {local:%H:%M:%S} {local.tzname()}"  # WIB, WITA, WIT
        drawn = annotate(
            np.ascontiguousarray(image),
            self._cfg.segments_of(cam),
            self._cfg.lines_of(cam),
            scaled,
            segment_text=counts,
            title=title,
        )
        ok, buf = cv2.imencode(".jpg", drawn, [cv2.IMWRITE_JPEG_QUALITY, self._quality])
        if not ok:
            raise RuntimeError("OpenCV could not encode the JPEG")
        return Snapshot(
            cam, frame.seq, frame.captured_at, buf.tobytes(), int(drawn.shape[1]),
            int(drawn.shape[0]), len(dets),
        )  # fmt: skip

    @property
    def camera_ids(self) -> Sequence[str]:
        """The configured cameras, in configuration order."""
        return self._camera_ids
