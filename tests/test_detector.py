"""Detector building blocks (pure code): letterbox, NMS and decoding against ultralytics'
own functions, class mapping, model-setting checks and settings validation."""

from __future__ import annotations

import importlib
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import torch
from ultralytics.data.augment import LetterBox
from ultralytics.utils import nms as ul_nms
from ultralytics.utils import ops as ul_ops

from atcs.errors import DetectorError
from atcs.types import Detections, Image, VehicleClass
from detectors.base import Regions, batched, stream_in_batches
from detectors.classes import ClassMap
from detectors.crop import PixelBox
from detectors.letterbox import boxes_to_image, letterbox_geometry, letterbox_into
from detectors.model_files import ModelKind, resolve_model, short_error
from detectors.openvino_model import cpu_has_amx_int8, ultralytics_runs_static
from detectors.openvino_yolo import images_per_request, openvino_device, request_sizes
from detectors.postprocess import DecodeSettings, decode, decode_end_to_end, nms
from detectors.settings import YoloSettings
from detectors.yolo import YoloDetector

COCO_NAMES = {
    0: "person",
    1: "bicycle",
    2: "car",
    3: "motorcycle",
    4: "airplane",
    5: "bus",
    6: "train",
    7: "truck",
    8: "boat",
    9: "traffic light",
}
COCO_VEHICLE_IDS = {1: VehicleClass.BICYCLE, 2: VehicleClass.CAR, 3: VehicleClass.MOTORCYCLE}
COCO_VEHICLE_IDS |= {5: VehicleClass.BUS, 7: VehicleClass.TRUCK}

SIZES = [(720, 1280), (540, 960), (600, 800), (240, 320), (1080, 1920), (481, 641), (640, 640)]
SIZES += [(3000, 7), (5, 900), (333, 333), (1000, 300)]


@pytest.mark.parametrize(("height", "width"), SIZES)
@pytest.mark.parametrize("rect", [True, False])
def test_letterbox_is_pixel_identical_to_ultralytics(height: int, width: int, rect: bool) -> None:
    rng = np.random.default_rng(height * 7919 + width)
    image = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    expected = LetterBox((640, 640), auto=rect, stride=32)(image=image)
    assert isinstance(expected, np.ndarray)
    geometry = letterbox_geometry(height, width, (640, 640), 32, rect)
    out = np.zeros((geometry.input_height_px, geometry.input_width_px, 3), dtype=np.uint8)
    letterbox_into(image, geometry, out)
    assert out.shape == expected.shape
    assert np.array_equal(out, expected)


@pytest.mark.parametrize(("height", "width"), SIZES)
def test_boxes_map_back_like_ultralytics_scale_boxes(height: int, width: int) -> None:
    geometry = letterbox_geometry(height, width, (640, 640), 32, True)
    rng = np.random.default_rng(1)
    xy = rng.uniform(-20, 660, size=(50, 2)).astype(np.float32)
    wh = rng.uniform(1, 200, size=(50, 2)).astype(np.float32)
    boxes = np.concatenate([xy, xy + wh], axis=1)
    expected = np.asarray(
        ul_ops.scale_boxes(geometry.input_shape, torch.from_numpy(boxes.copy()), (height, width))
    )
    ours = boxes.copy()
    boxes_to_image(ours, geometry)
    np.testing.assert_allclose(ours, expected, rtol=1e-6, atol=1e-3)
    assert ours[:, [0, 2]].max() <= width
    assert ours[:, [1, 3]].max() <= height
    assert ours.min() >= 0


def test_letterbox_rejects_wrong_buffer_and_empty_image() -> None:
    geometry = letterbox_geometry(720, 1280, (640, 640), 32, True)
    assert geometry.input_shape == (384, 640)
    with pytest.raises(DetectorError):
        letterbox_into(
            np.zeros((720, 1280, 3), np.uint8), geometry, np.zeros((640, 640, 3), np.uint8)
        )
    with pytest.raises(DetectorError):
        letterbox_geometry(0, 10, (640, 640), 32, True)


