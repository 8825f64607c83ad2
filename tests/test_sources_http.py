"""HTTP cameras against a real in-process HTTP server serving real clip frames.

The server (http.server on a free loopback port) offers an MJPEG stream with and without
part lengths and a snapshot URL, can require Basic authentication, pause (a stall),
inject a corrupt part, die and come back on the same port.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from atcs.config import CameraConfig
from atcs.sources import CameraReader, SourceKind
from atcs.types import CameraState, CameraStatus
from tests.support.cameras import CameraServer, clip_jpegs
from tests.support.net import free_port
from tests.support.readers import stopped_at_end
from tests.support.wait import poll

CLIP = "tjunction_pole_cars_cyclist.mp4"  # 800x600, 20 fps


@pytest.fixture(scope="module")
def jpegs(media_dir: Path) -> list[bytes]:
    """The first 20 frames of a real clip, JPEG-encoded."""
    return clip_jpegs(media_dir / CLIP)


@pytest.fixture
def camera_server(jpegs: list[bytes]) -> Iterator[CameraServer]:
    server = CameraServer(jpegs, free_port()).start()
    yield server
    server.stop()


@pytest.fixture
def readers() -> Iterator[list[CameraReader]]:
    yield from stopped_at_end()


def _camera(source: str, **overrides: object) -> CameraConfig:
    values: dict[str, object] = {
        "id": "cam-http",
        "source": source,
        "sample_fps": 5.0,
        "stall_timeout_s": 1.0,
        "reconnect_initial_s": 0.1,
        "reconnect_max_s": 0.4,
    }
    values.update(overrides)
    return CameraConfig.model_validate(values)


def _start(
    readers: list[CameraReader], cam: CameraConfig, seen: list[CameraStatus] | None = None
) -> CameraReader:
    reader = CameraReader(cam, queue_size=2, on_status=None if seen is None else seen.append)
    readers.append(reader)
    reader.start()
    return reader


@pytest.mark.parametrize("path", ["/stream.mjpg", "/stream-nolength.mjpg"])
def test_mjpeg_stream_hands_over_real_frames(
    camera_server: CameraServer, readers: list[CameraReader], path: str
) -> None:
    reader = _start(readers, _camera(camera_server.base + path))
    assert reader.kind is SourceKind.MJPEG
    frame = reader.get(timeout_s=5.0)
    assert frame is not None
    assert frame.image.shape == (600, 800, 3)
    assert frame.offset_s is None
    assert poll(lambda: reader.stats().frames_delivered >= 6, 5.0)
    assert reader.status().state is CameraState.STREAMING
    # The server sends 15 frames/s. The rate is taken over the last 5 s, so a reader that
    # started late and read the backlog in one burst reads high at first: wait for it.
    assert poll(lambda: 8.0 <= reader.status().fps <= 20.0, 10.0), reader.status()
    # sampled at 5 of the 15 frames/s received
    assert poll(lambda: (s := reader.stats()).frames_received > 2 * s.frames_delivered, 10.0)


def test_snapshot_url_is_polled_at_the_sample_rate(
    camera_server: CameraServer, readers: list[CameraReader]
) -> None:
    reader = _start(readers, _camera(camera_server.base + "/snapshot.jpg", sample_fps=4.0))
    assert reader.kind is SourceKind.SNAPSHOT
    frame = reader.get(timeout_s=5.0)
    assert frame is not None
    assert frame.image.shape == (600, 800, 3)
    before = len(camera_server.requests)
    time.sleep(2.0)
    polled = len(camera_server.requests) - before
    assert 6 <= polled <= 10  # about 4 GETs per second, no hammering
    assert reader.status().state is CameraState.STREAMING


def test_mjpeg_url_answering_single_images_is_polled_as_a_snapshot(
    camera_server: CameraServer, readers: list[CameraReader], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="atcs.sources")
    reader = _start(readers, _camera(camera_server.base + "/video", sample_fps=4.0))
    assert reader.kind is SourceKind.MJPEG  # guessed from the URL
    assert poll(lambda: reader.stats().frames_delivered >= 3, 5.0)
    assert "polling it as a snapshot URL" in caplog.text


def test_server_dies_and_comes_back(
    camera_server: CameraServer, readers: list[CameraReader], jpegs: list[bytes]
) -> None:
    seen: list[CameraStatus] = []
    reader = _start(readers, _camera(camera_server.base + "/stream.mjpg"), seen)
    assert poll(lambda: reader.status().state is CameraState.STREAMING, 5.0)
    camera_server.stop()
    assert poll(lambda: reader.status().state is CameraState.RECONNECTING, 5.0)
    assert reader.status().fps == 0.0
    revived = CameraServer(jpegs, camera_server.port).start()
    try:
        assert poll(lambda: reader.status().state is CameraState.STREAMING, 5.0)
        delivered = reader.stats().frames_delivered
        assert poll(lambda: reader.stats().frames_delivered > delivered + 2, 5.0)
    finally:
        revived.stop()
    states = [s.state for s in seen]
    assert states[:3] == [CameraState.STREAMING, CameraState.RECONNECTING, CameraState.STREAMING]
    assert reader.stats().reconnects >= 1


def test_stalled_stream_is_marked_and_reconnected(
    camera_server: CameraServer, readers: list[CameraReader]
) -> None:
    seen: list[CameraStatus] = []
    reader = _start(readers, _camera(camera_server.base + "/stream.mjpg"), seen)
    assert poll(lambda: reader.status().state is CameraState.STREAMING, 5.0)
    connections = camera_server.requests.count("/stream.mjpg")
    camera_server.paused.set()  # connection open, nothing sent
    assert poll(lambda: reader.status().state is CameraState.STALLED, 3.0)
    assert poll(lambda: CameraState.STALLED in [s.state for s in seen], 3.0)
    # the watchdog forced a reconnect: a new request reached the server
    assert poll(lambda: camera_server.requests.count("/stream.mjpg") > connections, 3.0)
    camera_server.paused.clear()
    assert poll(lambda: reader.status().state is CameraState.STREAMING, 5.0)
    states = [s.state for s in seen]
    assert states.index(CameraState.STALLED) < len(states) - 1
    assert states[-1] is CameraState.STREAMING


def test_corrupt_frames_are_skipped_and_logged_once(
    camera_server: CameraServer, readers: list[CameraReader], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="atcs.sources")
    cam = _camera(camera_server.base + "/stream.mjpg", sample_fps=30.0)  # decode every frame
    reader = _start(readers, cam)
    assert poll(lambda: reader.status().state is CameraState.STREAMING, 5.0)
    camera_server.corrupt_parts = 3
    assert poll(lambda: reader.stats().frames_corrupt >= 3, 5.0)
    delivered = reader.stats().frames_delivered
    assert poll(lambda: reader.stats().frames_delivered > delivered + 3, 5.0)
    assert reader.status().state is CameraState.STREAMING
    warnings = [r for r in caplog.records if "undecodable frame" in r.getMessage()]
    assert len(warnings) == 1


def test_credentials_work_and_are_never_logged(
    jpegs: list[bytes], readers: list[CameraReader], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="atcs")
    secret = "Xq7-s3cr3t-pw"
    server = CameraServer(jpegs, free_port(), auth=f"operator:{secret}").start()
    seen: list[CameraStatus] = []
    try:
        good = _start(
            readers, _camera(f"http://operator:{secret}@127.0.0.1:{server.port}/stream.mjpg"), seen
        )
        bad = _start(
            readers,
            _camera(
                f"http://operator:wrong-{secret}@127.0.0.1:{server.port}/stream.mjpg", id="bad"
            ),
            seen,
        )
        assert poll(lambda: good.status().state is CameraState.STREAMING, 5.0)
        assert good.get(timeout_s=5.0) is not None
        assert poll(lambda: bad.status().state is CameraState.RECONNECTING, 5.0)
        assert "HTTP 401" in bad.status().detail
    finally:
        for reader in readers:
            reader.stop()
        server.stop()
    for reader in readers:
        assert reader.join(5.0)
    assert "127.0.0.1" in caplog.text
    assert secret not in caplog.text
    assert "operator" not in caplog.text
    for status in [*seen, good.status(), bad.status()]:
        assert secret not in status.detail
    assert secret not in good.source_shown


def test_unreachable_camera_goes_reconnecting_then_offline(
    readers: list[CameraReader], caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[CameraStatus] = []
    port = free_port()  # nothing listens there
    reader = _start(readers, _camera(f"http://127.0.0.1:{port}/stream.mjpg"), seen)
    assert poll(lambda: len(seen) >= 2, 5.0)
    assert [s.state for s in seen[:2]] == [CameraState.RECONNECTING, CameraState.OFFLINE]
    assert "cannot connect" in seen[0].detail
    assert reader.stats().reconnects >= 3
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 2  # one per state change, not per attempt
