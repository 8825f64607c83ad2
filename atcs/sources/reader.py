"""Live camera input: one thread per camera handing over the latest frames.

:class:`CameraReader` samples a camera at ``sample_fps`` into a bounded
:class:`FrameQueue` that drops the oldest frame, so a slow consumer always gets recent
frames and memory never grows. Recorded files play at their own frame rate when
``realtime`` (as a live feed) and loop when ``loop``. A failing or ending source is
reconnected with exponential backoff; a watchdog marks a camera STALLED when nothing
arrives for ``stall_timeout_s`` and forces a reconnect.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
import traceback
from collections.abc import Callable, Mapping

from atcs.config import CameraConfig
from atcs.errors import SourceError
from atcs.sources.av_grabber import (
    GOP_SLACK,
    SHORTEST_CAMERA_GOP_S,
    AvGrabber,
    DecodeMode,
    DecodePolicy,
)
from atcs.sources.frame_queue import FrameQueue
from atcs.sources.gop_memory import GopMemory
from atcs.sources.grabber import (
    CorruptFrameError,
    FolderGrabber,
    Grabber,
    StalledError,
)
from atcs.sources.http import HttpGrabber
from atcs.sources.kinds import SourceKind, resolve_kind
from atcs.sources.redact import redact_text, redact_url
from atcs.sources.status import Backoff, ReaderStats, StatusCallback, StatusTracker, utc_now
from atcs.types import CameraId, CameraState, CameraStatus, Frame

logger = logging.getLogger(__name__)

DEFAULT_QUEUE_SIZE = 2
"""Frames waiting per camera when the caller gives no size (ServiceConfig's default)."""


def make_grabber(
    source: str,
    kind: SourceKind,
    *,
    timeout_s: float,
    folder_fps: float = 1.0,
    decode: DecodePolicy = "full",
    max_gop_s: float = 1.0,
    options: Mapping[str, str] | None = None,
    on_skip: Callable[[], None] | None = None,
    start_mode: DecodeMode | None = None,
) -> Grabber:
    """Make a grabber for ``source`` of ``kind``; ``timeout_s`` bounds network reads (s).

    Video files and streams are read by :class:`AvGrabber` with the ``decode`` policy,
    ``max_gop_s``, FFmpeg ``options``, ``on_skip`` hook and ``start_mode`` described there.
    """
    if kind is SourceKind.FOLDER:
        return FolderGrabber(source, folder_fps)
    if kind in (SourceKind.MJPEG, SourceKind.SNAPSHOT):
        return HttpGrabber(source, kind, timeout_s=timeout_s)
    return AvGrabber(
        source, kind, timeout_s=timeout_s, policy=decode, max_gop_s=max_gop_s,
        options=options, on_skip=on_skip, start_mode=start_mode,
    )  # fmt: skip


class _Outcome(enum.Enum):
    STOPPED = "stopped"
    FINISHED = "finished"
    RESTART = "restart"
    STALLED = "stalled"
    FAILED = "failed"


class CameraReader:
    """Reads one camera on its own thread into a latest-frames queue.

    ``queue_size`` is ``ServiceConfig.frame_queue_size``; ``stop_event`` is shared by
    every part of the process (a private one is made when None); ``on_status`` is called
    from the camera's thread on every state change; ``condition`` lets several readers
    wake one consumer (see :class:`atcs.sources.group.CameraGroup`).

    For a recorded source with ``realtime = false`` frames are sampled by footage time
    (every ``1 / sample_fps`` s of the file) and the reader waits for room in the queue
    instead of dropping, so a consumer sees every sampled frame as fast as it can take
    them. Images of a folder are one sample each. ``captured_at`` is always the wall-clock
    time of reading; ``offset_s`` is the position in a recording.

    A live camera decoding keyframes only keeps one frame waiting: a sampled keyframe is
    not decoded while the camera's previous frame is still queued for the consumer (the
    packets go on being read, so the next keyframe is current); these are counted as
    ``keyframes_skipped``, apart from the frames dropped from a full queue.
    """

    def __init__(
        self,
        camera: CameraConfig,
        *,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        stop_event: threading.Event | None = None,
        on_status: StatusCallback | None = None,
        condition: threading.Condition | None = None,
    ) -> None:
        self.camera = camera
        self.camera_id = CameraId(camera.id)
        self.kind = resolve_kind(camera.source, camera.kind)
        self.source_shown = redact_url(camera.source)
        self.queue = FrameQueue(queue_size, condition)
        self.stop_event = stop_event if stop_event is not None else threading.Event()
        self._tracker = StatusTracker(self.camera_id, camera.stall_timeout_s, on_status)
        self._finished = threading.Event()
        self._gop = GopMemory(camera.decode)  # kept across loops and reconnects
        self._wall_sampler: _Sampler | None = None
        self._cpu_s = 0.0
        self._seq = 0
        self._skipped_keyframes = 0
        self._live = camera.realtime or not self.kind.is_recording
        self._thread = threading.Thread(
            target=self._run, name=f"atcs-camera-{camera.id}", daemon=True
        )

    # -- public API -------------------------------------------------------------------

    def start(self) -> None:
        """Start the camera's thread."""
        logger.info(
            "camera %s: starting (%s %s, %.3g fps sampled)",
            self.camera_id,
            self.kind.value,
            self.source_shown,
            self.camera.sample_fps,
        )
        self._thread.start()

    def stop(self) -> None:
        """Set the stop event (shared: this stops every reader that shares it)."""
        self.stop_event.set()

    def join(self, timeout_s: float | None = None) -> bool:
        """Wait up to ``timeout_s`` (s) for the thread to end; True when it has.

        A blocked network read may take up to the stall timeout to notice the stop.
        """
        if self._thread.ident is None:
            return True
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    @property
    def running(self) -> bool:
        """True while the camera's thread runs."""
        return self._thread.is_alive()

    @property
    def finished(self) -> bool:
        """True once a recording without ``loop`` has been read to its end."""
        return self._finished.is_set()

    def get(self, timeout_s: float | None = None) -> Frame | None:
        """Take the oldest waiting frame, waiting up to ``timeout_s`` (s); None if none."""
        return self.queue.get(timeout_s)

    def get_latest(self) -> Frame | None:
        """Take the newest waiting frame (older ones are dropped), or None."""
        return self.queue.get_latest()

    def status(self) -> CameraStatus:
        """Return the camera's status now (safe from any thread)."""
        return self._tracker.status()

    def stats(self) -> ReaderStats:
        """Frame and reconnect counters since start."""
        t = self._tracker
        return ReaderStats(
            camera_id=self.camera_id,
            frames_received=t.frames_received,
            frames_delivered=t.frames_delivered,
            frames_dropped=self.queue.dropped,
            keyframes_skipped=self._skipped_keyframes,
            frames_corrupt=t.frames_corrupt,
            reconnects=t.reconnects,
            cpu_s=self._cpu_s,
        )

    # -- the thread -------------------------------------------------------------------

    def _run(self) -> None:
        cfg = self.camera
        backoff = Backoff(cfg.reconnect_initial_s, cfg.reconnect_max_s)
        # stays OFFLINE until the first frame, so the first failure is a logged change
        self._tracker.set_state(CameraState.OFFLINE, f"connecting to {self.source_shown}")
        try:
            while not self.stop_event.is_set():
                outcome, detail = self._session(backoff)
                if outcome is _Outcome.STOPPED:
                    break
                if outcome is _Outcome.FINISHED:
                    self._finished.set()
                    self._tracker.set_state(CameraState.OFFLINE, detail)
                    return
                if outcome is _Outcome.RESTART:
                    logger.debug("camera %s: %s; playing it again", self.camera_id, detail)
                    continue
                self._tracker.count_reconnect()
                if outcome is _Outcome.STALLED:
                    self._tracker.set_state(CameraState.STALLED, f"{detail}; reconnecting")
                    continue
                delay = backoff.next_delay()
                state = CameraState.OFFLINE if backoff.exhausted else CameraState.RECONNECTING
                self._tracker.set_state(state, f"{detail}; next attempt in {delay:.3g} s")
                self.stop_event.wait(delay)
        finally:
            if not self._finished.is_set():
                self._tracker.set_state(CameraState.OFFLINE, "stopped", quiet=True)

    def _session(self, backoff: Backoff) -> tuple[_Outcome, str]:
        """Open the source once and read it until it fails, ends or the stop is set."""
        cfg = self.camera
        try:
            grabber = make_grabber(
                cfg.source, self.kind, timeout_s=cfg.stall_timeout_s, folder_fps=cfg.sample_fps,
                decode=cfg.decode, max_gop_s=GOP_SLACK / cfg.sample_fps,
                options=cfg.stream_options, on_skip=self._skipped,
                start_mode=self._gop.start_mode(),
            )  # fmt: skip
            grabber.open()
        except SourceError as exc:
            return _Outcome.FAILED, str(exc)
        except Exception:  # thread loop boundary: keep the camera alive
            return _Outcome.FAILED, self._unexpected("opening")
        try:
            return self._pump(grabber, backoff)
        except StalledError as exc:
            return _Outcome.STALLED, str(exc)
        except SourceError as exc:
            return _Outcome.FAILED, str(exc)
        except Exception:  # thread loop boundary: keep the camera alive
            return _Outcome.FAILED, self._unexpected("reading")
        finally:
            try:
                grabber.close()
            except Exception:  # a broken source must not kill the thread
                logger.debug("camera %s: error while closing the source", self.camera_id)

    def _unexpected(self, doing: str) -> str:
        logger.error(
            "camera %s: unexpected error while %s the source:\n%s",
            self.camera_id,
            doing,
            redact_text(traceback.format_exc()),
        )
        return f"unexpected error while {doing} the source"

    def _pump(self, grabber: Grabber, backoff: Backoff) -> tuple[_Outcome, str]:
        cfg = self.camera
        recording = grabber.kind.is_recording
        snapshot = grabber.is_pull and not recording
        period_s = 1.0 / cfg.sample_fps
        stall_s = max(cfg.stall_timeout_s, 2.0 * period_s) if snapshot else cfg.stall_timeout_s
        self._tracker.stall_timeout_s = stall_s
        by_footage = recording and not cfg.realtime
        sampler = _Sampler(period_s, by_footage=by_footage)
        if not by_footage:  # wall-clock sampling goes on across reconnects and loops
            sampler = self._wall_sampler = self._wall_sampler or sampler
        pacer = _Pacer(self.stop_event) if recording and cfg.realtime else None
        last_grab = last_usable = time.monotonic()
        usable = 0  # frames decoded, or keyframes skipped while the last one waited
        while not self.stop_event.is_set():
            if snapshot and sampler.wait_for_due(self.stop_event):
                break
            got = grabber.grab()
            now = time.monotonic()
            if not got:
                if recording and usable == 0:  # do not spin on a broken recording
                    return _Outcome.FAILED, "no decodable frame in the recording"
                if pacer is not None and isinstance(grabber, AvGrabber):
                    pacer.wait(grabber.end_s)  # packets after the last keyframe were not paced
                return self._end_of_source(recording, now - last_grab, stall_s)
            last_grab = now
            self._cpu_s = time.thread_time()
            self._tracker.frame_grabbed(now)
            keyframes = self._watch_decode(grabber)
            offset = grabber.offset_s
            if pacer is not None and pacer.wait(offset):
                break
            if not sampler.take(time.monotonic(), offset, early_s=period_s / 4 if keyframes else 0):
                continue
            if keyframes and self._live and len(self.queue):
                self._skipped_keyframes += 1  # its last frame still waits: do not decode
                usable += 1  # a keyframe to decode when wanted: not a broken recording
                last_usable = now
                continue
            try:
                image = grabber.retrieve()
            except CorruptFrameError as exc:
                self._tracker.frame_corrupt(str(exc))
                gap_s = now - last_usable
                if gap_s >= stall_s:
                    return _Outcome.STALLED, f"only undecodable frames for {gap_s:.1f} s"
                continue
            last_usable = now
            usable += 1
            backoff.reset()
            if not self._deliver(Frame(self.camera_id, self._seq, utc_now(), image, offset)):
                break
        return _Outcome.STOPPED, "stopped"

    def _skipped(self) -> None:
        """Count a packet read and dropped undecoded (keyframe mode): the stream is alive."""
        self._tracker.frame_grabbed(time.monotonic())

    def _watch_decode(self, grabber: Grabber) -> bool:
        """Report which frames ``grabber`` decodes, log a new decision; True at a keyframe.

        The decision is logged once per camera and again only when it changes, not at
        every loop or reconnect (see :class:`GopMemory`); the status shows the GOP last
        measured, from an earlier opening until this one has measured it.
        """
        if not isinstance(grabber, AvGrabber):
            return False
        mode, gop_s = grabber.mode, grabber.gop_s
        decided = self._gop.observe(mode, gop_s)
        self._tracker.set_decode(mode.value, self._gop.gop_s)
        if decided:
            period_s = 1.0 / self.camera.sample_fps
            gop = f"{gop_s:.2f} s" if gop_s is not None else "not measured yet"
            if gop_s is None and mode is DecodeMode.FULL:
                gop = f"no keyframe within {grabber.max_gop_s:.2f} s"
            if mode is DecodeMode.KEYFRAMES:
                logger.info(
                    "camera %s: decoding keyframes only (GOP %s, sampled every %.3g s)",
                    self.camera_id, gop, period_s,
                )  # fmt: skip
            elif grabber.policy == "full":
                logger.info("camera %s: decoding every frame (decode = full)", self.camera_id)
            elif grabber.max_gop_s < SHORTEST_CAMERA_GOP_S:
                logger.info(
                    "camera %s: decoding every frame: sampled every %.3g s, it would need a "
                    "keyframe every %.2g s, shorter than cameras send (GOP %s); "
                    "decode = \"full\" says so (docs/cameras.md)",
                    self.camera_id, period_s, grabber.max_gop_s, gop,
                )  # fmt: skip
            else:
                logger.warning(
                    "camera %s: decoding every frame: its GOP (%s) is longer than the %.3g s "
                    "sampling period allows; set the camera's GOP to at most %.2g s "
                    "(docs/cameras.md)",
                    self.camera_id, gop, period_s, grabber.max_gop_s,
                )  # fmt: skip
        return grabber.at_keyframe

    def _end_of_source(self, recording: bool, gap_s: float, stall_s: float) -> tuple[_Outcome, str]:
        if recording:
            if self.camera.loop:
                return _Outcome.RESTART, "end of recording"
            return _Outcome.FINISHED, "end of recording (loop is off)"
        if gap_s >= 0.9 * stall_s:
            return _Outcome.STALLED, f"no frame for {gap_s:.1f} s"
        return _Outcome.FAILED, "the stream ended"

    def _deliver(self, frame: Frame) -> bool:
        """Queue ``frame``; False when the stop came while waiting for room."""
        self._seq += 1
        if self._live:
            self.queue.put(frame)
        elif not self.queue.put_wait(frame, self.stop_event):
            return False
        self._tracker.frame_delivered(frame.captured_at)
        return True


class _Sampler:
    """Picks the frames to hand over: one per ``period_s`` of wall time or of footage."""

    def __init__(self, period_s: float, *, by_footage: bool) -> None:
        self.period_s = period_s
        self.by_footage = by_footage
        self.next_due = time.monotonic()
        self.next_offset_s = 0.0

    def wait_for_due(self, stop: threading.Event) -> bool:
        """Sleep until the next frame is due (pull sources); True if stopped meanwhile."""
        wait_s = self.next_due - time.monotonic()
        return wait_s > 0 and stop.wait(wait_s)

    def take(self, now: float, offset_s: float | None, early_s: float = 0.0) -> bool:
        """Tell whether the frame grabbed at ``now`` (at ``offset_s`` in footage) is due.

        ``early_s`` (s): a frame this much ahead of time is taken (keyframes come once per
        GOP: one a hair early must not wait a whole GOP for the next).
        """
        if self.by_footage:
            media_s = 0.0 if offset_s is None else offset_s
            if media_s + early_s + 1e-9 < self.next_offset_s:
                return False
            self.next_offset_s += self.period_s
            return True
        if now + early_s < self.next_due:
            return False
        self.next_due += self.period_s
        if self.next_due < now - self.period_s:
            self.next_due = now
        return True


class _Pacer:
    """Plays a recording at its own frame rate: waits until a frame's footage time is due."""

    def __init__(self, stop: threading.Event) -> None:
        self._stop = stop
        self._start = time.monotonic()
        self._first_offset_s: float | None = None

    def wait(self, offset_s: float | None) -> bool:
        """Wait until ``offset_s`` into the recording; True if stopped meanwhile."""
        if offset_s is None:
            return False
        if self._first_offset_s is None:
            self._first_offset_s = offset_s
        wait_s = self._start + (offset_s - self._first_offset_s) - time.monotonic()
        return wait_s > 0 and self._stop.wait(wait_s)
