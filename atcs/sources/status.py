"""Per-camera health: state machine, measured frame rate, reconnect backoff."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from atcs.sources.redact import redact_text
from atcs.types import CameraId, CameraState, CameraStatus

logger = logging.getLogger(__name__)

StatusCallback = Callable[[CameraStatus], None]
"""Called with the new status on every state change (from the camera's thread)."""

FPS_WINDOW_S = 5.0
"""The measured frame rate is taken over the frames of the last this many seconds."""

_FPS_SAMPLES = 256


class Backoff:
    """Reconnect delays: ``initial_s`` doubling up to ``max_s`` (s); :meth:`reset` on success."""

    def __init__(self, initial_s: float, max_s: float) -> None:
        self.initial_s = initial_s
        self.max_s = max(max_s, initial_s)
        self._next_s = initial_s
        self.last_delay_s = 0.0
        self.failures = 0

    def next_delay(self) -> float:
        """Return the delay before the next attempt, s, and double it up to ``max_s``."""
        delay = self._next_s
        self.last_delay_s = delay
        self._next_s = min(delay * 2.0, self.max_s)
        self.failures += 1
        return delay

    @property
    def exhausted(self) -> bool:
        """True once the delay handed out has reached ``max_s`` (down for a while)."""
        return self.failures > 0 and self.last_delay_s >= self.max_s

    def reset(self) -> None:
        """Start again from ``initial_s`` (after a frame arrived)."""
        self._next_s = self.initial_s
        self.last_delay_s = 0.0
        self.failures = 0


@dataclass(frozen=True, slots=True)
class ReaderStats:
    """Counters of one camera reader since it started."""

    camera_id: CameraId
    frames_received: int
    frames_delivered: int
    frames_dropped: int
    frames_corrupt: int
    reconnects: int
    cpu_s: float = 0.0
    """CPU time of the camera's thread so far (reading, decoding, conversion), s."""
    keyframes_skipped: int = 0
    """Sampled keyframes not decoded: the camera's previous frame was still queued."""


class StatusTracker:
    """Thread-safe health of one camera; logs and reports each state change once.

    ``fps`` is the rate of frames received from the source over the last
    :data:`FPS_WINDOW_S` seconds (frames/s), sampled or not, and 0 unless STREAMING;
    ``last_frame_at`` is the time of the last frame handed to the queue. A camera still
    marked STREAMING that has received nothing for ``stall_timeout_s`` reads as STALLED
    even while its thread is blocked in a read.
    """

    def __init__(
        self,
        camera_id: CameraId,
        stall_timeout_s: float,
        on_status: StatusCallback | None = None,
    ) -> None:
        self.camera_id = camera_id
        self.stall_timeout_s = stall_timeout_s
        self._on_status = on_status
        self._lock = threading.Lock()
        self._state = CameraState.OFFLINE
        self._detail = "not started"
        self._last_frame_at: datetime | None = None
        self._last_grab_mono: float | None = None
        self._times: deque[float] = deque(maxlen=_FPS_SAMPLES)
        self.frames_received = 0
        self.frames_delivered = 0
        self.frames_corrupt = 0
        self.reconnects = 0
        self._corrupt_logged = False
        self._decode_mode: str | None = None
        self._gop_s: float | None = None

    @property
    def state(self) -> CameraState:
        """The state last set by the camera's thread."""
        with self._lock:
            return self._state

    def frame_grabbed(self, now_mono: float) -> None:
        """Record a frame arriving from the source (decoded or not); feeds fps and watchdog."""
        with self._lock:
            self.frames_received += 1
            self._last_grab_mono = now_mono
            self._times.append(now_mono)

    def frame_delivered(self, now: datetime) -> None:
        """Record a decoded frame handed to the queue; switch to STREAMING if not already."""
        with self._lock:
            self.frames_delivered += 1
            self._last_frame_at = now
            streaming = self._state is CameraState.STREAMING
        if not streaming:
            self.set_state(CameraState.STREAMING, "frames arriving")

    def set_decode(self, mode: str | None, gop_s: float | None) -> None:
        """Record which frames are decoded (``keyframes`` / ``full``) and the GOP (s)."""
        with self._lock:
            self._decode_mode = mode
            self._gop_s = None if gop_s is None else round(gop_s, 3)

    def count_reconnect(self) -> None:
        """Count one reconnect attempt."""
        with self._lock:
            self.reconnects += 1

    def frame_corrupt(self, detail: str) -> None:
        """Count an undecodable frame; log the first one after each state change."""
        with self._lock:
            self.frames_corrupt += 1
            first = not self._corrupt_logged
            self._corrupt_logged = True
            count = self.frames_corrupt
        if first:
            logger.warning(
                "camera %s: undecodable frame, skipped (%s); %d so far",
                self.camera_id,
                redact_text(detail),
                count,
            )
        else:
            logger.debug("camera %s: undecodable frame: %s", self.camera_id, redact_text(detail))

    def set_state(self, state: CameraState, detail: str, *, quiet: bool = False) -> None:
        """Set the state; on a change, log once and call the callback.

        A change is logged at INFO when the camera streams or ``quiet`` is set (starting,
        stopping), else at WARNING.
        """
        detail = redact_text(detail)
        with self._lock:
            changed = state is not self._state
            self._state = state
            self._detail = detail
            if changed:
                self._corrupt_logged = False
        if not changed:
            logger.debug("camera %s: still %s: %s", self.camera_id, state.value, detail)
            return
        level = logging.INFO if quiet or state is CameraState.STREAMING else logging.WARNING
        logger.log(level, "camera %s: %s (%s)", self.camera_id, state.value, detail)
        if self._on_status is not None:
            try:
                self._on_status(self.status())
            except Exception:  # a faulty callback must not stop the camera
                logger.exception("camera %s: status callback failed", self.camera_id)

    def status(self) -> CameraStatus:
        """Return the camera's status now."""
        now_mono = time.monotonic()
        with self._lock:
            state, detail = self._state, self._detail
            last_mono = self._last_grab_mono
            while self._times and now_mono - self._times[0] > FPS_WINDOW_S:
                self._times.popleft()
            times = list(self._times)
            last_at = self._last_frame_at
            decode_mode, gop_s = self._decode_mode, self._gop_s
        age = None if last_mono is None else now_mono - last_mono
        if state is CameraState.STREAMING and age is not None and age > self.stall_timeout_s:
            state, detail = CameraState.STALLED, f"no frame for {age:.1f} s"
        fps = 0.0
        if state is CameraState.STREAMING and len(times) >= 2 and times[-1] > times[0]:
            fps = (len(times) - 1) / (times[-1] - times[0])
        return CameraStatus(
            camera_id=self.camera_id,
            state=state,
            fps=round(fps, 2),
            last_frame_at=last_at,
            detail=detail,
            decode_mode=decode_mode,
            gop_s=gop_s,
        )


def utc_now() -> datetime:
    """Return the current time, aware UTC."""
    return datetime.now(UTC)
