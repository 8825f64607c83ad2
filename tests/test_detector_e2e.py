"""The real YOLO model on the real shared clips: what a person sees, ultralytics equality,
mixed-size batches, streaming, and clear errors for unusable models."""

from __future__ import annotations

import importlib
import shutil
import socket
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from atcs.errors import DetectorError
from atcs.types import Detections, Image, VehicleClass
from detectors.base import Detector
from detectors.classes import MODEL_NAMES
from detectors.settings import Engine, YoloSettings
from detectors.ultralytics_yolo import import_ultralytics
from detectors.yolo import YoloDetector

pytestmark = pytest.mark.e2e

PONTIANAK = "pontianak_motorcycles.mp4"  # 1280x720
BEIJING = "intersection_beijing_overpass.mp4"  # 960x540
TJUNCTION = "tjunction_pole_cars_truck.mp4"  # 800x600
ANALOG = "motorway_analog_cctv.avi"  # 320x240


def read_frames(clip: Path, step: int, count: int) -> list[Image]:
    """Every ``step``-th frame of a clip, at most ``count`` of them."""
    capture = cv2.VideoCapture(str(clip))
    assert capture.isOpened(), f"cannot open {clip}"
    frames: list[Image] = []
    index = 0
    while len(frames) < count:
        ok, frame = capture.read()
        if not ok:
            break
        if index % step == 0:
            frames.append(np.asarray(frame, dtype=np.uint8))
        index += 1
    capture.release()
    assert frames, f"no frames decoded from {clip}"
    return frames


@pytest.fixture(scope="module")
def detector(model_path: str) -> Iterator[YoloDetector]:
    with YoloDetector(YoloSettings(model=model_path)) as built:
        yield built


@pytest.fixture(scope="module")
def plain_model(model_path: str) -> Any:
    """The plain ultralytics call every comparison is made against."""
    return import_ultralytics().YOLO(model_path, task="detect")


def plain_detect(model: Any, image: Image) -> Detections:
    """``YOLO(model)(frame, imgsz=640)``, vehicles only, as Detections."""
    result = model(image, imgsz=640, conf=0.25, iou=0.7, verbose=False)[0]
    names = result.names
    keep, classes = [], []
    for index, cls in enumerate(result.boxes.cls.tolist()):
        vehicle = MODEL_NAMES.get(names[int(cls)])
        if vehicle is not None:
            keep.append(index)
            classes.append(int(vehicle))
    return Detections(
        xyxy=result.boxes.xyxy.numpy()[keep],
        confidence=result.boxes.conf.numpy()[keep],
        class_id=np.asarray(classes, dtype=np.int64),
    )


def class_counts(found: Detections) -> Counter[VehicleClass]:
    return Counter(VehicleClass(c) for c in found.class_id.tolist())


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(axis=2)
    area_a = (a[:, 2:] - a[:, :2]).prod(axis=1)
    area_b = (b[:, 2:] - b[:, :2]).prod(axis=1)
    return np.asarray(inter / (area_a[:, None] + area_b[None, :] - inter))


def assert_same_detections(ours: Detections, theirs: Detections, where: str) -> None:
    """Same count per class, and every box has a same-class partner with IoU >= 0.98."""
    assert class_counts(ours) == class_counts(theirs), where
    if not len(ours):
        return
    iou = iou_matrix(ours.xyxy, theirs.xyxy)
    iou[ours.class_id[:, None] != theirs.class_id[None, :]] = 0
    assert iou.max(axis=1).min() >= 0.98, where
    assert iou.max(axis=0).min() >= 0.98, where


def test_pontianak_clip_is_mostly_motorcycles(detector: YoloDetector, media_dir: Path) -> None:
    frames = read_frames(media_dir / PONTIANAK, step=8, count=30)
    totals: Counter[VehicleClass] = Counter()
    for found in detector.detect(frames):
        totals.update(class_counts(found))
    vehicles = sum(totals.values())
    assert vehicles >= 2 * len(frames)
    assert totals[VehicleClass.MOTORCYCLE] >= 0.8 * vehicles, totals


def test_beijing_intersection_has_cars_buses_and_motorcycles(
    detector: YoloDetector, media_dir: Path
) -> None:
    frames = read_frames(media_dir / BEIJING, step=8, count=32)
    totals: Counter[VehicleClass] = Counter()
    for found in detector.detect(frames):
        totals.update(class_counts(found))
        assert found.xyxy[:, [0, 2]].max() <= 960
        assert found.xyxy[:, [1, 3]].max() <= 540
    assert totals[VehicleClass.CAR] >= 10 * len(frames), totals
    assert totals[VehicleClass.BUS] >= 5, totals
    assert totals[VehicleClass.MOTORCYCLE] >= 2, totals
    assert totals[VehicleClass.CAR] > totals[VehicleClass.BUS] + totals[VehicleClass.TRUCK]


