"""Decode only what is analysed: keyframes of real clips, and the fall back to every frame.

The shared clips are re-encoded with the FFmpeg command-line tool (libx264) with chosen
keyframes; ``ffprobe`` gives the keyframes' true timestamps independently of PyAV.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from atcs.config import CameraConfig
from atcs.sources import AvGrabber, CameraReader, DecodeMode, SourceKind
from atcs.sources import reader as reader_module
from atcs.sources.grabber import Grabber
from atcs.types import Frame
from tests.support.reencode import keyframe_times_s, reencode
from tests.support.wait import poll

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def gop_1s(media_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Pontianak (1280x720, 29.97 fps, B-frames) with a keyframe every 30 frames."""
    out = tmp_path_factory.mktemp("gop1") / "pontianak_gop30.mp4"
    return reencode(media_dir / "pontianak_motorcycles.mp4", out, gop_frames=30)


@pytest.fixture(scope="module")
def gop_shortens(media_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Beijing (30 fps) with keyframes at 0 s and 3 s, then every second."""
    out = tmp_path_factory.mktemp("gopvar") / "beijing_keys.mp4"
    return reencode(
        media_dir / "intersection_beijing_overpass.mp4", out, keyframes_at_s=(0, 3, 4, 5, 6, 7, 8)
    )


@pytest.fixture(scope="module")
def gop_1s_3s(media_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 3 s of Pontianak (90 frames at 29.97 fps), a keyframe every 30 frames."""
    out = tmp_path_factory.mktemp("gop1short") / "pontianak_3s_gop30.mp4"
    return reencode(
        media_dir / "pontianak_motorcycles.mp4", out, gop_frames=30, seconds=90 * 167 / 5015
    )


def _every_frame(clip: Path) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(clip))
    frames = []
    while True:
        ok, image = capture.read()
        if not ok:
            break
        frames.append(image)
    capture.release()
    return frames


def test_keyframe_decoding_yields_the_keyframes_at_their_true_timestamps(gop_1s: Path) -> None:
    truth = keyframe_times_s(gop_1s)
    assert len(truth) == 8  # 226 frames, one keyframe per 30
    grabber = AvGrabber(str(gop_1s), SourceKind.FILE, policy="auto", max_gop_s=1.1)
    grabber.open()
    times, images = [], []
    try:
        while grabber.grab():
            times.append(grabber.offset_s)
            images.append(grabber.retrieve())
    finally:
        grabber.close()
    assert times == pytest.approx(truth, abs=1e-6)
    assert grabber.mode is DecodeMode.KEYFRAMES
    assert grabber.mode_changes == 0
    assert grabber.gop_s == pytest.approx(30 * 167 / 5015, abs=1e-6)  # 30 frames at 29.97
    # each keyframe decoded on its own is the very frame a full decode gives at that time
    every = _every_frame(gop_1s)
    fps = 5015 / 167
    for at_s, image in zip(times, images, strict=True):
        assert at_s is not None
        assert np.array_equal(image, every[round(at_s * fps)])


def _read(camera: CameraConfig) -> tuple[list[Frame], CameraReader]:
    reader = CameraReader(camera, queue_size=4)
    reader.start()
    frames = []
    while (frame := reader.get(timeout_s=10.0)) is not None:
        frames.append(frame)
    assert reader.join(10.0)
    return frames, reader


def _camera(source: Path, **extra: object) -> CameraConfig:
    return CameraConfig.model_validate(
        {"id": "cam-k", "source": str(source), "realtime": False, "loop": False, **extra}
    )


def test_a_camera_sampled_once_per_gop_decodes_keyframes_only(
    gop_1s: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="atcs")
    frames, reader = _read(_camera(gop_1s, sample_fps=1.0))
    assert [f.offset_s for f in frames] == pytest.approx(keyframe_times_s(gop_1s), abs=1e-6)
    status = reader.status()
    assert status.decode_mode == "keyframes"
    assert status.gop_s == pytest.approx(1.0, abs=0.01)
    assert reader.stats().frames_received == 226  # every packet read, only 8 decoded
    assert "decoding keyframes only" in caplog.text


def test_a_long_gop_falls_back_to_full_decoding_and_says_so(
    media_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="atcs")
    clip = media_dir / "pontianak_motorcycles.mp4"  # keyframes at 0 s and 4.995 s
    frames, reader = _read(_camera(clip, sample_fps=1.0))
    # still one frame per second of footage: every frame is decoded instead
    offsets = [f.offset_s for f in frames]
    assert len(offsets) == 8
    for k, offset in enumerate(offsets):
        assert offset == pytest.approx(k, abs=1 / 29.97 + 1e-6)
    status = reader.status()
    assert status.decode_mode == "full"
    assert status.gop_s == pytest.approx(4.995, abs=0.01)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert any(
        "decoding every frame" in r.getMessage() and "GOP" in r.getMessage() for r in warnings
    )


def test_forced_keyframes_on_a_long_gop_sample_at_the_keyframe_rate(media_dir: Path) -> None:
    clip = media_dir / "pontianak_motorcycles.mp4"
    frames, reader = _read(_camera(clip, sample_fps=1.0, decode="keyframes"))
    assert [f.offset_s for f in frames] == pytest.approx([0.0, 4.995], abs=1e-3)
    assert reader.status().decode_mode == "keyframes"


