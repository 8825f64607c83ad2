"""Which kind of source a camera is: from its configured ``kind`` or guessed from the URL."""

from __future__ import annotations

import enum
import os
from pathlib import PurePosixPath
from urllib.parse import urlsplit

from atcs.errors import SourceError

STREAM_SCHEMES = frozenset({"rtsp", "rtsps", "rtmp", "rtmps", "srt", "udp", "rtp"})
"""URL schemes read as a video stream through OpenCV's FFmpeg backend."""

VIDEO_SUFFIXES = frozenset(
    {".mp4", ".avi", ".mkv", ".mov", ".m4v", ".ts", ".flv", ".webm", ".mpg", ".mpeg", ".m3u8"}
)
"""Suffixes of an ``http(s)`` URL that names a video or HLS playlist rather than MJPEG."""

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp"})
"""Suffixes of still images (snapshot URLs and image-folder members)."""

_SNAPSHOT_WORDS = ("snapshot", "snap", "still", "picture", "image", "jpg", "jpeg", "capture")


class SourceKind(enum.Enum):
    """How frames are read.

    ``RTSP`` covers every network video stream OpenCV's FFmpeg backend reads (rtsp, rtmp,
    HLS or video over http); ``MJPEG`` is an HTTP ``multipart/x-mixed-replace`` stream of
    JPEG images; ``SNAPSHOT`` is a URL answering one image per GET.
    """

    FILE = "file"
    FOLDER = "folder"
    RTSP = "rtsp"
    MJPEG = "mjpeg"
    SNAPSHOT = "snapshot"

    @property
    def is_recording(self) -> bool:
        """True for finite recorded sources (a file or an image folder)."""
        return self in (SourceKind.FILE, SourceKind.FOLDER)


def is_url(source: str) -> bool:
    """Tell whether ``source`` looks like ``scheme://...`` (not a Windows drive path)."""
    scheme = urlsplit(source).scheme
    return len(scheme) > 1 and "://" in source


def guess_kind(source: str) -> SourceKind:
    """Guess the kind of ``source`` from its URL scheme and path.

    ``rtsp://`` and other stream schemes give RTSP; an ``http(s)`` URL naming a video file
    or playlist gives RTSP, one naming an image or a snapshot/still/picture endpoint gives
    SNAPSHOT, any other gives MJPEG (an MJPEG reader also accepts a URL that turns out to
    answer single images). A local path gives FOLDER when it is a directory (or ends in
    ``/``), else FILE. The only I/O is that directory check.
    """
    if is_url(source):
        parts = urlsplit(source)
        scheme = parts.scheme.lower()
        if scheme in STREAM_SCHEMES:
            return SourceKind.RTSP
        if scheme == "file":
            return guess_kind(parts.path)
        if scheme not in ("http", "https"):
            raise SourceError(f"unsupported URL scheme {scheme!r} in camera source")
        suffix = PurePosixPath(parts.path).suffix.lower()
        if suffix in VIDEO_SUFFIXES:
            return SourceKind.RTSP
        if suffix in IMAGE_SUFFIXES:
            return SourceKind.SNAPSHOT
        lowered = (parts.path + "?" + parts.query).lower()
        if any(word in lowered for word in _SNAPSHOT_WORDS) and "mjp" not in lowered:
            return SourceKind.SNAPSHOT
        return SourceKind.MJPEG
    if source.endswith(("/", os.sep)) or os.path.isdir(source):
        return SourceKind.FOLDER
    return SourceKind.FILE


def resolve_kind(source: str, kind: str = "auto") -> SourceKind:
    """Return the configured ``kind`` of ``source``, or the guessed one when it is ``auto``."""
    if kind == "auto":
        return guess_kind(source)
    try:
        return SourceKind(kind)
    except ValueError:
        known = ", ".join(["auto", *(k.value for k in SourceKind)])
        raise SourceError(f"unknown source kind {kind!r}; known: {known}") from None


def local_path(source: str) -> str:
    """Return the filesystem path of a local source (``file://`` URLs unwrapped)."""
    if is_url(source) and urlsplit(source).scheme.lower() == "file":
        return urlsplit(source).path
    return source
