"""Clips re-encoded with the FFmpeg command-line tool: chosen keyframes, known timestamps."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path


def ffmpeg_binary(name: str = "ffmpeg") -> str:
    """Path of Debian's ``ffmpeg`` (or ``ffprobe``); a clear error when it is missing."""
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"{name} not found: install the Debian package ffmpeg")
    return path


def reencode(
    source: Path,
    target: Path,
    *,
    gop_frames: int | None = None,
    keyframes_at_s: tuple[float, ...] | None = None,
    seconds: float | None = None,
) -> Path:
    """Re-encode ``source`` as H.264 (libx264) with keyframes every ``gop_frames`` frames
    or exactly at ``keyframes_at_s`` (scene-cut keyframes off), optionally its first
    ``seconds``. Returns ``target``.
    """
    args = [ffmpeg_binary(), "-nostdin", "-hide_banner", "-loglevel", "error", "-y"]
    args += ["-i", str(source)]
    if seconds is not None:
        args += ["-t", f"{seconds:g}"]
    args += ["-an", "-c:v", "libx264", "-preset", "veryfast", "-sc_threshold", "0"]
    if keyframes_at_s is not None:
        args += ["-g", "100000", "-force_key_frames", ",".join(f"{t:g}" for t in keyframes_at_s)]
    elif gop_frames is not None:
        args += ["-g", str(gop_frames), "-keyint_min", str(gop_frames)]
    subprocess.run([*args, str(target)], check=True, capture_output=True, timeout=300)
    return target


def keyframe_times_s(clip: Path) -> list[float]:
    """Presentation times of the clip's keyframes, s, as ``ffprobe`` lists them."""
    out = subprocess.run(
        [
            ffmpeg_binary("ffprobe"), "-v", "error", "-select_streams", "v:0",
            "-skip_frame", "nokey", "-show_entries", "frame=pts_time", "-of", "csv=p=0",
            str(clip),
        ],
        check=True, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    return [float(line.strip(",")) for line in out.stdout.split() if line.strip(",")]
