"""Pure parts of camera input: redaction, kind guessing, backoff, frame queue, status."""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime

import numpy as np
import pytest

from atcs.errors import SourceError
from atcs.sources import Backoff, FrameQueue, SourceKind, guess_kind, redact_text, redact_url
from atcs.sources.kinds import resolve_kind
from atcs.sources.redact import strip_userinfo
from atcs.sources.status import StatusTracker
from atcs.types import CameraId, CameraState, CameraStatus, Frame


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "rtsp://admin:hunter2@10.0.0.5:554/Streaming/101",
            "rtsp://***@10.0.0.5:554/Streaming/101",
        ),
        ("rtsp://admin@10.0.0.5/live", "rtsp://***@10.0.0.5/live"),
        ("http://u:p%40ss@cam.local/video.mjpg", "http://***@cam.local/video.mjpg"),
        # an unescaped '@' or '/' in the password is still masked as a whole
        ("rtsp://user:p@ss/w0rd@cam:554/x", "rtsp://***@cam:554/x"),
        (
            "http://cam/snapshot.cgi?user=admin&pwd=hunter2&chn=1",
            "http://cam/snapshot.cgi?user=***&pwd=***&chn=1",
        ),
        (
            "http://cam/cgi?loginuse=admin&loginpas=hunter2",
            "http://cam/cgi?loginuse=***&loginpas=***",
        ),
        ("https://cam/img.jpg?token=abc.def-ghi", "https://cam/img.jpg?token=***"),
        ("rtsp://10.0.0.5/live", "rtsp://10.0.0.5/live"),
        (
            "http://cam/stream?resolution=640x480&fps=5",
            "http://cam/stream?resolution=640x480&fps=5",
        ),
        ("/data/clips/jl_sudirman.mp4", "/data/clips/jl_sudirman.mp4"),
    ],
)
def test_redact_url(url: str, expected: str) -> None:
    assert redact_url(url) == expected


def test_redact_text_masks_every_url_in_a_message() -> None:
    text = (
        "open failed for 'rtsp://op:Secr3t!@192.168.1.20/ch1' and "
        "http://viewer:pw2@cam2/video.mjpg (timeout)"
    )
    out = redact_text(text)
    assert "Secr3t" not in out
    assert "pw2" not in out
    assert "viewer" not in out
    assert "rtsp://***@192.168.1.20/ch1" in out
    assert "http://***@cam2/video.mjpg (timeout)" in out


def test_strip_userinfo_decodes_credentials() -> None:
    clean, user, password = strip_userinfo("http://al%20ice:p%40ss@cam:8080/a?b=1")
    assert clean == "http://cam:8080/a?b=1"
    assert user == "al ice"
    assert password == "p@ss"
    assert strip_userinfo("http://cam/a") == ("http://cam/a", None, None)


@pytest.mark.parametrize(
    ("source", "kind"),
    [
        ("rtsp://cam/live", SourceKind.RTSP),
        ("rtmp://cam/live", SourceKind.RTSP),
        ("http://cam/hls/index.m3u8", SourceKind.RTSP),
        ("http://cam/axis-cgi/mjpg/video.cgi", SourceKind.MJPEG),
        ("http://cam:8081/", SourceKind.MJPEG),
        ("http://cam/video.mjpg", SourceKind.MJPEG),
        ("http://cam/cgi-bin/snapshot.cgi?chn=1", SourceKind.SNAPSHOT),
        ("http://cam/ISAPI/Streaming/channels/101/picture", SourceKind.SNAPSHOT),
        ("https://atcs.example.go.id/cctv/12.jpg", SourceKind.SNAPSHOT),
        ("clips/simpang_lima.mp4", SourceKind.FILE),
        ("frames/", SourceKind.FOLDER),
    ],
)
def test_guess_kind(source: str, kind: SourceKind) -> None:
    assert guess_kind(source) is kind


def test_guess_kind_of_existing_folder(tmp_path: object) -> None:
    assert guess_kind(str(tmp_path)) is SourceKind.FOLDER


def test_resolve_kind_prefers_configured_kind_and_rejects_unknown_schemes() -> None:
    assert resolve_kind("http://cam/x", "snapshot") is SourceKind.SNAPSHOT
    assert resolve_kind("http://cam/x", "auto") is SourceKind.MJPEG
    with pytest.raises(SourceError, match="unsupported URL scheme 'ftp'"):
        resolve_kind("ftp://cam/x.mp4", "auto")
    with pytest.raises(SourceError, match="unknown source kind"):
        resolve_kind("x.mp4", "webcam")