@pytest.mark.parametrize(("clip", "step", "count"), [(BEIJING, 10, 24), (PONTIANAK, 9, 24)])
def test_same_detections_as_the_plain_ultralytics_call(
    detector: YoloDetector, plain_model: Any, media_dir: Path, clip: str, step: int, count: int
) -> None:
    frames = read_frames(media_dir / clip, step=step, count=count)
    ours = detector.detect(frames)
    boxes = 0
    for index, (frame, found) in enumerate(zip(frames, ours, strict=True)):
        assert_same_detections(found, plain_detect(plain_model, frame), f"{clip} #{index}")
        boxes += len(found)
    assert boxes >= 2 * len(frames)


def test_mixed_size_batch_gives_boxes_in_each_images_own_pixels(
    detector: YoloDetector, plain_model: Any, media_dir: Path
) -> None:
    frames = []
    for clip in (PONTIANAK, BEIJING, TJUNCTION, ANALOG, BEIJING, PONTIANAK):
        frames += read_frames(media_dir / clip, step=5, count=2)
    sizes = {frame.shape for frame in frames}
    assert len(sizes) == 4
    results = detector.detect(frames)
    assert len(results) == len(frames)
    for index, (frame, found) in enumerate(zip(frames, results, strict=True)):
        height, width = frame.shape[:2]
        assert len(found) > 0, index
        assert found.xyxy.min() >= 0
        assert found.xyxy[:, [0, 2]].max() <= width
        assert found.xyxy[:, [1, 3]].max() <= height
        assert_same_detections(found, plain_detect(plain_model, frame), f"mixed #{index}")
    # the big frame's boxes reach beyond the small frames' extent: not in another's pixels
    assert results[0].xyxy[:, 2].max() > 960


def test_stream_keeps_order_and_matches_detect(detector: YoloDetector, media_dir: Path) -> None:
    frames = read_frames(media_dir / TJUNCTION, step=2, count=16)
    frames += read_frames(media_dir / BEIJING, step=20, count=6)
    items = list(enumerate(frames))
    streamed = list(detector.detect_stream(items, lambda item: item[1]))
    assert [item[0] for item, _ in streamed] == list(range(len(frames)))
    for (index, _), found in streamed:
        expected = detector.detect([frames[index]])[0]
        assert np.array_equal(found.xyxy, expected.xyxy)
        assert np.array_equal(found.class_id, expected.class_id)
    # stopping a stream early leaves the detector usable
    stream = detector.detect_stream(iter(items), lambda item: item[1])
    next(stream)
    stream.close()
    assert len(detector.detect(frames[:3])) == 3
    assert detector.detect([]) == []


def test_images_sharing_a_request_get_the_boxes_they_get_alone(
    model_path: str, media_dir: Path
) -> None:
    # 7 frames of one size go as requests of 4, 2 and 1 images (AMX CPUs batch 4 by default)
    frames = read_frames(media_dir / TJUNCTION, step=3, count=7)
    frames += read_frames(media_dir / BEIJING, step=30, count=2)
    with (
        YoloDetector(YoloSettings(model=model_path, images_per_request=4)) as batched,
        YoloDetector(YoloSettings(model=model_path, images_per_request=1)) as single,
    ):
        together = batched.detect(frames)
        alone = [single.detect([frame])[0] for frame in frames]
    boxes = 0
    for index, (found, expected) in enumerate(zip(together, alone, strict=True)):
        assert_same_detections(found, expected, f"request of several #{index}")
        boxes += len(found)
    assert boxes >= 2 * len(frames)


def test_ultralytics_engine_batches_and_agrees(
    model_path: str, plain_model: Any, media_dir: Path
) -> None:
    frames = read_frames(media_dir / TJUNCTION, step=6, count=5)
    frames += read_frames(media_dir / ANALOG, step=50, count=3)
    settings = YoloSettings(model=model_path, engine=Engine.ULTRALYTICS, batch_max_frames=3)
    with YoloDetector(settings) as generic:
        assert isinstance(generic, Detector)
        assert generic.engine is Engine.ULTRALYTICS
        results = generic.detect(frames)
        streamed = [found for _, found in generic.detect_stream(frames, lambda f: f)]
    for index, (frame, found, again) in enumerate(zip(frames, results, streamed, strict=True)):
        assert_same_detections(found, plain_detect(plain_model, frame), f"generic #{index}")
        assert class_counts(found) == class_counts(again)


