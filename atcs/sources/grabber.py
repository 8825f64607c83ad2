"""Low-level frame grabbers: one open connection or file, read frame by frame.

A grabber is used by one thread only. :meth:`Grabber.grab` advances to the next frame
without decoding it where the source allows (cheap to skip frames), and
:meth:`Grabber.retrieve` decodes the grabbed frame to a BGR image.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from atcs.errors import SourceError
from atcs.sources.kinds import IMAGE_SUFFIXES, SourceKind, local_path
from atcs.sources.redact import redact_text, redact_url
from atcs.types import Image

logger = logging.getLogger(__name__)

FALLBACK_FPS = 25.0
"""Frame rate assumed for a video file whose header gives none, frames/s."""


class CorruptFrameError(SourceError):
    """One frame could not be decoded; the source itself may still deliver the next one."""


class StalledError(SourceError):
    """The source sent nothing for longer than the read timeout."""


class Grabber(Protocol):
    """One open source, read frame by frame by a single thread."""

    @property
    def kind(self) -> SourceKind:
        """The kind of source being read."""
        ...

    @property
    def is_pull(self) -> bool:
        """True when frames are fetched on demand (snapshot, folder), not pushed (streams)."""
        ...

    @property
    def native_fps(self) -> float | None:
        """The source's own frame rate in frames/s where known (files), else None."""
        ...

    @property
    def offset_s(self) -> float | None:
        """Position of the last grabbed frame in the recording, s (None for live sources)."""
        ...

    def open(self) -> None:
        """Connect or open; raise :class:`SourceError` with a clear, redacted message."""
        ...

    def grab(self) -> bool:
        """Advance to the next frame; False at the end of the source (or a read timeout)."""
        ...

    def retrieve(self) -> Image:
        """Decode the grabbed frame to HxWx3 uint8 BGR; :class:`CorruptFrameError` if bad."""
        ...

    def close(self) -> None:
        """Release the connection or file; safe to call twice."""
        ...


def as_bgr(image: np.ndarray | None, what: str) -> Image:
    """Return ``image`` as a contiguous HxWx3 uint8 BGR array or raise CorruptFrameError."""
    if image is None or image.size == 0:
        raise CorruptFrameError(f"{what}: frame could not be decoded")
    if image.dtype != np.uint8:
        raise CorruptFrameError(f"{what}: frame has dtype {image.dtype}, expected uint8")
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    elif image.ndim == 3 and image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if image.ndim != 3 or image.shape[2] != 3:
        raise CorruptFrameError(f"{what}: frame has shape {image.shape}, expected HxWx3")
    return np.ascontiguousarray(image)


class CaptureGrabber:
    """A video file or network stream read by ``cv2.VideoCapture`` (FFmpeg backend).

    ``timeout_s`` bounds connecting to and each read from a network stream; for files it
    is unused. RTSP uses OpenCV's default transport (TCP preferred); set the environment
    variable ``OPENCV_FFMPEG_CAPTURE_OPTIONS`` (e.g. ``rtsp_transport;udp``) to change it.
    """

    def __init__(self, source: str, kind: SourceKind, timeout_s: float = 10.0) -> None:
        if kind not in (SourceKind.FILE, SourceKind.RTSP):
            raise SourceError(f"CaptureGrabber cannot read {kind.value} sources")
        self._source = local_path(source) if kind is SourceKind.FILE else source
        self._kind = kind
        self._timeout_ms = max(1, round(timeout_s * 1000))
        self._cap: cv2.VideoCapture | None = None
        self._fps: float | None = None
        self._index = -1
        self.frame_count = 0
        self.width_px = 0
        self.height_px = 0

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
        """The file's frame rate from its header, frames/s (None for streams)."""
        return self._fps

    @property
    def offset_s(self) -> float | None:
        """Frame index divided by the file's frame rate, s (None for streams)."""
        if self._fps is None or self._index < 0:
            return None
        return self._index / self._fps

    @property
    def index(self) -> int:
        """Index of the last grabbed frame (-1 before the first)."""
        return self._index

    def open(self) -> None:
        """Open the file or connect to the stream."""
        shown = redact_url(self._source)
        if self._kind is SourceKind.FILE:
            path = Path(self._source)
            if not path.exists():
                raise SourceError(f"video file not found: {shown}")
            if not path.is_file():
                raise SourceError(f"not a video file: {shown}")
            if not os.access(path, os.R_OK):
                raise SourceError(f"video file not readable: {shown}")
            cap = cv2.VideoCapture(self._source, cv2.CAP_FFMPEG)
        else:
            params = [
                cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
                self._timeout_ms,
                cv2.CAP_PROP_READ_TIMEOUT_MSEC,
                self._timeout_ms,
            ]
            cap = cv2.VideoCapture(self._source, cv2.CAP_FFMPEG, params)
        if not cap.isOpened():
            cap.release()
            if self._kind is SourceKind.FILE:
                raise SourceError(f"cannot decode video file (corrupt or not a video): {shown}")
            raise SourceError(f"cannot open stream (unreachable, refused or no video): {shown}")
        self._cap = cap
        self._index = -1
        self.width_px = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        self.height_px = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        if self._kind is SourceKind.FILE:
            fps = float(cap.get(cv2.CAP_PROP_FPS))
            if not (0.0 < fps <= 1000.0):
                logger.warning(
                    "%s: no frame rate in the file header; assuming %.0f fps", shown, FALLBACK_FPS
                )
                fps = FALLBACK_FPS
            self._fps = fps
            self.frame_count = max(0, int(cap.get(cv2.CAP_PROP_FRAME_COUNT)))

    def grab(self) -> bool:
        """Advance one frame; False at the end of a file or when a stream read fails."""
        if self._cap is None:
            raise SourceError("grab() before open()")
        if not self._cap.grab():
            return False
        self._index += 1
        return True

    def retrieve(self) -> Image:
        """Decode the grabbed frame."""
        if self._cap is None:
            raise SourceError("retrieve() before open()")
        ok, image = self._cap.retrieve()
        return as_bgr(image if ok else None, f"frame {self._index}")

    def close(self) -> None:
        """Release the capture."""
        if self._cap is not None:
            self._cap.release()
            self._cap = None


