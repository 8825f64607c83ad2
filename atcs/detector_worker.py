"""The detector worker: the latest frames of the cameras, streamed through the detector."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Iterator
from datetime import datetime

from atcs.camera_tiles import CameraTiles
from atcs.crop_check import CameraCrops, CropJob, job_image, job_region
from atcs.sources import CameraGroup
from atcs.types import Detections, Frame
from detectors.base import CroppingDetector, Detector

log = logging.getLogger(__name__)

FOLLOW_S = 0.05
"""How long the stream waits for a next frame before collecting what is in flight, s."""


class DetectorWorker(threading.Thread):
    """Takes the latest frames of the cameras, detects them, queues the results.

    ``busy_s``: wall time spent detecting (waits for the next frame left out), s.
    """

    def __init__(
        self,
        cameras: CameraGroup,
        detector: Detector,
        batch_max_frames: int,
        out: queue.Queue[tuple[Frame, Detections]],
        stop: threading.Event,
        *,
        crops: CameraCrops | None = None,
        tiles: CameraTiles | None = None,
    ) -> None:
        super().__init__(name="atcs-detector", daemon=True)
        self._crops = crops
        self._tiles = tiles
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
        self._waited_s = 0.0
        self._mark = 0.0
        self._lock = threading.Lock()
        self._in_flight: dict[str, deque[datetime]] = {}

    def in_flight(self) -> dict[str, datetime]:
        """Capture time (UTC) of the oldest frame per camera taken but not yet queued."""
        with self._lock:
            return {camera: times[0] for camera, times in self._in_flight.items() if times}

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

    def _taken(self, frames: list[Frame]) -> None:
        with self._lock:
            for f in frames:
                self._in_flight.setdefault(f.camera_id, deque()).append(f.captured_at)

    def _items(self, first: list[Frame]) -> Iterator[CropJob]:
        """Yield the frames to detect while the cameras keep giving them without a pause.

        Each frame is one item (in its camera's accepted crop, or whole); a frame of a
        camera whose crop check is running is a second item right after it, in the crop.
        The stream ends once no frame has come for ``FOLLOW_S``: the requests still in
        flight are then collected and the worker waits for the next frame.
        """
        frames = first
        while frames:
            self._taken(frames)
            for frame in sorted(frames, key=self._input_shape):
                if self._tiles is not None and frame.camera_id in self._tiles:
                    self._deliver(frame, self._tiles.detect(frame))
                    continue
                if self._crops is None:
                    yield CropJob(frame, None, False)
                else:
                    yield from self._crops.jobs(frame)
            if self._stop_event.is_set():
                return
            waited = time.perf_counter()
            frames = self._cameras.next_batch(self._batch, timeout_s=FOLLOW_S)
            self._waited_s += time.perf_counter() - waited

    def _input_shape(self, frame: Frame) -> tuple[int, int]:
        """Return the model input size ``frame`` is detected at, (h, w) px.

        Frames of one size can share a request, so a batch is handed over sorted by it.
        """
        detector, crops = self._detector, self._crops
        if crops is None or not isinstance(detector, CroppingDetector):
            return (0, 0)
        placement = detector.placement(frame.height_px, frame.width_px, crops.region(frame))
        return (0, 0) if placement is None else placement.input_shape

    def _count_busy(self) -> None:
        """Add the wall time since the last count, less the waits for frames, to ``busy_s``."""
        now = time.perf_counter()
        self.busy_s += max(0.0, now - self._mark - self._waited_s)
        self._mark, self._waited_s = now, 0.0
        self.cpu_s = time.thread_time()

    def _done(self, item: CropJob, found: Detections, whole: list[Detections]) -> None:
        if item.check:
            if self._crops is not None and whole and item.region is not None:
                self._crops.check(item.frame, whole[0], found, item.region)
            return
        self._deliver(item.frame, found)
        whole[:] = [found]

    def _deliver(self, frame: Frame, found: Detections) -> None:
        self.frames += 1
        self._count_busy()
        self._put((frame, found))
        with self._lock:
            times = self._in_flight.get(frame.camera_id)
            if times:
                times.popleft()
                if not times:
                    del self._in_flight[frame.camera_id]

    def run(self) -> None:
        """Detect until the stop event is set; failures are logged and retried.

        Frames are streamed through the detector (``detect_stream``): while the cameras
        keep giving frames, several inference requests stay in flight across the camera
        group's batches instead of draining after each one.
        """
        while not self._stop_event.is_set():
            first = self._cameras.next_batch(self._batch, timeout_s=0.5)
            if not first:
                continue
            self._mark = time.perf_counter()
            self._waited_s = 0.0
            whole: list[Detections] = []  # the last frame's own detections, for its check
            try:
                stream = self._detector.detect_stream(self._items(first), job_image, job_region)
                for item, found in stream:
                    self._done(item, found, whole)
            except Exception as exc:  # the thread's loop boundary: log, pause, go on
                self.failures += 1
                log.error("detector failed: %s", exc)
                self._stop_event.wait(1.0)
            self._count_busy()
            with self._lock:
                self._in_flight.clear()
