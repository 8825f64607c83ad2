"""All the cameras of a node: start, stop, status, and batches of frames across cameras."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable

from atcs.config import CameraConfig
from atcs.errors import SourceError
from atcs.sources.reader import DEFAULT_QUEUE_SIZE, CameraReader
from atcs.sources.redact import redact_text
from atcs.sources.status import StatusCallback
from atcs.types import CameraId, CameraState, CameraStatus, Frame

logger = logging.getLogger(__name__)


class CameraGroup:
    """One :class:`CameraReader` per enabled camera, sharing a stop event and a condition.

    A camera whose source cannot even be interpreted (an unsupported URL scheme) is
    reported OFFLINE with the reason and the others run; disabled cameras are OFFLINE.
    :meth:`next_batch` waits for frames from any camera, for a detector that batches.
    """

    def __init__(
        self,
        cameras: Iterable[CameraConfig],
        *,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        stop_event: threading.Event | None = None,
        on_status: StatusCallback | None = None,
    ) -> None:
        self.stop_event = stop_event if stop_event is not None else threading.Event()
        self._cond = threading.Condition()
        self.readers: dict[CameraId, CameraReader] = {}
        self._inactive: dict[CameraId, CameraStatus] = {}
        self._order: list[CameraId] = []  # counting cameras first: they are served first
        for cam in cameras:
            cam_id = CameraId(cam.id)
            if not cam.enabled:
                self._inactive[cam_id] = CameraStatus(
                    cam_id, CameraState.OFFLINE, 0.0, None, "disabled"
                )
                continue
            try:
                reader = CameraReader(
                    cam,
                    queue_size=queue_size,
                    stop_event=self.stop_event,
                    on_status=on_status,
                    condition=self._cond,
                )
            except SourceError as exc:
                detail = redact_text(str(exc))
                logger.error("camera %s: cannot be used: %s", cam_id, detail)
                self._inactive[cam_id] = CameraStatus(
                    cam_id, CameraState.OFFLINE, 0.0, None, detail
                )
                continue
            self.readers[cam_id] = reader
            self._order.append(cam_id)
        self._counting = sum(1 for c in self._order if self.readers[c].camera.profile == "counting")
        self._order.sort(key=lambda c: self.readers[c].camera.profile != "counting")

    def start(self) -> None:
        """Start every reader."""
        for reader in self.readers.values():
            reader.start()

    def stop(self) -> None:
        """Set the shared stop event and wake a consumer waiting in :meth:`next_batch`."""
        self.stop_event.set()
        with self._cond:
            self._cond.notify_all()

    def join(self, timeout_s: float | None = None) -> bool:
        """Wait for every reader's thread, ``timeout_s`` (s) in all; True if all ended."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        ok = True
        for reader in self.readers.values():
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            ok = reader.join(remaining) and ok
        if not ok:
            alive = [str(cid) for cid, r in self.readers.items() if r.running]
            logger.warning("camera threads still running after the stop: %s", ", ".join(alive))
        return ok

    def statuses(self) -> list[CameraStatus]:
        """Status of every configured camera, in configuration order of the readers first."""
        return [r.status() for r in self.readers.values()] + list(self._inactive.values())

    def _ready(self) -> bool:
        return any(len(r.queue) for r in self.readers.values())

    def next_batch(self, max_frames: int, timeout_s: float) -> list[Frame]:
        """Up to ``max_frames`` waiting frames, one per camera per round, oldest first.

        Counting cameras' frames are taken before density cameras' (the CPU budget serves
        them first); within each profile, each round takes one frame from every camera
        with one waiting, the cameras whose waiting frame was captured first first, so
        that no camera's frame waits while younger ones are served. Waits up to
        ``timeout_s`` (s) for the first frame; returns [] on timeout or stop.
        """
        if not self._order or max_frames < 1:
            return []
        with self._cond:
            self._cond.wait_for(lambda: self.stop_event.is_set() or self._ready(), timeout_s)
            batch: list[Frame] = []
            counting, density = self._order[: self._counting], self._order[self._counting :]
            for group in (counting, density):
                self._oldest_first(group, max_frames, batch)
            return batch

    def _oldest_first(self, group: list[CameraId], max_frames: int, batch: list[Frame]) -> None:
        while len(batch) < max_frames:
            waiting = []
            for cam_id in group:
                captured_at = self.readers[cam_id].queue.oldest_captured_at()
                if captured_at is not None:
                    waiting.append((captured_at, cam_id))
            waiting.sort()
            taken = 0
            for _, cam_id in waiting[: max_frames - len(batch)]:
                frame = self.readers[cam_id].queue.get_nowait()
                if frame is not None:
                    batch.append(frame)
                    taken += 1
            if not taken:
                return
