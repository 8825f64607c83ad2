"""The engine's detector worker: the latest frames of the cameras, detected in batches."""

from __future__ import annotations

import logging
import queue
import threading
from datetime import datetime

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
    ) -> None:
        super().__init__(name="atcs-detector", daemon=True)
        self._cameras = cameras
        self._detector = detector
        self._batch = batch_max_frames
        self._out = out
        self._stop_event = stop
        self.frames = 0
        self.dropped = 0
        self.failures = 0
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
            try:
                results = self._detector.detect([f.image for f in frames])
            except Exception as exc:  # the thread's loop boundary: log, pause, go on
                self.failures += 1
                log.error("detector failed on %d frame(s): %s", len(frames), exc)
                results = []
                self._stop_event.wait(1.0)
            for frame, detections in zip(frames, results, strict=False):
                self.frames += 1
                self._put((frame, detections))
            with self._lock:
                self._in_flight.clear()
