"""Video files and network streams read with PyAV: decode only the frames that are analysed.

A camera sampled at 1 frame/s does not need the 24 frames in between. When the stream's
keyframes come at least as often as the camera is sampled (its GOP is no longer than the
sampling period, plus :data:`GOP_SLACK`), only keyframe packets are decoded: the others are
read and dropped without touching the decoder, and a keyframe the sampler does not want
is not decoded either. Each keyframe is decoded on its own (sent, drained, decoder reset),
so it comes out at once even in streams with B-frames, at its own presentation time.

The GOP is measured continuously from the keyframe packets. In ``auto`` mode a stream
whose GOP is too long falls back to decoding every frame: as soon as the time since the
last keyframe passes the limit, the packets read since that keyframe (kept for this,
bounded) are decoded and every later frame with them; it goes back to keyframes once two
GOPs in a row fit again. ``keyframes`` forces keyframes only (the sampling rate then drops
to the keyframe rate when the GOP is long) and ``full`` decodes every frame.

An ``auto`` grabber may start in either mode (``start_mode``): a camera's reader starts a
reopened source in the mode its last opening settled on (see
:mod:`atcs.sources.gop_memory`), so a looped clip or a reconnected stream with a long GOP
decodes every frame from its first packet instead of falling back again.
"""

from __future__ import annotations

import enum
import importlib
import itertools
import logging
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np

from atcs.errors import SourceError
from atcs.sources.grabber import FALLBACK_FPS, CorruptFrameError, as_bgr
from atcs.sources.kinds import SourceKind, local_path
from atcs.sources.redact import redact_text, redact_url
from atcs.types import Image

logger = logging.getLogger(__name__)

DecodePolicy = Literal["auto", "keyframes", "full"]
"""How a camera is decoded: see the module docstring."""
GOP_SLACK = 1.1
"""A GOP up to this many sampling periods still counts as fitting (29.97 fps, GOP 30)."""

SHORTEST_CAMERA_GOP_S = 0.5
"""Shortest GOP (s) a camera is sensibly set to (12-15 frames at 25-30 frames/s): a camera
sampled so often that its keyframes would have to come closer than this decodes every
frame by design (5 frames/s needs one every 0.22 s), which is not worth a warning."""
MAX_HELD_PACKETS = 600
"""Most packets kept since the last keyframe for a fallback to full decoding (10 s at 60)."""
MIN_KEYFRAME_BYTES = 64
"""Smaller packets flagged as keyframes are placeholders (AVI "not coded" frames)."""
GOP_HISTORY = 3
"""Keyframe times kept to measure the GOP."""


class DecodeMode(enum.Enum):
    """Which frames a stream's decoder sees."""

    KEYFRAMES = "keyframes"
    FULL = "full"


def _av() -> Any:
    try:
        return importlib.import_module("av")
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise SourceError("the av package (PyAV) is needed to read video: pip install av") from exc


