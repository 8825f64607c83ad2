"""Synthetic clips made from the shared footage for incident tests (written to a tmp folder).

- :func:`with_parked_car`: a car cut out of one frame of a clip and pasted, still, into
  every frame at another place: a vehicle stopped where traffic flows.
- :func:`reversed_clip`: the frames of a clip in reverse order: every vehicle drives the
  wrong way.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from atcs.types import Image


def _read_all(src: Path) -> tuple[list[Image], float]:
    cap = cv2.VideoCapture(str(src))
    fps = float(cap.get(cv2.CAP_PROP_FPS)) or 25.0
    frames: list[Image] = []
    while True:
        ok, image = cap.read()
        if not ok:
            break
        frames.append(np.asarray(image, dtype=np.uint8))
    cap.release()
    if not frames:
        raise AssertionError(f"{src}: no frame decoded")
    return frames, fps


def _write(frames: list[Image], fps: float, out: Path) -> Path:
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter.fourcc(*"mp4v"), fps, (w, h))
    if not writer.isOpened():
        raise AssertionError(f"cannot write {out}")
    for image in frames:
        writer.write(image)
    writer.release()
    return out


def with_parked_car(
    src: Path,
    out: Path,
    *,
    from_frame: int,
    car_xyxy: tuple[int, int, int, int],
    to_xy: tuple[int, int],
) -> Path:
    """Write ``src`` with the box ``car_xyxy`` of frame ``from_frame`` pasted, top-left at
    ``to_xy``, into every frame."""
    frames, fps = _read_all(src)
    x1, y1, x2, y2 = car_xyxy
    car = frames[from_frame][y1:y2, x1:x2].copy()
    tx, ty = to_xy
    for image in frames:
        image[ty : ty + (y2 - y1), tx : tx + (x2 - x1)] = car
    return _write(frames, fps, out)


def reversed_clip(src: Path, out: Path) -> Path:
    """Write the frames of ``src`` in reverse order."""
    frames, fps = _read_all(src)
    return _write(frames[::-1], fps, out)