def _clustered_boxes(rng: np.random.Generator, n: int) -> np.ndarray:
    centres = rng.uniform(0, 600, size=(max(1, n // 6), 2))
    pick = centres[rng.integers(0, len(centres), size=n)]
    xy = pick + rng.normal(0, 8, size=(n, 2))
    wh = rng.uniform(10, 80, size=(n, 2))
    return np.concatenate([xy, xy + wh], axis=1).astype(np.float32)


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("threshold", [0.45, 0.7])
def test_nms_keeps_exactly_what_torchvision_keeps(seed: int, threshold: float) -> None:
    rng = np.random.default_rng(seed)
    boxes = _clustered_boxes(rng, 300)
    scores = rng.uniform(0.2, 1.0, size=300).astype(np.float32)
    torchvision = importlib.import_module("torchvision")  # what ultralytics' NMS calls
    expected = torchvision.ops.nms(torch.from_numpy(boxes), torch.from_numpy(scores), threshold)
    assert nms(boxes, scores, threshold).tolist() == expected.tolist()


def test_nms_of_nothing_and_of_disjoint_boxes() -> None:
    assert nms(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), 0.5).tolist() == []
    boxes = np.array([[0, 0, 10, 10], [20, 20, 30, 30]], dtype=np.float32)
    assert nms(boxes, np.array([0.5, 0.9], np.float32), 0.5).tolist() == [1, 0]


def _raw_output(rng: np.random.Generator, candidates: int, classes: int) -> np.ndarray:
    boxes = _clustered_boxes(rng, candidates)
    xywh = np.concatenate([(boxes[:, :2] + boxes[:, 2:]) / 2, boxes[:, 2:] - boxes[:, :2]], 1)
    scores = rng.uniform(0, 0.2, size=(candidates, classes))
    hot = rng.random(candidates) < 0.4
    scores[hot, rng.integers(0, classes, size=hot.sum())] = rng.uniform(0.2, 1.0, hot.sum())
    return np.concatenate([xywh, scores], axis=1).T.astype(np.float32).copy()


@pytest.mark.parametrize("seed", range(8))
def test_decode_matches_ultralytics_nms_then_scale(seed: int) -> None:
    rng = np.random.default_rng(seed)
    raw = _raw_output(rng, 2000, len(COCO_NAMES))
    class_map = ClassMap(COCO_NAMES, tuple(VehicleClass))
    settings = DecodeSettings(confidence=0.25, nms_iou=0.7, max_detections=300, class_map=class_map)
    geometry = letterbox_geometry(720, 1280, (640, 640), 32, True)
    ours = decode(raw, settings, geometry)
    expected = ul_nms.non_max_suppression(
        torch.from_numpy(raw[None]), 0.25, 0.7, classes=sorted(COCO_VEHICLE_IDS), max_det=300
    )[0]
    expected[:, :4] = ul_ops.scale_boxes(geometry.input_shape, expected[:, :4], (720, 1280))
    assert len(ours) == len(expected) > 10
    np.testing.assert_allclose(ours.xyxy, expected[:, :4].numpy(), atol=1e-3)
    np.testing.assert_array_equal(ours.confidence, expected[:, 4].numpy())
    mapped = [COCO_VEHICLE_IDS[int(c)] for c in expected[:, 5].tolist()]
    assert ours.class_id.tolist() == [int(v) for v in mapped]


def test_decode_drops_boxes_whose_best_class_is_unwanted() -> None:
    raw = np.zeros((4 + len(COCO_NAMES), 3), dtype=np.float32)
    raw[:4] = [[100, 300, 500], [100, 100, 100], [20, 20, 20], [20, 20, 20]]
    raw[4 + 0, 0] = 0.9  # a person, even though it also scores as a car
    raw[4 + 2, 0] = 0.8
    raw[4 + 3, 1] = 0.6  # a motorcycle
    raw[4 + 7, 2] = 0.25  # a truck exactly at the threshold: not kept (strictly above)
    class_map = ClassMap(
        COCO_NAMES, (VehicleClass.CAR, VehicleClass.MOTORCYCLE, VehicleClass.TRUCK)
    )
    settings = DecodeSettings(confidence=0.25, nms_iou=0.7, max_detections=300, class_map=class_map)
    geometry = letterbox_geometry(640, 640, (640, 640), 32, True)
    found = decode(raw, settings, geometry)
    assert found.class_id.tolist() == [VehicleClass.MOTORCYCLE]
    np.testing.assert_allclose(found.xyxy, [[290, 90, 310, 110]])


def test_decode_end_to_end_filters_and_maps_back() -> None:
    raw = np.array(
        [
            [10, 20, 110, 220, 0.9, 2],  # car
            [0, 0, 5, 5, 0.8, 0],  # person: dropped
            [50, 50, 60, 60, 0.2, 3],  # below threshold
            [300, 40, 340, 100, 0.5, 3],  # motorcycle
        ],
        dtype=np.float32,
    )
    class_map = ClassMap(COCO_NAMES, tuple(VehicleClass))
    settings = DecodeSettings(confidence=0.25, nms_iou=0.7, max_detections=300, class_map=class_map)
    geometry = letterbox_geometry(1280, 1280, (640, 640), 32, True)
    found = decode_end_to_end(raw, settings, geometry)
    assert found.class_id.tolist() == [VehicleClass.CAR, VehicleClass.MOTORCYCLE]
    np.testing.assert_allclose(found.xyxy[0], [20, 40, 220, 440])


def test_class_map_goes_by_name_and_respects_wanted_classes() -> None:
    names = {0: "Motorbike", 1: "car", 2: "pedestrian", 3: "big_truck", 4: "bus"}
    class_map = ClassMap(names, (VehicleClass.MOTORCYCLE, VehicleClass.BUS))
    assert class_map.lookup.tolist() == [VehicleClass.MOTORCYCLE, -1, -1, -1, VehicleClass.BUS]
    assert class_map.model_ids == (0, 4)
    with pytest.raises(DetectorError, match="none of the wanted vehicle classes"):
        ClassMap({0: "person", 1: "dog"}, tuple(VehicleClass))
    with pytest.raises(DetectorError):
        ClassMap({}, tuple(VehicleClass))


def test_resolve_model_says_what_a_setting_is(tmp_path: Path) -> None:
    export = tmp_path / "m_openvino_model"
    export.mkdir()
    (export / "m.xml").write_text("<net/>")
    (export / "m.bin").write_bytes(b"\0")
    assert resolve_model(str(export)).kind is ModelKind.OPENVINO
    assert resolve_model(str(export / "m.xml")).path == (export / "m.xml").resolve()
    weights = tmp_path / "w.pt"
    weights.write_bytes(b"not really")
    assert resolve_model(str(weights)).kind is ModelKind.FILE
    assert resolve_model("yolo11n.pt").kind is ModelKind.NAME


def _unusable(kind: str, folder: Path) -> Path:
    if kind == "missing":
        return folder / "missing" / "model.pt"
    if kind == "empty folder":
        return folder
    if kind == "empty file":
        (folder / "empty.pt").write_bytes(b"")
        return folder / "empty.pt"
    (folder / "lone.xml").write_text("<net/>")
    return folder if kind == "xml folder without bin" else folder / "lone.xml"


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("missing", "not found"),
        ("empty folder", "holds no model"),
        ("empty file", "is empty"),
        ("xml folder without bin", "not its weights"),
        ("xml without bin", "no weights"),
    ],
)
def test_resolve_model_rejects_unusable_paths(tmp_path: Path, kind: str, message: str) -> None:
    with pytest.raises(DetectorError, match=message) as caught:
        resolve_model(str(_unusable(kind, tmp_path)))
    assert "ATCS_MODEL" in str(caught.value)


