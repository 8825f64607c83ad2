"""The labelled evaluation frames: vehicle boxes on frames of the shared clips (COCO JSON).

``tests/data/groundtruth/boxes.coco.json`` holds, per frame, the clip's name, the frame's index
and time, the SHA-256 of the decoded frame (BGR bytes, OpenCV) and every vehicle's box by
class; the clips themselves stay in the shared folder. ``iscrowd: 1`` marks what is not
scored: an object whose class cannot be told (a cargo tricycle, a rider hidden in a crowd) or
a region where vehicles are too small to box one by one. See
``tests/data/groundtruth/boxes.md`` for how the frames were chosen, labelled and checked.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from atcs.errors import DataError
from atcs.types import Image, VehicleClass

LABELS_FILE = Path(__file__).resolve().parents[1] / "tests/data/groundtruth/boxes.coco.json"
COCO_CATEGORIES = {
    2: VehicleClass.BICYCLE,
    3: VehicleClass.CAR,
    4: VehicleClass.MOTORCYCLE,
    6: VehicleClass.BUS,
    8: VehicleClass.TRUCK,
}
"""COCO category ids (the original 1-based ones) of the labelled vehicle classes."""


@dataclass(frozen=True, slots=True)
class LabelledBox:
    """One labelled object: corners in image pixels, its class, and whether it is scored."""

    x0: float
    y0: float
    x1: float
    y1: float
    vehicle_class: VehicleClass
    ignore: bool

    @property
    def height_px(self) -> float:
        """Box height in image pixels."""
        return self.y1 - self.y0


@dataclass(frozen=True, slots=True)
class LabelledFrame:
    """One labelled frame of a clip: where it is, its checksum and its boxes."""

    clip: str
    frame_index: int
    timestamp_s: float
    width_px: int
    height_px: int
    frame_sha256: str
    boxes: tuple[LabelledBox, ...]

    @property
    def scored(self) -> tuple[LabelledBox, ...]:
        """Boxes that count (not ``iscrowd``)."""
        return tuple(b for b in self.boxes if not b.ignore)


@dataclass(frozen=True, slots=True)
class LabelSet:
    """Every labelled frame, in file order, and the SHA-256 of each clip file."""

    frames: tuple[LabelledFrame, ...]
    clip_sha256: dict[str, str]

    def of_clip(self, clip: str) -> tuple[LabelledFrame, ...]:
        """Frames of one clip (file name), in frame order."""
        return tuple(sorted((f for f in self.frames if f.clip == clip), key=_frame_index))


def _frame_index(frame: LabelledFrame) -> int:
    return frame.frame_index


def load_labels(path: Path = LABELS_FILE) -> LabelSet:
    """Read and check a COCO label file; raise :class:`DataError` saying what is wrong."""
    try:
        doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        clips = {name: str(info["sha256"]) for name, info in doc["clips"].items()}
        boxes: dict[int, list[LabelledBox]] = {}
        for ann in doc["annotations"]:
            x, y, w, h = (float(v) for v in ann["bbox"])
            category = int(ann["category_id"])
            if category not in COCO_CATEGORIES:
                raise DataError(f"annotation {ann['id']}: unknown category {category}")
            if w <= 0 or h <= 0:
                raise DataError(f"annotation {ann['id']}: empty box {ann['bbox']}")
            box = LabelledBox(
                x, y, x + w, y + h, COCO_CATEGORIES[category], bool(ann.get("iscrowd", 0))
            )
            boxes.setdefault(int(ann["image_id"]), []).append(box)
        frames = tuple(
            LabelledFrame(
                clip=str(im["clip"]),
                frame_index=int(im["frame_index"]),
                timestamp_s=float(im["timestamp_s"]),
                width_px=int(im["width"]),
                height_px=int(im["height"]),
                frame_sha256=str(im["frame_sha256"]),
                boxes=tuple(boxes.get(int(im["id"]), ())),
            )
            for im in doc["images"]
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"label file {path.name} cannot be read: {exc!r}") from exc
    unknown = {f.clip for f in frames} - clips.keys()
    if unknown:
        raise DataError(f"label file {path.name}: frames of clips without a checksum: {unknown}")
    return LabelSet(frames, clips)


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes, hex."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_labelled_frames(
    labels: LabelSet, media_dir: Path, clips: list[str] | None = None
) -> Iterator[tuple[LabelledFrame, Image]]:
    """Decode each labelled frame from its clip (OpenCV, in frame order per clip).

    Raises :class:`DataError` when a clip is missing, is not the file that was labelled
    (its SHA-256 differs), or decodes a labelled frame to other pixels than were labelled.
    """
    names = sorted({f.clip for f in labels.frames} if clips is None else set(clips))
    for name in names:
        path = media_dir / name
        if not path.is_file():
            raise DataError(f"labelled clip {name} not found in {media_dir}")
        if file_sha256(path) != labels.clip_sha256[name]:
            raise DataError(f"clip {name} is not the file that was labelled (SHA-256 differs)")
        wanted = list(labels.of_clip(name))
        capture = cv2.VideoCapture(str(path))
        try:
            index = 0
            while wanted:
                ok, decoded = capture.read()
                if not ok:
                    raise DataError(f"clip {name} ends before frame {wanted[0].frame_index}")
                if index == wanted[0].frame_index:
                    frame = wanted.pop(0)
                    image: Image = np.ascontiguousarray(decoded, dtype=np.uint8)
                    if hashlib.sha256(image.tobytes()).hexdigest() != frame.frame_sha256:
                        raise DataError(
                            f"{name} frame {index} decodes to other pixels than were labelled "
                            "(another decoder build?)"
                        )
                    yield frame, image
                index += 1
        finally:
            capture.release()
