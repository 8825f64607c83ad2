"""Site configs for the engine tests: two real clips played as live cameras."""

from __future__ import annotations

from pathlib import Path

from atcs.config import AtcsConfig
from atcs.config.control import IntersectionConfig

INBOUND_POLYGON = (
    "[[0.59, 0.00], [0.76, 0.00], [1.00, 0.42], [1.00, 1.00], [0.50, 1.00], [0.60, 0.40]]"
)
CARRIAGEWAY_POLYGON = "[[0.46, 0.15], [0.59, 0.15], [0.97, 1.00], [0.05, 1.00]]"


def two_clip_site_toml(
    media_dir: Path,
    model_path: str,
    state_dir: Path,
    *,
    site_id: str = "test",
    sample_fps: float = 3.0,
    stop_line: bool = False,
    extra: str = "",
    motorway_source: str | None = None,
    motorway_extra: str = "",
) -> str:
    """Site TOML: cameras ``pontianak`` and ``motorway`` with segments ``inbound`` and
    ``carriageway`` (the latter with a stop line when asked), 2 s windows, ``sample_fps``
    frames/s each; ``extra`` (more tables) is appended as it is. ``motorway_source``
    replaces the motorway clip (e.g. an HTTP stream) and ``motorway_extra`` adds keys to
    that camera's table.
    """
    carriageway_stop_line = "stop_line = [[0.05, 1.00], [0.97, 1.00]]\n" if stop_line else ""
    return f"""
[site]
id = "{site_id}"

[detector]
model = "{model_path}"
image_size_px = 640

[analysis]
window_s = 2.0

[service]
state_dir = "{state_dir}"

[[cameras]]
id = "pontianak"
source = "{media_dir / "pontianak_motorcycles.mp4"}"
sample_fps = {sample_fps}

[[cameras]]
id = "motorway"
source = "{motorway_source or media_dir / "motorway_overpass.mp4"}"
sample_fps = {sample_fps}
{motorway_extra}
[[segments]]
id = "inbound"
camera = "pontianak"
polygon = {INBOUND_POLYGON}
length_m = 30.0
lanes = 2

[[segments]]
id = "carriageway"
camera = "motorway"
polygon = {CARRIAGEWAY_POLYGON}
length_m = 90.0
lanes = 3
{carriageway_stop_line}{extra}"""


def demo_in_phase_mode(cfg: AtcsConfig, controller: str = "delay-balance") -> AtcsConfig:
    """The demo config (``config.toml``) with its intersection run phase by phase.

    Its time-of-day greens are raised to 20 s at least, the south phase's walk and
    pedestrian clearance, which phase mode checks.
    """
    doc = cfg.intersections[0].model_dump()
    doc.update(mode="phase", phase_mode={"controller": controller})
    for plan in doc["fallback_plans"]:
        plan["greens_s"] = {phase: max(20.0, g) for phase, g in plan["greens_s"].items()}
    return cfg.model_copy(update={"intersections": [IntersectionConfig.model_validate(doc)]})