_DIGITS = re.compile(r"(\d+)")


def _natural_key(name: str) -> list[tuple[int, int | str]]:
    """Sort key that orders ``frame2.jpg`` before ``frame10.jpg``."""
    return [(0, int(p)) if p.isdigit() else (1, p.lower()) for p in _DIGITS.split(name) if p]


def list_images(folder: str) -> list[Path]:
    """List the images (jpg, jpeg, png, bmp) in ``folder`` in natural name order."""
    path = Path(local_path(folder))
    shown = redact_url(folder)
    if not path.exists():
        raise SourceError(f"image folder not found: {shown}")
    if not path.is_dir():
        raise SourceError(f"not a folder: {shown}")
    try:
        names = [p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()]
    except OSError as exc:
        raise SourceError(f"cannot list image folder {shown}: {exc.strerror}") from None
    if not names:
        raise SourceError(f"no images (jpg, jpeg, png, bmp) in folder: {shown}")
    return sorted(names, key=lambda p: _natural_key(p.name))


class FolderGrabber:
    """A folder of still images read in natural name order as a recording at ``fps``."""

    def __init__(self, folder: str, fps: float = 1.0) -> None:
        if fps <= 0:
            raise SourceError(f"image folder frame rate must be positive, got {fps}")
        self._folder = folder
        self._fps = fps
        self._files: list[Path] = []
        self._index = -1

    @property
    def kind(self) -> SourceKind:
        """Always FOLDER."""
        return SourceKind.FOLDER

    @property
    def is_pull(self) -> bool:
        """Always True: images are read on demand."""
        return True

    @property
    def native_fps(self) -> float:
        """The frame rate the folder is played at, frames/s."""
        return self._fps

    @property
    def offset_s(self) -> float | None:
        """Image index divided by the frame rate, s."""
        return None if self._index < 0 else self._index / self._fps

    @property
    def index(self) -> int:
        """Index of the last grabbed image (-1 before the first)."""
        return self._index

    @property
    def frame_count(self) -> int:
        """Number of images in the folder (after :meth:`open`)."""
        return len(self._files)

    def open(self) -> None:
        """List the folder's images."""
        self._files = list_images(self._folder)
        self._index = -1

    def grab(self) -> bool:
        """Advance to the next image; False after the last."""
        if self._index + 1 >= len(self._files):
            return False
        self._index += 1
        return True

    def retrieve(self) -> Image:
        """Read and decode the current image."""
        if self._index < 0:
            raise SourceError("retrieve() before grab()")
        path = self._files[self._index]
        try:
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        except cv2.error as exc:
            raise CorruptFrameError(
                f"image {path.name}: cannot decode ({redact_text(str(exc)).strip()})"
            ) from None
        return as_bgr(image, f"image {path.name}")

    def close(self) -> None:
        """Nothing to release."""
        self._index = -1