def test_only_the_configured_classes_come_back(model_path: str, media_dir: Path) -> None:
    frames = read_frames(media_dir / BEIJING, step=30, count=6)
    settings = YoloSettings(model=model_path, classes=(VehicleClass.BUS, VehicleClass.TRUCK))
    with YoloDetector(settings) as buses:
        found = buses.detect(frames)
    kinds = {VehicleClass(c) for f in found for c in f.class_id.tolist()}
    assert kinds == {VehicleClass.BUS, VehicleClass.TRUCK}


def test_fixed_size_export_letterboxes_to_its_size_and_agrees(
    tmp_path: Path, model_path: str, media_dir: Path
) -> None:
    ov = importlib.import_module("openvino")
    yaml = importlib.import_module("yaml")
    source = next(Path(model_path).glob("*.xml"))
    export = tmp_path / "fixed640_openvino_model"
    export.mkdir()
    model = ov.Core().read_model(str(source))
    model.reshape([1, 3, 640, 640])
    ov.save_model(model, str(export / source.name), compress_to_fp16=False)
    meta = yaml.safe_load((source.parent / "metadata.yaml").read_text())
    meta["args"]["dynamic"] = False
    (export / "metadata.yaml").write_text(yaml.safe_dump(meta))
    frames = read_frames(media_dir / BEIJING, step=25, count=4)
    frames += read_frames(media_dir / PONTIANAK, step=40, count=2)
    plain = import_ultralytics().YOLO(str(export), task="detect")
    with YoloDetector(YoloSettings(model=str(export))) as fixed:
        results = fixed.detect(frames)
    for index, (frame, found) in enumerate(zip(frames, results, strict=True)):
        assert len(found) > 0
        assert_same_detections(found, plain_detect(plain, frame), f"fixed-size #{index}")


def test_closed_detector_refuses_work(model_path: str) -> None:
    built = YoloDetector(YoloSettings(model=model_path))
    assert isinstance(built, Detector)
    assert "openvino" in built.name
    built.close()
    built.close()
    with pytest.raises(DetectorError, match="closed"):
        built.detect([np.zeros((32, 32, 3), np.uint8)])


def _corrupt_export(folder: Path, model_path: str, part: str) -> Path:
    """A copy of the shared export with a broken .xml or a truncated .bin."""
    folder.mkdir()
    source = next(Path(model_path).glob("*.xml"))
    weights = source.with_suffix(".bin")
    if part == "xml":
        (folder / source.name).write_text("<net name='broken'><layers>")
        shutil.copy(weights, folder / weights.name)
    else:
        shutil.copy(source, folder / source.name)
        (folder / weights.name).write_bytes(weights.read_bytes()[:100_000])
    return folder


@pytest.mark.parametrize("engine", [Engine.AUTO, Engine.ULTRALYTICS])
def test_unusable_models_give_one_clear_error(
    tmp_path: Path, model_path: str, engine: Engine
) -> None:
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(np.random.default_rng(0).bytes(4096))
    empty = tmp_path / "empty_openvino_model"
    empty.mkdir()
    broken_xml = _corrupt_export(tmp_path / "xml_openvino_model", model_path, "xml")
    short_bin = _corrupt_export(tmp_path / "bin_openvino_model", model_path, "bin")
    cases = {
        str(tmp_path / "no_such_openvino_model"): "not found",
        str(empty): "holds no model",
        str(garbage): "could not be loaded",
        str(broken_xml): "could not be",
        str(short_bin): "could not be",
    }
    for model, message in cases.items():
        with pytest.raises(DetectorError, match=message) as caught:
            YoloDetector(YoloSettings(model=model, engine=engine))
        text = str(caught.value)
        assert "ATCS_MODEL" in text, text
        assert "Traceback" not in text, text
        assert len(text.splitlines()) == 1, text


def test_model_name_without_internet_says_how_to_use_a_local_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def offline(*args: object, **kwargs: object) -> Any:
        raise OSError("network is switched off for this test")

    monkeypatch.chdir(tmp_path)  # no yolo11n.pt in the working directory
    monkeypatch.setattr(socket, "getaddrinfo", offline)
    monkeypatch.setattr(socket, "create_connection", offline)
    monkeypatch.setattr(socket.socket, "connect", offline)
    with pytest.raises(DetectorError) as caught:
        YoloDetector(YoloSettings(model="yolo11n.pt"))
    text = str(caught.value)
    assert "yolo11n.pt" in text, text
    assert "downloaded" in text, text
    assert "ATCS_MODEL" in text, text
    assert not (tmp_path / "yolo11n.pt").exists()