class AvGrabber:
    """A video file or network stream decoded by PyAV, keyframes only where allowed.

    ``max_gop_s`` is the longest GOP keyframe decoding accepts (s; the sampling period
    times :data:`GOP_SLACK`); ``options`` are FFmpeg options (``rtsp_transport`` ...);
    ``on_skip`` is called for every packet read and dropped without being handed out, so
    the camera's frame rate and stall watchdog still see the stream. ``start_mode`` is
    the mode an ``auto`` grabber starts in (keyframes only when None); the other policies
    ignore it.
    """

    def __init__(
        self,
        source: str,
        kind: SourceKind,
        *,
        timeout_s: float = 10.0,
        policy: DecodePolicy = "auto",
        max_gop_s: float = 1.0,
        options: Mapping[str, str] | None = None,
        on_skip: Callable[[], None] | None = None,
        start_mode: DecodeMode | None = None,
    ) -> None:
        if kind not in (SourceKind.FILE, SourceKind.RTSP):
            raise SourceError(f"AvGrabber cannot read {kind.value} sources")
        self._source = local_path(source) if kind is SourceKind.FILE else source
        self._kind = kind
        self._timeout_s = timeout_s
        self.policy: DecodePolicy = policy
        self.max_gop_s = max_gop_s
        self._options = dict(options or {})
        if kind is SourceKind.RTSP and self._source.startswith("rtsp"):
            self._options.setdefault("rtsp_transport", "tcp")
        self._on_skip = on_skip
        self._container: Any = None
        self._stream: Any = None
        self._packets: Iterator[Any] | None = None
        self._time_base = 0.0
        self._start_pts: int | None = None
        self._fps: float | None = None
        fixed = DecodeMode.FULL if policy == "full" else DecodeMode.KEYFRAMES
        self.mode = start_mode if policy == "auto" and start_mode is not None else fixed
        self._keyframe_times: deque[float] = deque(maxlen=GOP_HISTORY)
        self._held: list[Any] = []  # packets since the last keyframe (keyframe mode)
        self._frames: deque[tuple[Any, float]] = deque()  # decoded, not yet handed out
        self._current: tuple[Any, float] | None = None  # a frame (full) or a packet (keyframes)
        self._last_out_s = -1.0
        self._last_read_s = 0.0
        self._index = -1
        self.width_px = 0
        self.height_px = 0
        self.frame_count = 0
        self.mode_changes = 0

    # -- what the reader sees ---------------------------------------------------------

    @property
    def kind(self) -> SourceKind:
        """The kind of source being read."""
        return self._kind

    @property
    def is_pull(self) -> bool:
        """Always False: files and streams are read in order."""
        return False

    @property
    def native_fps(self) -> float | None:
        """The file's frame rate, frames/s (None for streams)."""
        return self._fps

    @property
    def offset_s(self) -> float | None:
        """Presentation time of the grabbed frame in the file, s (None for streams)."""
        if self._kind is not SourceKind.FILE or self._current is None:
            return None
        return self._current[1]

    @property
    def index(self) -> int:
        """Count of frames grabbed so far, minus one."""
        return self._index

    @property
    def end_s(self) -> float:
        """End of the last packet read: its time plus one frame period, s."""
        return self._last_read_s + 1.0 / (self._fps or FALLBACK_FPS)

    @property
    def at_keyframe(self) -> bool:
        """True when the grabbed item is a keyframe not decoded yet (keyframe mode)."""
        return self._current is not None and not hasattr(self._current[0], "to_ndarray")

    @property
    def gop_s(self) -> float | None:
        """Time between the last two keyframes, s (None until two were seen)."""
        times = self._keyframe_times
        return times[-1] - times[-2] if len(times) >= 2 else None

    # -- open and close -----------------------------------------------------------------

    def open(self) -> None:
        """Open the file or connect to the stream; :class:`SourceError` names the problem."""
        shown = redact_url(self._source)
        if self._kind is SourceKind.FILE:
            path = Path(self._source)
            if not path.is_file():
                raise SourceError(f"video file not found: {shown}")
        av = _av()
        try:
            container = av.open(
                self._source, options=self._options, timeout=(self._timeout_s, self._timeout_s)
            )
        except (av.FFmpegError, OSError) as exc:
            what = "video file" if self._kind is SourceKind.FILE else "stream"
            reason = redact_text(str(exc)).strip()
            raise SourceError(f"cannot open {what} {shown}: {reason}") from None
        if not container.streams.video:
            container.close()
            raise SourceError(f"no video in {shown}")
        stream = container.streams.video[0]
        stream.thread_count = 1  # decode on the camera's own thread: many cameras, few cores
        self._container, self._stream = container, stream
        self._packets = iter(container.demux(stream))
        self._time_base = float(stream.time_base) if stream.time_base else 1.0 / FALLBACK_FPS
        self._start_pts = stream.start_time
        rate = stream.average_rate or stream.guessed_rate
        if self._kind is SourceKind.FILE:
            self._fps = float(rate) if rate and 0 < float(rate) <= 1000 else FALLBACK_FPS
            self.frame_count = int(stream.frames or 0)
        self.width_px = int(stream.codec_context.width or 0)
        self.height_px = int(stream.codec_context.height or 0)
        self._set_skip()

    def close(self) -> None:
        """Release the file or connection; safe to call twice."""
        if self._container is not None:
            try:
                self._container.close()
            finally:
                self._container = self._stream = self._packets = None

    # -- reading ------------------------------------------------------------------------

    def grab(self) -> bool:
        """Advance to the next keyframe (keyframe mode) or decoded frame; False at the end."""
        if self._packets is None:
            raise SourceError("grab() before open()")
        while True:
            if self._frames:
                self._current = self._frames.popleft()
                self._index += 1
                return True
            packet = self._next_packet()
            if packet is None:
                if self.mode is DecodeMode.FULL:
                    self._decode(None)  # the decoder's last frames
                    if self._frames:
                        continue
                return False
            if self.mode is DecodeMode.KEYFRAMES:
                if self._keyframe_packet(packet):
                    self._index += 1
                    return True
            else:
                self._full_packet(packet)

    def retrieve(self) -> Image:
        """Decode the grabbed keyframe, or convert the grabbed frame, to HxWx3 BGR."""
        if self._current is None:
            raise SourceError("retrieve() before grab()")
        item, at_s = self._current
        if self.at_keyframe:
            frames = self._decode_alone(item)
            if not frames:
                raise CorruptFrameError(f"keyframe at {at_s:.2f} s could not be decoded")
            item = frames[-1]
        self._last_out_s = at_s
        image = item.to_ndarray(format="bgr24")
        return as_bgr(np.asarray(image), f"frame at {at_s:.2f} s")

    # -- internals ----------------------------------------------------------------------

    def _seconds(self, pts: int | None) -> float | None:
        if pts is None:
            return None
        if self._start_pts is None:
            self._start_pts = pts
        return (pts - self._start_pts) * self._time_base

    def _next_packet(self) -> Any:
        assert self._packets is not None
        av = _av()
        while True:
            try:
                packet = next(self._packets)
            except StopIteration:
                return None
            except (av.FFmpegError, OSError) as exc:
                logger.debug("read failed: %s", redact_text(str(exc)))
                return None
            if packet.size == 0:
                continue
            at_s = self._seconds(packet.pts)
            if at_s is not None:
                self._last_read_s = max(self._last_read_s, at_s)
            return packet

    def _is_keyframe(self, packet: Any) -> bool:
        return bool(packet.is_keyframe) and packet.size >= MIN_KEYFRAME_BYTES

    def _note_keyframe(self, at_s: float) -> None:
        times = self._keyframe_times
        if not times or at_s > times[-1]:
            times.append(at_s)

    def _keyframe_packet(self, packet: Any) -> bool:
        """Keyframe mode: True when ``packet`` is a keyframe to hand out."""
        at_s = self._seconds(packet.pts if packet.pts is not None else packet.dts)
        if at_s is None:
            self._skip()
            return False
        if self._is_keyframe(packet):
            self._note_keyframe(at_s)
            self._held = [packet]
            self._current = (packet, at_s)
            return True
        if self._held:
            if len(self._held) < MAX_HELD_PACKETS:
                self._held.append(packet)
            else:
                self._held = []  # too long ago to catch up: wait for the next keyframe
        self._skip()
        last_key = self._keyframe_times[-1] if self._keyframe_times else None
        if self.policy == "auto" and last_key is not None and at_s - last_key > self.max_gop_s:
            self._switch(DecodeMode.FULL)
            held, self._held = self._held, []
            for old in held:
                self._decode(old)
        return False

    def _full_packet(self, packet: Any) -> None:
        at_s = self._seconds(packet.pts if packet.pts is not None else packet.dts)
        if self._is_keyframe(packet) and at_s is not None:
            self._note_keyframe(at_s)
            if self.policy == "auto" and self._gop_fits():
                self._decode(None)  # drain the previous GOP's frames, then keyframes only
                self._switch(DecodeMode.KEYFRAMES)
                self._held = [packet]
                self._frames.append((packet, at_s))
                return
        self._decode(packet)

    def _gop_fits(self) -> bool:
        times = list(self._keyframe_times)
        gaps = [b - a for a, b in itertools.pairwise(times)]
        return len(gaps) >= 2 and all(g <= self.max_gop_s for g in gaps[-2:])

    def _skip(self) -> None:
        if self._on_skip is not None:
            self._on_skip()

    def _switch(self, mode: DecodeMode) -> None:
        self.mode = mode
        self.mode_changes += 1
        self._stream.codec_context.flush_buffers()
        self._set_skip()

    def _set_skip(self) -> None:
        if self._stream is not None:
            nonkey = self.mode is DecodeMode.KEYFRAMES
            self._stream.codec_context.skip_frame = "NONKEY" if nonkey else "DEFAULT"

    def _decode(self, packet: Any) -> None:
        """Full mode: decode ``packet`` (None: drain) and queue the frames it gives."""
        av = _av()
        try:
            frames = self._stream.codec_context.decode(packet)
        except av.FFmpegError as exc:  # one bad packet; the stream goes on
            logger.debug("undecodable packet skipped: %s", exc)
            return
        for frame in frames:
            at_s = self._seconds(frame.pts)
            if at_s is None:  # no timestamp: one frame period after the previous one
                previous = self._frames[-1][1] if self._frames else self._last_out_s
                at_s = max(previous, 0.0) + 1.0 / (self._fps or FALLBACK_FPS)
            if at_s <= self._last_out_s:
                continue  # already handed out (a keyframe decoded again after a fallback)
            self._frames.append((frame, at_s))
        if packet is None:
            self._stream.codec_context.flush_buffers()

    def _decode_alone(self, packet: Any) -> list[Any]:
        """Keyframe mode: decode one keyframe at once (drain), then reset the decoder."""
        av = _av()
        context = self._stream.codec_context
        try:
            frames = list(context.decode(packet)) + list(context.decode(None))
        except av.FFmpegError as exc:
            raise CorruptFrameError(f"keyframe could not be decoded: {exc}") from None
        finally:
            context.flush_buffers()
        return frames