def test_full_decoding_is_kept_when_asked(gop_1s: Path) -> None:
    frames, reader = _read(_camera(gop_1s, sample_fps=1.0, decode="full"))
    assert len(frames) == 8
    assert reader.status().decode_mode == "full"


def test_auto_goes_back_to_keyframes_once_the_gop_fits(
    gop_shortens: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="atcs")
    assert keyframe_times_s(gop_shortens) == pytest.approx([0, 3, 4, 5, 6, 7, 8])
    grabber = AvGrabber(str(gop_shortens), SourceKind.FILE, policy="auto", max_gop_s=1.1)
    grabber.open()
    modes: list[tuple[float, DecodeMode]] = []
    try:
        while grabber.grab():
            at_s = grabber.offset_s
            assert at_s is not None
            grabber.retrieve()
            if not modes or modes[-1][1] is not grabber.mode:
                modes.append((at_s, grabber.mode))
    finally:
        grabber.close()
    # keyframes, every frame from the long first GOP on, keyframes again after two 1-s GOPs
    assert [m for _, m in modes] == [DecodeMode.KEYFRAMES, DecodeMode.FULL, DecodeMode.KEYFRAMES]
    assert 4.9 < modes[2][0] <= 5.0  # the frames decoded before the keyframe at 5 s, then it
    frames, reader = _read(_camera(gop_shortens, sample_fps=1.0))
    assert [f.offset_s for f in frames] == pytest.approx([0, 1, 2, 3, 4, 5, 6, 7, 8], abs=0.04)
    assert reader.status().decode_mode == "keyframes"
    assert "decoding every frame" in caplog.text


def test_a_live_camera_skips_the_keyframes_its_waiting_frame_would_replace(
    gop_1s_3s: Path,
) -> None:
    truth = keyframe_times_s(gop_1s_3s)
    assert truth == pytest.approx([0.0, 30 * 167 / 5015, 60 * 167 / 5015], abs=1e-6)
    loop_s = 90 * 167 / 5015
    # played as a live feed (3 s, looped), sampled once per keyframe, nobody taking frames
    camera = _camera(gop_1s_3s, sample_fps=1.0, realtime=True, loop=True)
    reader = CameraReader(camera, queue_size=2)
    reader.start()
    try:
        # some 6 s of the feed: six keyframes after the first, every packet of 30 frames/s
        # read (polled, so the reader's start-up time does not count)
        assert poll(
            lambda: (s := reader.stats()).keyframes_skipped >= 6 and s.frames_received > 180,
            20.0,
        ), reader.stats()
        stats = reader.stats()
        # the first keyframe waits; the next ones are read but not decoded, none dropped,
        # and the loop goes on (a play whose keyframes were all skipped is not a failure)
        assert len(reader.queue) == 1
        assert 6 <= stats.keyframes_skipped <= 8
        assert stats.frames_dropped == 0
        assert stats.frames_delivered == 1
        assert stats.reconnects == 0
        assert stats.frames_received > 180  # every packet of the 30 fps stream is read
        first = reader.get(timeout_s=0.0)
        assert first is not None
        assert first.offset_s == pytest.approx(0.0, abs=1e-6)
        # once the waiting frame is taken, the next keyframe is decoded: the current one
        # (third play), stamped with the time it was read, at its own position in the clip
        second = reader.get(timeout_s=3.0)
        assert second is not None
        taken_at = datetime.now(UTC)
        assert second.offset_s is not None
        assert min(abs(second.offset_s - t) for t in truth) < 1e-6
        played_s = (second.captured_at - first.captured_at).total_seconds()
        assert played_s == pytest.approx(2 * loop_s + second.offset_s, abs=0.5)
        assert (taken_at - second.captured_at).total_seconds() < 0.5
    finally:
        reader.stop()
        assert reader.join(10.0)


def test_a_live_camera_decoding_every_frame_keeps_the_latest_frames(gop_1s: Path) -> None:
    camera = _camera(gop_1s, sample_fps=1.0, realtime=True, loop=True, decode="full")
    reader = CameraReader(camera, queue_size=2)
    reader.start()
    try:
        time.sleep(3.5)
        stats = reader.stats()
        assert stats.keyframes_skipped == 0
        assert stats.frames_delivered >= 3
        assert stats.frames_dropped == stats.frames_delivered - 2
    finally:
        reader.stop()
        assert reader.join(10.0)