def test_resolve_model_rejects_unreadable_and_blank(tmp_path: Path) -> None:
    with pytest.raises(DetectorError, match="no detector model"):
        resolve_model("  ")
    if os.geteuid() != 0:  # root reads everything
        locked = tmp_path / "locked.pt"
        locked.write_bytes(b"x")
        locked.chmod(0)
        with pytest.raises(DetectorError, match="cannot be read"):
            resolve_model(str(locked))


def test_settings_reject_bad_values_all_at_once() -> None:
    with pytest.raises(DetectorError) as caught:
        YoloSettings(model="m", confidence=1.5, nms_iou=0, classes=(), batch_max_frames=0)
    text = str(caught.value)
    for field in ("confidence", "nms_iou", "classes", "batch_max_frames"):
        assert field in text
    assert YoloSettings(model="m", device="intel:gpu").on_cpu_or_intel
    assert not YoloSettings(model="m", device="cuda:0").on_cpu_or_intel


def test_openvino_device_names_and_batching_policy() -> None:
    assert openvino_device("cpu") == "CPU"
    assert openvino_device("intel:gpu") == "GPU"
    assert openvino_device("intel") == "AUTO"
    with pytest.raises(DetectorError):
        openvino_device("cuda:0")
    settings = YoloSettings(model="m", batch_max_frames=6)
    assert images_per_request(None, "CPU", settings) == 1
    assert images_per_request(None, "GPU", settings) == 6
    assert images_per_request(2, "CPU", settings) == 2
    assert images_per_request(None, "CPU", settings, amx=True) == 4
    forced = YoloSettings(model="m", images_per_request=3)
    assert images_per_request(None, "CPU", forced, amx=True) == 3
    assert images_per_request(2, "CPU", forced) == 2  # a fixed-batch export takes its batch
    with pytest.raises(DetectorError, match="images_per_request"):
        YoloSettings(model="m", images_per_request=0)


