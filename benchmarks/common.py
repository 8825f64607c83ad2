"""Helpers shared by the benchmark scripts: where the shared clips and model are, decoding."""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from atcs.types import Image

REPO_DIR = Path(__file__).resolve().parents[1]
SHARED_DIR = Path(os.environ.get("ATCS_SHARED_DIR", REPO_DIR.parent / "shared")).resolve()
MEDIA_DIR = Path(os.environ.get("ATCS_MEDIA_DIR", SHARED_DIR / "media")).resolve()
DEFAULT_MODEL = os.environ.get(
    "ATCS_MODEL", str(SHARED_DIR / "models" / "yolo11n_int8_openvino_model")
)
CLIP_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov")


def find_clips(names: list[str] | None) -> list[Path]:
    """The clips named (file names in the media folder, or paths), or every clip there."""
    if names:
        return [Path(n) if Path(n).exists() else MEDIA_DIR / n for n in names]
    return sorted(p for p in MEDIA_DIR.iterdir() if p.suffix.lower() in CLIP_SUFFIXES)


def read_frames(clip: Path, max_frames: int | None) -> Iterator[Image]:
    """Decode a clip frame by frame with OpenCV (in the calling thread)."""
    capture = cv2.VideoCapture(str(clip))
    if not capture.isOpened():
        raise SystemExit(f"cannot open {clip}")
    try:
        count = 0
        while max_frames is None or count < max_frames:
            ok, frame = capture.read()
            if not ok:
                break
            count += 1
            yield np.ascontiguousarray(frame)
    finally:
        capture.release()


def prefetch(frames: Iterator[Image], depth: int = 8) -> Iterator[Image]:
    """Decode ahead on a background thread through a bounded queue of ``depth`` frames."""
    slots: queue.Queue[Image | None] = queue.Queue(maxsize=depth)
    stop = threading.Event()
    failure: list[BaseException] = []

    def work() -> None:
        try:
            for frame in frames:
                while not stop.is_set():
                    try:
                        slots.put(frame, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
        except BaseException as exc:  # handed to the consumer below
            failure.append(exc)
        finally:
            while not stop.is_set():
                try:
                    slots.put(None, timeout=0.1)
                    break
                except queue.Full:
                    continue

    thread = threading.Thread(target=work, name="decode", daemon=True)
    thread.start()
    try:
        while True:
            item = slots.get()
            if item is None:
                break
            yield item
        if failure:
            raise failure[0]
    finally:
        stop.set()
        thread.join(timeout=5)
