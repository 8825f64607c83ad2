"""RTSP cameras against a real RTSP server.

Debian's ``rtsp-server-perl`` (RTSP::Server) relays what a publisher announces; Debian's
``ffmpeg`` publishes a real clip to it in real time, looping. The server speaks RTP over
UDP only, so the cameras set ``stream_options = {rtsp_transport = "udp"}`` (the engine's
default is TCP). ffmpeg's own RTSP "listen" mode only receives streams, so it cannot serve
one.
"""

from __future__ import annotations

import logging
import random
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from atcs.config import CameraConfig
from atcs.sources import CameraReader, SourceKind
from atcs.types import CameraState, CameraStatus
from tests.support.net import free_port, port_open
from tests.support.process import stop_process
from tests.support.reencode import reencode
from tests.support.wait import poll

CLIP = "tjunction_pole_cars_truck.mp4"  # H.264, 800x600, 20 fps


def _binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} not found: install the Debian packages ffmpeg and rtsp-server-perl")
    return path


class RtspServer:
    """rtsp-server-perl on free loopback ports, fed by an ffmpeg publisher."""

    def __init__(self, clip: Path, workdir: Path) -> None:
        self.clip = clip
        self.workdir = workdir
        self.client_port = free_port()
        self.source_port = free_port()
        self.rtp_start_port = random.randrange(20000, 60000, 2)
        self.server: subprocess.Popen[bytes] | None = None
        self.publisher: subprocess.Popen[bytes] | None = None

    def url(self, userinfo: str = "") -> str:
        return f"rtsp://{userinfo}127.0.0.1:{self.client_port}/live"

    def start(self) -> RtspServer:
        log = (self.workdir / "rtsp-server.log").open("wb")
        self.server = subprocess.Popen(
            [
                _binary("rtsp-server-perl"),
                "--clientport",
                str(self.client_port),
                "--serverport",
                str(self.source_port),
                "--client_listen_address",
                "127.0.0.1",
                "--source_listen_address",
                "127.0.0.1",
                "--rtp_start_port",
                str(self.rtp_start_port),
            ],
            cwd=self.workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        if not poll(lambda: port_open(self.client_port), 10.0):
            self.stop()
            pytest.fail("rtsp-server-perl did not start listening")
        self.publish()
        return self

    def publish(self) -> None:
        log = (self.workdir / "ffmpeg.log").open("ab")
        self.publisher = subprocess.Popen(
            [
                _binary("ffmpeg"),
                "-nostdin",
                "-hide_banner",
                "-loglevel",
                "error",
                "-re",
                "-stream_loop",
                "-1",
                "-i",
                str(self.clip),
                "-c",
                "copy",
                "-f",
                "rtsp",
                "-rtsp_transport",
                "udp",
                f"rtsp://127.0.0.1:{self.source_port}/live",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def unpublish(self) -> None:
        stop_process(self.publisher, timeout_s=5.0)
        self.publisher = None

    def stop(self) -> None:
        self.unpublish()
        stop_process(self.server, timeout_s=5.0)
        self.server = None


@pytest.fixture
def rtsp_server(media_dir: Path, tmp_path: Path) -> Iterator[RtspServer]:
    server = RtspServer(media_dir / CLIP, tmp_path).start()
    yield server
    server.stop()


def _camera(source: str, **extra: object) -> CameraConfig:
    return CameraConfig.model_validate(
        {
            "id": "cam-rtsp",
            "source": source,
            "sample_fps": 4.0,
            "stream_options": {"rtsp_transport": "udp"},  # the server speaks RTP over UDP only
            "stall_timeout_s": 2.0,
            "reconnect_initial_s": 0.25,
            "reconnect_max_s": 1.0,
            **extra,
        }
    )


def test_rtsp_stream_streams_reconnects_and_hides_credentials(
    rtsp_server: RtspServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="atcs")
    seen: list[CameraStatus] = []
    reader = CameraReader(
        _camera(rtsp_server.url("viewer:Rt5p-s3cret@")), queue_size=2, on_status=seen.append
    )
    assert reader.kind is SourceKind.RTSP
    reader.start()
    try:
        frame = reader.get(timeout_s=15.0)
        assert frame is not None, f"no RTSP frame; states {[s.state for s in seen]}"
        assert frame.image.shape == (600, 800, 3)
        assert poll(lambda: reader.stats().frames_delivered >= 5, 10.0)
        assert reader.status().state is CameraState.STREAMING
        # published in real time at 20 frames/s (the first second may bring a burst)
        assert poll(lambda: 12.0 <= reader.status().fps <= 28.0, 8.0), reader.status()
        # the publisher dies: the stream stops; then it comes back
        rtsp_server.unpublish()
        assert poll(
            lambda: reader.status().state in (CameraState.STALLED, CameraState.RECONNECTING), 10.0
        )
        rtsp_server.publish()
        down = len(seen)
        assert poll(lambda: len(seen) > down and seen[-1].state is CameraState.STREAMING, 20.0), (
            f"states {[s.state for s in seen]}"
        )
    finally:
        reader.stop()
        assert reader.join(10.0)
    states = [s.state for s in seen]
    first = states.index(CameraState.STREAMING)  # the reader may start before the publisher
    again = states.index(CameraState.STREAMING, first + 1)
    assert {CameraState.STALLED, CameraState.RECONNECTING} & set(states[first + 1 : again])
    assert states[-1] is CameraState.OFFLINE  # stopped
    assert "Rt5p-s3cret" not in caplog.text
    assert all("Rt5p-s3cret" not in s.detail for s in seen)


def test_unreachable_rtsp_camera_reconnects_with_a_clear_status() -> None:
    seen: list[CameraStatus] = []
    reader = CameraReader(
        _camera(f"rtsp://admin:pw@127.0.0.1:{free_port()}/live"), on_status=seen.append
    )
    reader.start()
    try:
        assert poll(lambda: len(seen) >= 1, 10.0)
        assert seen[0].state is CameraState.RECONNECTING
        assert "cannot open stream" in seen[0].detail
        assert "rtsp://***@127.0.0.1" in seen[0].detail
    finally:
        reader.stop()
        assert reader.join(10.0)


@pytest.fixture
def rtsp_gop_1s(media_dir: Path, tmp_path: Path) -> Iterator[RtspServer]:
    """The same clip re-encoded with a keyframe every second (20 frames), published."""
    clip = reencode(media_dir / CLIP, tmp_path / "gop20.mp4", gop_frames=20)
    server = RtspServer(clip, tmp_path).start()
    yield server
    server.stop()


def test_rtsp_camera_sampled_once_per_gop_decodes_keyframes_only(
    rtsp_gop_1s: RtspServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="atcs")
    reader = CameraReader(_camera(rtsp_gop_1s.url(), sample_fps=1.0), queue_size=8)
    reader.start()
    try:
        # taken as the detector takes them: a live keyframe camera decodes the next sampled
        # keyframe only once its last frame has been taken
        frames = [reader.get(timeout_s=5.0) for _ in range(4)]
        status = reader.status()
        assert status.decode_mode == "keyframes"
        assert status.gop_s == pytest.approx(1.0, abs=0.05)
        # every packet is read (the frame rate and the stall watchdog see 20 frames/s, once
        # the server's first burst has left the 5-s rate window) ...
        assert poll(lambda: 12.0 <= reader.status().fps <= 28.0, 10.0), reader.status()
    finally:
        reader.stop()
        assert reader.join(10.0)
    # ... and one keyframe per second is decoded and handed out
    stats = reader.stats()
    assert stats.frames_received > 10 * stats.frames_delivered
    assert all(f is not None and f.image.shape == (600, 800, 3) for f in frames)
    assert "decoding keyframes only" in caplog.text