def test_request_sizes_are_powers_of_two_unless_the_export_fixes_the_batch() -> None:
    assert request_sizes(7, 4) == [4, 2, 1]
    assert request_sizes(9, 4) == [4, 4, 1]
    assert request_sizes(3, 1) == [1, 1, 1]
    assert request_sizes(6, 6) == [4, 2]
    assert request_sizes(0, 4) == []
    assert {s for n in range(1, 40) for s in request_sizes(n, 4)} == {1, 2, 4}
    assert request_sizes(7, 3, fixed=True) == [3, 3, 1]  # the last request is padded


def test_batched_and_stream_in_batches_keep_order() -> None:
    assert list(batched(range(7), 3)) == [[0, 1, 2], [3, 4, 5], [6]]
    calls: list[int] = []
    seen_regions: list[Regions | None] = []

    def fake_detect(images: Sequence[Image], regions: Regions | None) -> list[Detections]:
        calls.append(len(images))
        seen_regions.append(regions)
        return [_marker(int(image[0, 0, 0])) for image in images]

    items = [(i, np.full((2, 2, 3), i, np.uint8)) for i in range(5)]
    out = list(stream_in_batches(fake_detect, items, lambda item: item[1], 2))
    assert [item[0] for item, _ in out] == [0, 1, 2, 3, 4]
    assert [float(found.confidence[0]) for _, found in out] == [0, 1, 2, 3, 4]
    assert calls == [2, 2, 1]
    assert seen_regions == [None, None, None]
    box = PixelBox(0.0, 0.0, 1.0, 1.0)
    list(stream_in_batches(fake_detect, items, lambda item: item[1], 2, lambda _: box))
    assert seen_regions[3:] == [[box, box], [box, box], [box]]


def _marker(value: int) -> Detections:
    return Detections(
        xyxy=np.zeros((1, 4), np.float32),
        confidence=np.array([value], np.float32),
        class_id=np.zeros(1, np.int64),
    )


def test_yolo_detector_rejects_missing_model_before_loading_anything(tmp_path: Path) -> None:
    with pytest.raises(DetectorError, match="not found"):
        YoloDetector(YoloSettings(model=str(tmp_path / "nope_openvino_model")))


def test_short_error_keeps_one_readable_line() -> None:
    cpp = RuntimeError("Exception from src/core.cpp:84:\nUnable to read the model: m.xml\n")
    assert short_error(cpp) == "Unable to read the model: m.xml"
    emoji = TypeError("ERROR \u274c\ufe0f w.pt is not a loadable checkpoint.\nsee docs")
    assert short_error(emoji) == "w.pt is not a loadable checkpoint"
    assert short_error(ValueError("")) == "ValueError"


@pytest.mark.parametrize(
    ("flags", "expected"),
    [("fpu sse avx512_vnni amx_bf16 amx_tile amx_int8 arch", True), ("fpu sse avx2", False)],
)
def test_amx_flag_read_from_cpuinfo(tmp_path: Path, flags: str, expected: bool) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {flags}\n", encoding="utf-8")
    assert cpu_has_amx_int8(cpuinfo) is expected
    assert cpu_has_amx_int8(tmp_path / "missing") is False


def test_square_static_only_for_dynamic_int8_on_amx_cpu(model_path: str) -> None:
    """ultralytics' rule: a dynamic INT8 export on an AMX CPU runs as a static square model."""
    ov = importlib.import_module("openvino")
    xml = next(Path(model_path).glob("*.xml"))
    model = ov.Core().read_model(str(xml))
    assert ultralytics_runs_static(model, "CPU", amx_int8=True)
    assert not ultralytics_runs_static(model, "CPU", amx_int8=False)
    assert not ultralytics_runs_static(model, "GPU", amx_int8=True)
    model.reshape([1, 3, 640, 640])
    assert not ultralytics_runs_static(model, "CPU", amx_int8=True)
