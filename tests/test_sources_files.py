"""Recorded footage and image folders, survey and live, on the shared real clips."""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np
import pytest

from atcs.config import CameraConfig
from atcs.errors import SourceError
from atcs.sources import (
    CameraGroup,
    CameraReader,
    SourceKind,
    iter_recorded_frames,
    probe_recording,
)
from atcs.types import CameraState, CameraStatus, Frame
from tests.support.readers import stopped_at_end
from tests.support.wait import poll

SHORT_CLIP = "tjunction_pole_cars_truck.mp4"  # 800x600, 20 fps, 60 frames
AVI_CLIP = "motorway_analog_cctv.avi"  # 320x240, 25 fps, XVID


def _opencv_frames(path: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, image = cap.read()
        if not ok:
            break
        frames.append(image)
    cap.release()
    return frames


@pytest.fixture(scope="module")
def short_clip(media_dir: Path) -> Path:
    return media_dir / SHORT_CLIP


@pytest.fixture(scope="module")
def short_clip_frames(short_clip: Path) -> list[np.ndarray]:
    return _opencv_frames(short_clip)


def _camera(source: Path | str, **overrides: object) -> CameraConfig:
    values: dict[str, object] = {
        "id": "cam1",
        "source": str(source),
        "sample_fps": 10.0,
        "stall_timeout_s": 2.0,
        "reconnect_initial_s": 0.05,
        "reconnect_max_s": 0.2,
    }
    values.update(overrides)
    return CameraConfig.model_validate(values)


@pytest.fixture
def readers() -> Iterator[list[CameraReader]]:
    yield from stopped_at_end()


# -- survey ---------------------------------------------------------------------------


def test_probe_gives_rate_count_and_size_up_front(short_clip: Path, media_dir: Path) -> None:
    info = probe_recording(str(short_clip))
    assert info.kind is SourceKind.FILE
    assert info.fps == pytest.approx(20.0)
    assert info.frame_count == 60
    assert (info.width_px, info.height_px) == (800, 600)
    assert info.duration_s == pytest.approx(3.0)
    avi = probe_recording(str(media_dir / AVI_CLIP))
    assert avi.fps == pytest.approx(25.0)
    assert (avi.width_px, avi.height_px) == (320, 240)


@pytest.mark.parametrize("prefetch", [0, 4])
def test_survey_yields_every_frame_in_order_with_offsets(
    short_clip: Path, short_clip_frames: list[np.ndarray], prefetch: int
) -> None:
    start = datetime(2026, 3, 2, 7, 0, tzinfo=UTC)
    frames = list(
        iter_recorded_frames("cam1", str(short_clip), start_at=start, prefetch_frames=prefetch)
    )
    assert len(frames) == len(short_clip_frames) == 60
    assert [f.seq for f in frames] == list(range(60))
    assert frames[0].camera_id == "cam1"
    assert frames[30].offset_s == pytest.approx(30 / 20.0)
    assert frames[59].captured_at == start + timedelta(seconds=59 / 20.0)
    for i in (0, 17, 59):
        assert np.array_equal(frames[i].image, short_clip_frames[i])
    # frames are independent arrays, not one buffer reused
    assert not np.shares_memory(frames[0].image, frames[1].image)


def test_survey_of_an_avi_reads_to_its_real_end(media_dir: Path) -> None:
    path = media_dir / AVI_CLIP
    expected = len(_opencv_frames(path))
    frames = list(iter_recorded_frames("cam1", str(path)))
    assert len(frames) == expected
    assert frames[-1].offset_s == pytest.approx((expected - 1) / 25.0)
    assert frames[0].image.shape == (240, 320, 3)


def test_survey_stride_keeps_every_nth_frame(short_clip: Path) -> None:
    frames = list(iter_recorded_frames("cam1", str(short_clip), stride=7))
    assert [f.seq for f in frames] == list(range(0, 60, 7))
    assert frames[2].offset_s == pytest.approx(14 / 20.0)


def test_stopping_a_survey_early_ends_the_decoder_thread(short_clip: Path) -> None:
    iterator = iter_recorded_frames("cam1", str(short_clip), prefetch_frames=2)
    first = next(iterator)
    assert first.seq == 0
    assert any(t.name == "atcs-decode" for t in threading.enumerate())
    iterator.close()  # type: ignore[attr-defined]
    assert poll(lambda: not any(t.name == "atcs-decode" for t in threading.enumerate()), 5.0)


def test_survey_of_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "no_such_clip.mp4"
    with pytest.raises(SourceError, match=r"video file not found: .*no_such_clip\.mp4"):
        next(iter_recorded_frames("cam1", str(missing)))
    with pytest.raises(SourceError, match="video file not found"):
        probe_recording(str(missing))


@pytest.mark.parametrize("content", [b"", b"this is not a video\n" * 500], ids=["empty", "text"])
def test_survey_of_a_corrupt_file_is_a_clear_error(tmp_path: Path, content: bytes) -> None:
    bad = tmp_path / "corrupt.mp4"
    bad.write_bytes(content)
    with pytest.raises(SourceError, match=r"cannot decode video file .*corrupt\.mp4"):
        list(iter_recorded_frames("cam1", str(bad)))


def test_survey_of_a_stream_url_is_refused() -> None:
    with pytest.raises(SourceError, match="needs a recorded file or an image folder"):
        next(iter_recorded_frames("cam1", "rtsp://user:pw@127.0.0.1:9/live"))


@pytest.fixture
def image_folder(tmp_path: Path, short_clip_frames: list[np.ndarray]) -> Path:
    """Twelve clip frames as frame_1.jpg .. frame_12.png (mixed types, natural order)."""
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(12):
        suffix = ".png" if i % 3 == 0 else ".jpg"
        cv2.imwrite(str(folder / f"frame_{i + 1}{suffix}"), short_clip_frames[i * 4])
    (folder / "notes.txt").write_text("not an image")
    return folder


def test_image_folder_in_natural_order(
    image_folder: Path, short_clip_frames: list[np.ndarray]
) -> None:
    info = probe_recording(str(image_folder), folder_fps=2.0)
    assert info.kind is SourceKind.FOLDER
    assert info.frame_count == 12
    assert (info.width_px, info.height_px) == (800, 600)
    frames = list(iter_recorded_frames("cam1", str(image_folder), folder_fps=2.0))
    assert [f.seq for f in frames] == list(range(12))
    assert frames[11].offset_s == pytest.approx(5.5)
    # frame_10.png (index 9) comes after frame_9.jpg, not after frame_1
    assert np.array_equal(frames[9].image, short_clip_frames[36])  # PNG: lossless
    assert np.abs(frames[10].image.astype(int) - short_clip_frames[40]).mean() < 4.0


def test_corrupt_image_in_a_folder_is_skipped_with_one_warning(
    image_folder: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (image_folder / "frame_5.jpg").write_bytes(b"\xff\xd8garbage")
    frames = list(iter_recorded_frames("cam1", str(image_folder)))
    assert [f.seq for f in frames] == [0, 1, 2, 3, 5, 6, 7, 8, 9, 10, 11]
    assert "frame_5.jpg" in caplog.text
    assert "1 undecodable frame(s) skipped" in caplog.text


def test_empty_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no images"):
        probe_recording(str(tmp_path))


# -- live reader on recorded files ----------------------------------------------------


def test_realtime_file_plays_at_its_own_rate_and_loops(
    short_clip: Path, readers: list[CameraReader]
) -> None:
    reader = CameraReader(_camera(short_clip, sample_fps=10.0), queue_size=8)
    readers.append(reader)
    started = time.monotonic()
    reader.start()
    frames: list[Frame] = []
    while time.monotonic() - started < 4.5:
        frame = reader.get(timeout_s=1.0)
        if frame is not None:
            frames.append(frame)
    offsets = [f.offset_s or 0.0 for f in frames]
    # the 3 s clip played in real time: about 10 samples per second, then again from 0
    assert 35 <= len(frames) <= 50
    assert offsets[0] == 0.0
    assert any(b < a for a, b in itertools.pairwise(offsets)), "did not loop"
    assert [f.seq for f in frames] == list(range(len(frames)))
    status = reader.status()
    assert status.state is CameraState.STREAMING
    assert 14.0 <= status.fps <= 26.0  # frames read from the 20 fps file per second
    assert status.last_frame_at is not None
    assert reader.stats().frames_dropped == 0


def test_file_without_loop_ends_offline(short_clip: Path, readers: list[CameraReader]) -> None:
    seen: list[CameraStatus] = []
    cam = _camera(short_clip, realtime=False, loop=False, sample_fps=5.0)
    reader = CameraReader(cam, queue_size=2, on_status=seen.append)
    readers.append(reader)
    reader.start()
    frames = []
    while not (reader.finished and len(reader.queue) == 0):
        frame = reader.get(timeout_s=2.0)
        if frame is None:
            break
        frames.append(frame)
        time.sleep(0.01)  # a consumer slower than the decoder: nothing may be dropped
    # realtime = false: sampled by footage time (every 0.25 s of the 20 fps file), no drops
    assert [f.offset_s for f in frames] == pytest.approx([i * 0.2 for i in range(15)])
    assert reader.stats().frames_dropped == 0
    assert reader.join(5.0)
    assert [s.state for s in seen] == [CameraState.STREAMING, CameraState.OFFLINE]
    assert "end of recording" in seen[-1].detail


def test_slow_consumer_gets_recent_frames_and_the_queue_stays_bounded(
    short_clip: Path, readers: list[CameraReader]
) -> None:
    reader = CameraReader(_camera(short_clip, sample_fps=20.0), queue_size=2)
    readers.append(reader)
    reader.start()
    sizes: list[int] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            sizes.append(len(reader.queue))
            time.sleep(0.005)

    watcher = threading.Thread(target=watch)
    watcher.start()
    got: list[Frame] = []
    try:
        for _ in range(6):
            time.sleep(0.4)  # the consumer is far slower than 20 frames/s
            frame = reader.get(timeout_s=1.0)
            assert frame is not None
            got.append(frame)
    finally:
        stop.set()
        watcher.join()
    assert max(sizes) <= 2
    gaps = [b.seq - a.seq for a, b in itertools.pairwise(got)]
    assert min(gaps) > 1, f"no frames were skipped: {gaps}"
    assert reader.stats().frames_dropped > 0
    # what the consumer gets is recent: at most queue_size samples (0.1 s) old
    latest = reader.get_latest()
    assert latest is not None
    assert datetime.now(UTC) - latest.captured_at < timedelta(seconds=0.5)


def test_image_folder_as_a_live_camera(image_folder: Path, readers: list[CameraReader]) -> None:
    reader = CameraReader(_camera(image_folder, sample_fps=20.0, loop=True), queue_size=64)
    readers.append(reader)
    reader.start()
    assert poll(lambda: reader.stats().frames_delivered >= 15, 5.0)
    frames = [reader.get_latest()]
    assert frames[0] is not None
    assert frames[0].image.shape == (600, 800, 3)


def test_missing_file_goes_reconnecting_then_offline_and_recovers(
    tmp_path: Path, short_clip: Path, readers: list[CameraReader], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="atcs.sources")
    target = tmp_path / "late.mp4"
    seen: list[CameraStatus] = []
    cam = _camera(target, reconnect_initial_s=0.05, reconnect_max_s=0.2)
    reader = CameraReader(cam, on_status=seen.append)
    readers.append(reader)
    reader.start()
    assert poll(lambda: len(seen) >= 2, 5.0)
    status = reader.status()
    assert status.state is CameraState.OFFLINE
    assert "video file not found" in status.detail
    target.write_bytes(short_clip.read_bytes())  # the file appears: the camera comes back
    assert poll(lambda: reader.status().state is CameraState.STREAMING, 5.0)
    assert [s.state for s in seen] == [
        CameraState.RECONNECTING,
        CameraState.OFFLINE,
        CameraState.STREAMING,
    ]
    assert all(s.fps == 0.0 for s in seen[:2])
    # one log line per state change, not one per retry
    not_found = [r for r in caplog.records if "video file not found" in r.getMessage()]
    assert len(not_found) == 2  # reconnecting, then offline


def test_group_keeps_good_cameras_running_beside_bad_ones(short_clip: Path, tmp_path: Path) -> None:
    cams = [
        _camera(short_clip, id="good"),
        _camera(tmp_path / "missing.mp4", id="missing"),
        _camera("ftp://user:pw@host/cam.mp4", id="ftp"),
        _camera(short_clip, id="off", enabled=False),
    ]
    group = CameraGroup(cams, queue_size=2)
    group.start()
    try:
        batch: list[Frame] = []
        deadline = time.monotonic() + 5.0
        while len(batch) < 5 and time.monotonic() < deadline:
            batch += group.next_batch(max_frames=4, timeout_s=1.0)
        assert len(batch) >= 5
        assert {f.camera_id for f in batch} == {"good"}
        assert poll(
            lambda: (
                {str(s.camera_id): s.state for s in group.statuses()}["missing"]
                is not CameraState.STREAMING
            ),
            2.0,
        )
        states = {str(s.camera_id): s for s in group.statuses()}
        assert states["good"].state is CameraState.STREAMING
        assert states["missing"].state in (CameraState.RECONNECTING, CameraState.OFFLINE)
        assert states["ftp"].state is CameraState.OFFLINE
        assert "unsupported URL scheme" in states["ftp"].detail
        assert "pw" not in states["ftp"].detail
        assert states["off"].detail == "disabled"
    finally:
        group.stop()
        assert group.join(5.0)
    assert all(s.state is CameraState.OFFLINE for s in group.statuses())


def test_looping_a_recording_without_a_decodable_frame_backs_off(
    tmp_path: Path, readers: list[CameraReader]
) -> None:
    folder = tmp_path / "broken"
    folder.mkdir()
    for i in range(3):
        (folder / f"img{i}.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    seen: list[CameraStatus] = []
    cam = _camera(folder, realtime=False, loop=True, reconnect_initial_s=0.2, reconnect_max_s=5)
    reader = CameraReader(cam, on_status=seen.append)
    readers.append(reader)
    reader.start()
    assert poll(lambda: len(seen) >= 1, 5.0)
    time.sleep(0.5)
    assert seen[0].state is CameraState.RECONNECTING
    assert "no decodable frame" in seen[0].detail
    # backing off (0.2 s, 0.4 s, ...), not spinning through the folder
    assert reader.stats().frames_corrupt <= 3 * 4
    assert reader.stats().frames_delivered == 0
