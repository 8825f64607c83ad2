"""What the camera benchmark runs on: clips with a city's camera settings, and their geometry.

Each shared clip is re-encoded once (libx264, a keyframe every ``gop_s`` seconds: what
``docs/cameras.md`` asks a city to set on its cameras) into a temporary folder, or used as
it is (``gop_s`` None: the clips' own GOPs of 3 to 12 s, which make every camera fall back to
full decoding). Camera ``i`` plays clip ``i mod 6`` and measures what the survey
configuration (``survey.toml``) measures on that clip: its segments, and its counting
lines when the cameras are counting cameras (density cameras measure segments only).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2

from atcs.config import AtcsConfig, load_config
from benchmarks.common import REPO_DIR
from tests.support.reencode import reencode

SURVEY_CONFIG = REPO_DIR / "survey.toml"


def clip_fps(clip: Path) -> float:
    """The clip's own frame rate, frames/s."""
    capture = cv2.VideoCapture(str(clip))
    fps = float(capture.get(cv2.CAP_PROP_FPS)) or 25.0
    capture.release()
    return fps


def prepare_clips(clips: list[Path], gop_s: float | None, folder: Path) -> list[Path]:
    """The clips re-encoded with a keyframe every ``gop_s`` s (None: as they are)."""
    if gop_s is None:
        return clips
    out = []
    for clip in clips:
        gop = max(1, round(clip_fps(clip) * gop_s))
        out.append(reencode(clip, folder / f"{clip.stem}-gop{gop}.mp4", gop_frames=gop))
    return out


def survey_geometry(clips: list[Path]) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """Per clip stem: the segments and lines ``survey.toml`` draws on its camera."""
    cfg = load_config(SURVEY_CONFIG)
    out: dict[str, dict[str, list[dict[str, Any]]]] = {}
    stems = {c.stem.split("-gop")[0] for c in clips}
    for camera in cfg.cameras:
        stem = Path(camera.source).stem
        if stem in stems:
            out[stem] = {
                "segments": [s.model_dump() for s in cfg.segments_of(camera.id)],
                "lines": [ln.model_dump() for ln in cfg.lines_of(camera.id)],
            }
    return out


def camera_config(
    n: int,
    clips: list[Path],
    *,
    profile: str,
    sample_fps: float | None,
    detector: dict[str, Any],
    service: dict[str, Any],
    window_s: float,
) -> AtcsConfig:
    """``n`` cameras on the clips (round robin), each with its clip's segments and lines."""
    geometry = survey_geometry(clips)
    cameras: list[dict[str, Any]] = []
    segments: list[dict[str, Any]] = []
    lines: list[dict[str, Any]] = []
    for i in range(n):
        clip = clips[i % len(clips)]
        cam = f"cam-{i:03d}"
        camera: dict[str, Any] = {"id": cam, "source": str(clip), "profile": profile}
        if sample_fps is not None:
            camera["sample_fps"] = sample_fps
        cameras.append(camera)
        drawn = geometry.get(clip.stem.split("-gop")[0])
        if drawn is None:  # a clip the survey does not cover: one segment over the image
            whole = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]
            segments.append(
                {"id": f"seg-{i:03d}", "camera": cam, "polygon": whole, "length_m": 60, "lanes": 2}
            )
            continue
        for seg in drawn["segments"]:
            segments.append({**seg, "id": f"{seg['id']}-{i:03d}", "camera": cam})
        for line in drawn["lines"] if profile == "counting" else []:
            lines.append(
                {
                    **line,
                    "id": f"{line['id']}-{i:03d}",
                    "camera": cam,
                    "segment": f"{line['segment']}-{i:03d}",
                }
            )
    return AtcsConfig.model_validate(
        {
            "site": {"id": "bench"},
            "detector": detector,
            "analysis": {"window_s": window_s},
            "service": service,
            "cameras": cameras,
            "segments": segments,
            "lines": lines,
        }
    )