class _Openings:
    """Every grabber a reader makes, with the mode it started in (a spy on the real ones)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.grabbers: list[AvGrabber] = []
        self.start_modes: list[DecodeMode] = []
        make = reader_module.make_grabber

        def spy(*args: Any, **kwargs: Any) -> Grabber:
            grabber = make(*args, **kwargs)
            assert isinstance(grabber, AvGrabber)
            self.grabbers.append(grabber)
            self.start_modes.append(grabber.mode)
            return grabber

        monkeypatch.setattr(reader_module, "make_grabber", spy)


def _play_loops(
    source: Path, loops: int, at_loop_start: Callable[[int], None] | None = None
) -> CameraReader:
    """Read ``source`` looped at 1 frame/s of footage until ``loops`` plays started again.

    ``at_loop_start(n)`` runs when the first frame of play ``n`` (from 1) is taken, while
    the reader (queue of one, not real time) is at most a few frames into that play.
    Returns the stopped reader.
    """
    reader = CameraReader(_camera(source, sample_fps=1.0, loop=True), queue_size=1)
    reader.start()
    try:
        plays, last_offset = 0, -1.0
        while plays <= loops:
            frame = reader.get(timeout_s=30.0)
            assert frame is not None
            assert frame.offset_s is not None
            if frame.offset_s < last_offset:
                plays += 1
                if at_loop_start is not None:
                    at_loop_start(plays)
            last_offset = frame.offset_s
    finally:
        reader.stop()
        assert reader.join(10.0)
    return reader


def _decisions(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "decoding" in r.getMessage()]


def test_a_looped_long_gop_clip_warns_once_and_replays_decoding_every_frame(
    media_dir: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.INFO, logger="atcs")
    openings = _Openings(monkeypatch)
    clip = media_dir / "pontianak_motorcycles.mp4"  # keyframes at 0 s and 4.995 s
    status = _play_loops(clip, loops=3).status()
    assert status.decode_mode == "full"
    assert status.gop_s == pytest.approx(4.995, abs=0.01)
    decisions = _decisions(caplog)
    assert len(decisions) == 1, decisions
    assert "decoding every frame: its GOP" in decisions[0]
    assert [r.levelno for r in caplog.records if "decoding" in r.getMessage()] == [logging.WARNING]
    # the first play starts with keyframes and falls back; the next ones start decoding
    # every frame and never change mode
    assert len(openings.grabbers) >= 4
    assert openings.start_modes[0] is DecodeMode.KEYFRAMES
    assert openings.grabbers[0].mode_changes == 1
    assert set(openings.start_modes[1:]) == {DecodeMode.FULL}
    assert all(g.mode_changes == 0 for g in openings.grabbers[1:4])


def test_a_gop_changed_between_plays_is_found_and_logged(
    media_dir: Path,
    gop_1s: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.INFO, logger="atcs")
    openings = _Openings(monkeypatch)
    long_gop = tmp_path / "long_gop.mp4"
    shutil.copyfile(media_dir / "pontianak_motorcycles.mp4", long_gop)
    camera = tmp_path / "camera.mp4"  # the camera's source, re-encoded between plays
    shutil.copyfile(long_gop, camera)

    def reconfigure(play: int) -> None:
        # the grabber of this play has the old file open; the next opening gets the new one
        if play == 1:
            shutil.copyfile(gop_1s, tmp_path / "next.mp4")
            os.replace(tmp_path / "next.mp4", camera)
        elif play == 3:
            shutil.copyfile(long_gop, tmp_path / "next.mp4")
            os.replace(tmp_path / "next.mp4", camera)

    _play_loops(camera, loops=5, at_loop_start=reconfigure)
    # plays 0-1 long GOP, 2-3 1 s GOP, 4-5 long again: each change logged once, no more
    decisions = _decisions(caplog)
    assert len(decisions) == 3, decisions
    assert "decoding every frame: its GOP" in decisions[0]
    assert "decoding keyframes only (GOP 1.00 s" in decisions[1]
    assert "decoding every frame: its GOP" in decisions[2]
    assert openings.start_modes[:6] == [
        DecodeMode.KEYFRAMES,  # nothing known yet: falls back
        DecodeMode.FULL,
        DecodeMode.FULL,  # the new 1 s GOP is measured: back to keyframes
        DecodeMode.KEYFRAMES,
        DecodeMode.KEYFRAMES,  # the long GOP again: falls back
        DecodeMode.FULL,
    ]
    assert [g.mode_changes for g in openings.grabbers[:6]] == [1, 0, 1, 0, 1, 0]


def test_a_camera_sampled_faster_than_any_gop_decodes_every_frame_without_a_warning(
    media_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """5 frames/s needs a keyframe every 0.22 s: no camera GOP fits, so no advice to set one."""
    caplog.set_level(logging.INFO, logger="atcs")
    clip = media_dir / "pontianak_motorcycles.mp4"
    _frames, reader = _read(_camera(clip, sample_fps=5.0))
    assert reader.status().decode_mode == "full"
    decisions = _decisions(caplog)
    assert len(decisions) == 1, decisions
    assert 'decode = "full"' in decisions[0]
    levels = [r.levelno for r in caplog.records if "decoding" in r.getMessage()]
    assert levels == [logging.INFO]


def test_the_gop_advice_names_the_longest_gop_that_fits(
    media_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="atcs")
    clip = media_dir / "pontianak_motorcycles.mp4"  # GOP 5 s, sampled once a second
    _read(_camera(clip, sample_fps=1.0))
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    decoding = [w for w in warnings if "decoding every frame" in w]
    assert len(decoding) == 1, warnings
    assert "set the camera's GOP to at most 1.1 s" in decoding[0]
