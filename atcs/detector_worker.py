"""The detector worker: the latest frames of the cameras, detected in batches."""

from __future__ import annotations

import logging
import queue
import threading
import time
from datetime import datetime

from atcs.crop_check import CameraCrops
from atcs.sources import CameraGroup
from atcs.types import Detections, Frame
from detectors.base import Detector

log = logging.getLogger(__name__)


class DetectorWorker(threading.Thread):
    """Takes the latest frames of the cameras, detects in one batch, queues the results."""

    def __init__(
        self,
        cameras: CameraGroup,
        detector: Detector,
        batch_max_frames: int,
        out: queue.Queue[tuple[Frame, Detections]],
        stop: threading.Event,
        *,
        crops: CameraCrops | None = None,
    ) -> None:
        super().__init__(name="atcs-detector", daemon=True)
        self._crops = crops
        self._cameras = cameras
        self._detector = detector
        self._batch = batch_max_frames
        self._out = out
        self._stop_event = stop
        self.frames = 0
        self.dropped = 0
        self.failures = 0
        self.busy_s = 0.0
        self.cpu_s = 0.0
        self._lock = threading.Lock()
        self._in_flight: dict[str, datetime] = {}

    def in_flight(self) -> dict[str, datetime]:
        """Capture time (UTC) of the oldest frame per camera taken but not yet queued."""
        with self._lock:
            return dict(self._in_flight)

    def _put(self, item: tuple[Frame, Detections]) -> None:
        while True:
            try:
                self._out.put_nowait(item)
                return
            except queue.Full:
                try:
                    self._out.get_nowait()
                    self.dropped += 1
                except queue.Empty:
                    pass

    def _detect(self, frames: list[Frame]) -> list[Detections]:
        """Detect in ``frames``, cropped where accepted; check the crops still undecided."""
        crops = self._crops
        images = [f.image for f in frames]
        if crops is None:
            return self._detector.detect(images)
        results = self._detector.detect(images, [crops.region(f) for f in frames])
        checks = [(f, found, box) for f, found in zip(frames, results, strict=True)
                  if (box := crops.to_check(f)) is not None]  # fmt: skip
        if checks:
            cropped = self._detector.detect(
                [f.image for f, _, _ in checks], [box for _, _, box in checks]
            )
            for (frame, whole, _), crop in zip(checks, cropped, strict=True):
                crops.check(frame, whole, crop)
        return results

    def run(self) -> None:
        """Detect until the stop event is set; failures are logged and retried."""
        while not self._stop_event.is_set():
            frames = self._cameras.next_batch(self._batch, timeout_s=0.5)
            if not frames:
                continue
            with self._lock:
                for f in frames:
                    old = self._in_flight.get(f.camera_id)
                    if old is None or f.captured_at < old:
                        self._in_flight[f.camera_id] = f.captured_at
            started = time.perf_counter()
            try:
                results = self._detect(frames)
            except Exception as exc:  # the thread's loop boundary: log, pause, go on
                self.failures += 1
                log.error("detector failed on %d frame(s): %s", len(frames), exc)
                results = []
                self._stop_event.wait(1.0)
            self.busy_s += time.perf_counter() - started
            self.cpu_s = time.thread_time()
            for frame, detections in zip(frames, results, strict=False):
                self.frames += 1
                self._put((frame, detections))
            with self._lock:
                self._in_flight.clear()