def test_backoff_doubles_to_the_maximum_and_resets() -> None:
    backoff = Backoff(1.0, 30.0)
    delays = [backoff.next_delay() for _ in range(8)]
    assert delays == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
    backoff.reset()
    assert not backoff.exhausted
    assert backoff.next_delay() == 1.0


def test_backoff_is_exhausted_once_the_delay_reached_the_maximum() -> None:
    backoff = Backoff(0.5, 2.0)
    seen = []
    for _ in range(4):
        backoff.next_delay()
        seen.append(backoff.exhausted)
    assert seen == [False, False, True, True]


def _frame(seq: int) -> Frame:
    return Frame(CameraId("c"), seq, datetime.now(UTC), np.zeros((4, 4, 3), np.uint8))


def test_frame_queue_drops_the_oldest_and_never_grows() -> None:
    queue = FrameQueue(3)
    dropped = [queue.put(_frame(i)) for i in range(10)]
    assert dropped == [False] * 3 + [True] * 7
    assert len(queue) == 3
    assert queue.dropped == 7
    assert [queue.get_nowait().seq for _ in range(3)] == [7, 8, 9]  # type: ignore[union-attr]
    assert queue.get_nowait() is None
    assert queue.get(timeout_s=0.01) is None


def test_frame_queue_get_latest_discards_older_frames() -> None:
    queue = FrameQueue(4)
    for i in range(4):
        queue.put(_frame(i))
    latest = queue.get_latest()
    assert latest is not None
    assert latest.seq == 3
    assert len(queue) == 0
    assert queue.dropped == 3


def test_frame_queue_put_wait_blocks_until_room_or_stop() -> None:
    queue = FrameQueue(1)
    stop = threading.Event()
    assert queue.put_wait(_frame(0), stop)
    done: list[bool] = []
    thread = threading.Thread(target=lambda: done.append(queue.put_wait(_frame(1), stop)))
    thread.start()
    thread.join(0.2)
    assert thread.is_alive()  # full: waits instead of dropping
    got = queue.get(timeout_s=1.0)
    assert got is not None
    assert got.seq == 0
    thread.join(2.0)
    assert done == [True]
    assert queue.dropped == 0
    stop.set()
    assert not queue.put_wait(_frame(2), stop)


def test_frame_queue_rejects_a_zero_size() -> None:
    with pytest.raises(SourceError):
        FrameQueue(0)


def test_status_tracker_reports_each_change_once_and_redacts(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: list[CameraStatus] = []
    tracker = StatusTracker(CameraId("cam"), stall_timeout_s=5.0, on_status=seen.append)
    caplog.set_level(logging.DEBUG, logger="atcs.sources")
    tracker.set_state(CameraState.RECONNECTING, "cannot open rtsp://u:topsecret@h/x")
    tracker.set_state(CameraState.RECONNECTING, "cannot open rtsp://u:topsecret@h/x again")
    tracker.frame_grabbed(time.monotonic())
    tracker.frame_delivered(datetime.now(UTC))
    tracker.frame_delivered(datetime.now(UTC))
    assert [s.state for s in seen] == [CameraState.RECONNECTING, CameraState.STREAMING]
    assert "topsecret" not in caplog.text
    assert all("topsecret" not in s.detail for s in seen)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1


def test_status_reads_stalled_when_frames_stop_even_if_the_thread_is_blocked() -> None:
    tracker = StatusTracker(CameraId("cam"), stall_timeout_s=0.5)
    tracker.frame_grabbed(time.monotonic())
    tracker.frame_delivered(datetime.now(UTC))
    assert tracker.status().state is CameraState.STREAMING
    time.sleep(0.7)
    status = tracker.status()
    assert status.state is CameraState.STALLED
    assert status.fps == 0.0


def test_a_failing_status_callback_does_not_break_the_tracker(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def boom(status: CameraStatus) -> None:
        raise RuntimeError("callback bug")

    tracker = StatusTracker(CameraId("cam"), stall_timeout_s=5.0, on_status=boom)
    tracker.set_state(CameraState.RECONNECTING, "x")
    assert tracker.state is CameraState.RECONNECTING
    assert "status callback failed" in caplog.text
