"""Survey access to recorded footage: every frame of a video file or an image folder.

:func:`probe_recording` gives the frame rate and frame count up front (for a progress
bar); :func:`iter_recorded_frames` yields every frame (or every ``stride``-th) as fast as
the machine decodes, with ``offset_s`` = frame index / frame rate. Decoding runs on a
background thread feeding a small bounded queue, so it overlaps with the caller's work
(OpenCV releases the GIL while it decodes).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from atcs.errors import SourceError
from atcs.sources.grabber import CaptureGrabber, CorruptFrameError, FolderGrabber
from atcs.sources.kinds import SourceKind, guess_kind
from atcs.sources.redact import redact_url
from atcs.types import CameraId, Frame, Image

logger = logging.getLogger(__name__)

DEFAULT_FOLDER_FPS = 1.0
"""Frame rate given to an image folder when the caller names none, frames/s."""

DEFAULT_PREFETCH_FRAMES = 4
"""Decoded frames waiting for the caller at most (the background queue's bound)."""

_POLL_S = 0.1


class FootageSampler:
    """Picks frames of a recording by footage time: one every ``1 / fps`` seconds of it.

    A frame at ``offset_s`` is taken when it is at or past the next due time, which then
    moves on by one period: from a 30 fps clip at 5 fps, frames 0, 6, 12 ... (what the
    live service analyses of a camera sampled at 5 fps, minus its timing jitter).
    """

    __slots__ = ("_next_s", "period_s")

    def __init__(self, fps: float) -> None:
        if fps <= 0:
            raise SourceError(f"sampling rate must be positive, got {fps} frames/s")
        self.period_s = 1.0 / fps
        self._next_s = 0.0

    def take(self, offset_s: float) -> bool:
        """Tell whether the frame at ``offset_s`` (s into the footage) is due."""
        if offset_s + 1e-6 < self._next_s:
            return False
        self._next_s += self.period_s
        if self._next_s <= offset_s:  # a gap in the footage: start again from here
            self._next_s = offset_s + self.period_s
        return True


@dataclass(frozen=True, slots=True)
class RecordingInfo:
    """What a recording holds: frame rate (frames/s), frame count and image size (px).

    ``frame_count`` comes from the file header and may be off by a frame or two in some
    containers; iteration stops at the real end.
    """

    source: str
    kind: SourceKind
    fps: float
    frame_count: int
    width_px: int
    height_px: int

    @property
    def duration_s(self) -> float:
        """Length of the recording, s."""
        return self.frame_count / self.fps if self.fps > 0 else 0.0


def _grabber(path: str, folder_fps: float) -> CaptureGrabber | FolderGrabber:
    kind = guess_kind(path)
    if kind is SourceKind.FOLDER:
        return FolderGrabber(path, folder_fps)
    if kind is SourceKind.FILE:
        return CaptureGrabber(path, SourceKind.FILE)
    raise SourceError(
        f"{redact_url(path)}: a survey needs a recorded file or an image folder, not a "
        f"{kind.value} stream"
    )


def probe_recording(path: str, *, folder_fps: float = DEFAULT_FOLDER_FPS) -> RecordingInfo:
    """Open ``path`` (video file or image folder) and describe it; raise SourceError."""
    grabber = _grabber(path, folder_fps)
    grabber.open()
    try:
        if isinstance(grabber, FolderGrabber):
            if not grabber.grab():
                raise SourceError(f"no images in folder: {redact_url(path)}")
            image = grabber.retrieve()
            height, width = int(image.shape[0]), int(image.shape[1])
        else:
            width, height = grabber.width_px, grabber.height_px
        fps = grabber.native_fps or DEFAULT_FOLDER_FPS
        return RecordingInfo(path, grabber.kind, fps, grabber.frame_count, width, height)
    finally:
        grabber.close()


@dataclass(frozen=True, slots=True)
class _Decoded:
    index: int
    offset_s: float
    image: Image


@dataclass(frozen=True, slots=True)
class _Failed:
    error: BaseException


_END = object()


class _Counter:
    """Frames grabbed and frames skipped as undecodable."""

    def __init__(self) -> None:
        self.grabbed = 0
        self.corrupt = 0


class _Decoder:
    """Reads frames on a background thread into a bounded queue."""

    def __init__(self, grabber: CaptureGrabber | FolderGrabber, stride: int, size: int) -> None:
        self._grabber = grabber
        self._stride = stride
        self._queue: queue.Queue[object] = queue.Queue(maxsize=size)
        self._stop = threading.Event()
        self.counter = _Counter()
        self._thread = threading.Thread(target=self._run, name="atcs-decode", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=_POLL_S)
            except queue.Full:
                continue
            return True
        return False

    def _run(self) -> None:
        try:
            for item in decode_frames(self._grabber, self._stride, self.counter):
                if not self._put(item):
                    return
            self._put(_END)
        except BaseException as exc:  # handed to the consumer thread
            self._put(_Failed(exc))

    def items(self) -> Iterator[_Decoded]:
        while True:
            item = self._queue.get()
            if item is _END:
                return
            if isinstance(item, _Failed):
                raise item.error
            if isinstance(item, _Decoded):
                yield item

    def close(self) -> bool:
        """Stop the thread; True once it has ended (only then may the grabber close)."""
        self._stop.set()
        self._thread.join(timeout=5.0)
        return not self._thread.is_alive()


def decode_frames(
    grabber: CaptureGrabber | FolderGrabber, stride: int, counter: _Counter
) -> Iterator[_Decoded]:
    """Yield every ``stride``-th frame of an open grabber; skip and count corrupt frames."""
    while grabber.grab():
        index = grabber.index
        counter.grabbed = index + 1
        if index % stride:
            continue
        try:
            image = grabber.retrieve()
        except CorruptFrameError as exc:
            counter.corrupt += 1
            if counter.corrupt == 1:
                logger.warning("skipping an undecodable frame: %s", exc)
            continue
        offset = grabber.offset_s
        yield _Decoded(index, 0.0 if offset is None else offset, image)


def iter_recorded_frames(
    camera_id: str,
    path: str,
    *,
    start_at: datetime | None = None,
    folder_fps: float = DEFAULT_FOLDER_FPS,
    stride: int = 1,
    prefetch_frames: int = DEFAULT_PREFETCH_FRAMES,
) -> Iterator[Frame]:
    """Yield the frames of a video file or image folder, in order, as fast as they decode.

    ``seq`` is the frame index in the recording, ``offset_s`` is index / frame rate (s),
    ``captured_at`` is ``start_at`` (default: now, UTC) plus ``offset_s``, so windows
    follow the footage's own time. Images of a folder are ``1 / folder_fps`` s apart.
    ``stride`` keeps every n-th frame (skipped frames are not decoded to images).
    ``prefetch_frames`` > 0 decodes on a background thread into a queue of that size; 0
    decodes inline. A missing or undecodable file raises :class:`SourceError` before the
    first frame; a corrupt frame in the middle is skipped with a warning.
    """
    if stride < 1:
        raise SourceError(f"stride must be at least 1, got {stride}")
    if start_at is None:
        start_at = datetime.now(UTC)
    elif start_at.tzinfo is None:
        raise SourceError("start_at must be timezone-aware")
    grabber = _grabber(path, folder_fps)
    grabber.open()
    cam = CameraId(camera_id)
    shown = redact_url(path)
    expected = grabber.frame_count
    decoder = _Decoder(grabber, stride, prefetch_frames) if prefetch_frames > 0 else None
    counter = decoder.counter if decoder is not None else _Counter()
    yielded = 0
    try:
        if decoder is not None:
            decoder.start()
            items = decoder.items()
        else:
            items = decode_frames(grabber, stride, counter)
        for item in items:
            yielded += 1
            yield Frame(
                camera_id=cam,
                seq=item.index,
                captured_at=start_at + timedelta(seconds=item.offset_s),
                image=item.image,
                offset_s=item.offset_s,
            )
    finally:
        if decoder is None or decoder.close():
            grabber.close()
        else:
            logger.warning("%s: decoder thread still busy; leaving the file open", shown)
    corrupt = counter.corrupt
    if yielded == 0:
        raise SourceError(f"no decodable frame in {shown}")
    if corrupt:
        logger.warning("%s: %d undecodable frame(s) skipped", shown, corrupt)
    if grabber.kind is SourceKind.FILE and expected and counter.grabbed < expected - 2:
        logger.warning(
            "%s: ended at frame %d of the %d its header announces (truncated or corrupt?)",
            shown,
            counter.grabbed,
            expected,
        )
