"""Per-frame camera zones from the real analyser: the real model on the Beijing clip.

The demo intersection runs phase by phase (``delay-balance``); its south approach,
``beijing-south-approach`` (25 m, 4 lanes), has a stop line. The engine is built as
``atcs run`` builds it (role ``all``, no bus, no store); the clip's frames are detected
with the real model, analysed by the camera's real analyser and handed to the engine's
frame observers, which hold the control loop's. After every frame the phase controllers
see the approach as that frame's vehicles: as many as the segment counts, with their PCU,
each at a finite distance within the segment; no window is ever fed, so the zone can only
come from the frames, and it is gone once the last frame is older than ``frame_stale_s``.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from atcs.config import load_config
from atcs.control.zones import DEFAULT_SPEED_M_S
from atcs.detection import build_detector
from atcs.metrics import CameraAnalyzer
from atcs.service import build_engine
from atcs.sources.recorded import iter_recorded_frames
from atcs.types import IntersectionId, SegmentId
from tests.support.sites import demo_in_phase_mode

pytestmark = pytest.mark.e2e

IX = IntersectionId("simpang-demo")
SOUTH = SegmentId("beijing-south-approach")
JUNCTION = SegmentId("beijing-junction")  # the south phase's exit: no stop line
T0 = datetime(2026, 5, 4, 8, 0, tzinfo=UTC)
STRIDE = 3  # 10 frames/s of the 30 frames/s clip


def test_each_frame_becomes_the_approach_zone_the_phase_controllers_see(repo_dir: Path) -> None:
    cfg = demo_in_phase_mode(load_config(repo_dir / "config.toml"))
    cfg = cfg.model_copy(
        update={
            "cameras": [c for c in cfg.cameras if c.id == "beijing"],
            "mqtt": None,
            "influx": None,
            "dashboard": None,
        }
    )
    engine = build_engine(cfg)
    assert engine.control is not None
    live = engine.control.phase(IX)
    length_m = next(s.length_m for s in cfg.segments if s.id == SOUTH)
    detector = build_detector(cfg.detector)
    analyzer: CameraAnalyzer | None = None
    seen = measured = frames = 0
    try:
        source = cfg.camera("beijing").source
        for frame in iter_recorded_frames("beijing", source, start_at=T0, stride=STRIDE):
            (found,) = detector.detect([frame.image])
            if analyzer is None:
                analyzer = CameraAnalyzer.from_config(
                    cfg, "beijing", frame.width_px, frame.height_px, T0
                )
            result = analyzer.update(frame.seq, frame.captured_at, frame.offset_s, found,
                                     frame.image)  # fmt: skip
            for observer in engine.frame_observers:
                observer(frame, result)
            segment = next(s for s in result.segments if s.segment_id == SOUTH)
            zones = live.zones(frame.captured_at)
            assert set(zones) == {SOUTH}  # the exit has no stop line, no window was fed
            zone = zones[SOUTH]
            assert len(zone.vehicles) == segment.vehicles
            assert zone.pcu == pytest.approx(segment.pcu)
            for v in zone.vehicles:
                assert math.isfinite(v.distance_m)
                assert 0.0 <= v.distance_m <= length_m
                assert math.isfinite(v.speed_m_s)
                assert v.speed_m_s >= 0.0
            frames += 1
            seen += len(zone.vehicles)
            measured += sum(1 for v in zone.vehicles if v.speed_m_s != DEFAULT_SPEED_M_S)
    finally:
        detector.close()
    assert frames >= 80
    assert seen >= frames  # the approach is busy: more than a vehicle a frame on average
    assert measured >= seen // 2  # tracked vehicles carry their measured speed
    assert result.at == T0 + timedelta(seconds=result.offset_s or 0.0)
    later = result.at + timedelta(seconds=live.frame_stale_s + 0.5)
    assert SOUTH not in live.zones(later)  # stale frame, no window: the phase is blind
