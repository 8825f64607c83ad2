"""Camera input: recorded files, image folders, RTSP, HTTP MJPEG and snapshot URLs.

Two ways in:

- survey (one-shot, every frame as fast as it decodes): :func:`probe_recording` and
  :func:`iter_recorded_frames`; problems raise :class:`atcs.errors.SourceError`;
- live (long-running): :class:`CameraReader`, one thread per camera keeping only the
  latest frames, with reconnect backoff, a stall watchdog and a :class:`CameraStatus`
  per camera; :class:`CameraGroup` runs all the cameras of a node.

Credentials in source URLs never reach a log line or a status: see :func:`redact_url`.
"""

from __future__ import annotations

from atcs.sources.av_grabber import AvGrabber, DecodeMode
from atcs.sources.frame_queue import FrameQueue
from atcs.sources.grabber import CorruptFrameError, StalledError
from atcs.sources.group import CameraGroup
from atcs.sources.kinds import SourceKind, guess_kind, resolve_kind
from atcs.sources.reader import CameraReader, make_grabber
from atcs.sources.recorded import (
    FootageSampler,
    RecordingInfo,
    iter_recorded_frames,
    probe_recording,
)
from atcs.sources.redact import redact_text, redact_url
from atcs.sources.status import Backoff, ReaderStats, StatusCallback

__all__ = [
    "AvGrabber",
    "Backoff",
    "CameraGroup",
    "CameraReader",
    "CorruptFrameError",
    "DecodeMode",
    "FootageSampler",
    "FrameQueue",
    "ReaderStats",
    "RecordingInfo",
    "SourceKind",
    "StalledError",
    "StatusCallback",
    "guess_kind",
    "iter_recorded_frames",
    "make_grabber",
    "probe_recording",
    "redact_text",
    "redact_url",
    "resolve_kind",
]
