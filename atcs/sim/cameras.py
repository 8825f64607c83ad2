"""Emulated cameras: SUMO lane-area (E2) detectors turned into :class:`SegmentMetrics`.

Each segment (a movement group of an approach, or an exit edge) is watched by one E2
detector per lane, of camera-like length (see :class:`atcs.sim.specs.SpecOptions`). Every simulation
step the runner hands the detectors' readings to :class:`CameraEmulator`, which keeps the
same per-window measures the video analysis produces: mean vehicles and PCU in the zone,
density, occupancy, flow of vehicles entering the zone (a counting line at the zone's
upstream end), queue length from the stop line (E2 jam length, approaches only) and the
level of service. This module does no SUMO I/O besides writing the detector file.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from xml.sax.saxutils import quoteattr

from atcs.config import AnalysisConfig, PcuConfig
from atcs.sim.camera_errors import PERFECT, CameraErrors
from atcs.sim.specs import CameraZone, SegmentLanes, bus_safe
from atcs.types import (
    CameraId,
    Direction,
    FlowCount,
    LevelOfService,
    LineId,
    SegmentId,
    SegmentMetrics,
    SiteId,
    VehicleClass,
)

SUMO_CLASSES: Mapping[str, VehicleClass] = {
    "motorcycle": VehicleClass.MOTORCYCLE,
    "moped": VehicleClass.MOTORCYCLE,
    "bus": VehicleClass.BUS,
    "coach": VehicleClass.BUS,
    "trolleybus": VehicleClass.BUS,
    "truck": VehicleClass.TRUCK,
    "trailer": VehicleClass.TRUCK,
    "delivery": VehicleClass.TRUCK,
    "bicycle": VehicleClass.BICYCLE,
}
"""SUMO vehicle classes mapped to the engine's classes; every other class counts as a car."""


DUPLICATE_SUFFIX = "#2"
"""Suffix of the id of a vehicle a camera counts a second time."""


def vehicle_class(sumo_class: str) -> VehicleClass:
    """Return the engine's class for the SUMO ``vClass`` named ``sumo_class``."""
    return SUMO_CLASSES.get(sumo_class, VehicleClass.CAR)


@dataclass(frozen=True, slots=True)
class DetectorReading:
    """One E2 detector in one step: vehicles in the zone, jam length (m), occupancy (%)."""

    vehicle_ids: tuple[str, ...]
    jam_m: float
    occupancy_pct: float


@dataclass(frozen=True, slots=True)
class Detector:
    """An E2 detector watching one lane's camera zone (see :class:`CameraZone`).

    ``lane_id`` is the lane at the junction; approach detectors (``exit`` False) end at
    the stop line of traffic light ``tls_id``, exit detectors start at the junction.
    """

    detector_id: str
    lane_id: str
    tls_id: str
    zone: CameraZone
    exit: bool


def plan_detectors(segments: Iterable[SegmentLanes]) -> tuple[Detector, ...]:
    """One detector per lane watched by the segments (approach and exit lanes apart)."""
    out: dict[str, Detector] = {}
    for seg in segments:
        for zone in seg.zones:
            kind = "out" if seg.exit else "in"
            det_id = f"atcs_{kind}_{zone.lane_id}"
            if det_id not in out:
                out[det_id] = Detector(det_id, zone.lane_id, seg.tls_id, zone, seg.exit)
    return tuple(out.values())


def entry_line(lane_id: str) -> LineId:
    """Id of the counting line across ``lane_id`` at the upstream end of its camera zone."""
    return LineId(bus_safe(f"{lane_id}:entry"))


LinkResolver = Callable[[str, str, str], "int | None"]
"""``(vehicle id, lane id, traffic light id) -> signal link index`` the vehicle will take."""


def write_detector_file(
    path: Path, detectors: Iterable[Detector], analysis: AnalysisConfig | None = None
) -> None:
    """Write the SUMO additional file declaring ``detectors`` as lane-area detectors.

    Halting and jam thresholds follow ``analysis`` (queue speed and largest gap).
    """
    cfg = analysis or AnalysisConfig()
    lines = ["<additional>"]
    for det in detectors:
        zone = det.zone
        where = (
            f"lane={quoteattr(zone.lanes[0])}"
            if len(zone.lanes) == 1
            else f"lanes={quoteattr(' '.join(zone.lanes))}"
        )
        lines.append(
            f"    <laneAreaDetector id={quoteattr(det.detector_id)} {where}"
            f' pos="{zone.start_m:.2f}" endPos="{zone.end_m:.2f}" period="86400"'
            f' file={quoteattr(os.devnull)} timeThreshold="1"'
            f' speedThreshold="{cfg.queue_speed_m_s:g}" jamThreshold="{cfg.queue_max_gap_m:g}"/>'
        )
    lines.append("</additional>")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


@dataclass(slots=True)
class _Window:
    """Running sums of one segment over the current window (internal, mutable)."""

    steps: int = 0
    vehicles: float = 0.0
    by_class: dict[VehicleClass, float] = field(default_factory=lambda: defaultdict(float))
    pcu: float = 0.0
    occupancy: float = 0.0
    queue_m: float = 0.0
    queue_max_m: float = 0.0
    entered: dict[tuple[str, VehicleClass], int] = field(default_factory=lambda: defaultdict(int))
    inside: frozenset[str] = frozenset()


class CameraEmulator:
    """Per-window segment measures from per-step E2 readings (one instance per run).

    ``site_id`` tags the metrics; ``analysis`` gives the LOS thresholds and ``pcu`` the
    passenger-car-unit factors (approaches count as protected movements). Vehicles on an
    approach lane are attributed to the movement group of the link they take.
    """

    def __init__(
        self,
        site_id: SiteId,
        segments: Iterable[SegmentLanes],
        detectors: Iterable[Detector],
        analysis: AnalysisConfig | None = None,
        pcu: PcuConfig | None = None,
        *,
        errors: CameraErrors | None = None,
    ) -> None:
        self._site = site_id
        self._errors = errors or PERFECT
        self.down: set[SegmentId] = set()
        self.seen: dict[SegmentId, dict[str, str]] = {}
        self._analysis = analysis or AnalysisConfig()
        self._pcu = pcu or PcuConfig()
        self._segments: dict[SegmentId, SegmentLanes] = {}
        for seg in segments:
            self._segments.setdefault(seg.segment_id, seg)
        self._detectors = {d.detector_id: d for d in detectors}
        by_lane = {(d.lane_id, d.exit): d.detector_id for d in self._detectors.values()}
        self._seg_detectors: dict[SegmentId, list[str]] = {
            sid: [by_lane[(lane, seg.exit)] for lane in seg.lanes]
            for sid, seg in self._segments.items()
        }
        self._exit_of: dict[str, list[SegmentId]] = defaultdict(list)
        for sid, seg in self._segments.items():
            if seg.exit:
                for det_id in self._seg_detectors[sid]:
                    self._exit_of[det_id].append(sid)
        self._by_link: dict[tuple[str, int, str], SegmentId] = {}
        for sid, seg in self._segments.items():
            if seg.exit:
                continue
            for link in seg.links:
                for lane in seg.lanes:
                    self._by_link[(seg.tls_id, link, lane)] = sid
        self._windows: dict[SegmentId, _Window] = {s: _Window() for s in self._segments}

    def _factor(self, cls: VehicleClass) -> float:
        return self._pcu.factor(cls, "protected")

    def _detected(
        self, inside: dict[SegmentId, dict[str, str]], classes: Mapping[str, VehicleClass]
    ) -> dict[SegmentId, dict[str, str]]:
        """Return what the cameras see of ``inside``: misses dropped, duplicates as ``id#2``."""
        out: dict[SegmentId, dict[str, str]] = {}
        for seg_id in self._segments:
            if seg_id in self.down:
                continue
            seen: dict[str, str] = {}
            for vid, lane in inside.get(seg_id, {}).items():
                cls = classes.get(vid, VehicleClass.CAR)
                copies = self._errors.copies(vid, seg_id, cls)
                if copies:
                    seen[vid] = lane
                if copies > 1:
                    seen[vid + DUPLICATE_SUFFIX] = lane
            out[seg_id] = seen
        return out

    def _attribute(
        self, readings: Mapping[str, DetectorReading], resolve: LinkResolver
    ) -> dict[SegmentId, dict[str, str]]:
        """Vehicles (id -> lane at the junction) in each segment's zones this step."""
        inside: dict[SegmentId, dict[str, str]] = defaultdict(dict)
        for det_id, reading in readings.items():
            det = self._detectors.get(det_id)
            if det is None:
                continue
            if det.exit:
                for sid in self._exit_of[det_id]:
                    inside[sid].update(dict.fromkeys(reading.vehicle_ids, det.lane_id))
                continue
            for vid in reading.vehicle_ids:
                link = resolve(vid, det.lane_id, det.tls_id)
                target = (
                    None if link is None else self._by_link.get((det.tls_id, link, det.lane_id))
                )
                if target is not None:
                    inside[target][vid] = det.lane_id
        return inside

    def add_step(
        self,
        readings: Mapping[str, DetectorReading],
        classes: Mapping[str, VehicleClass],
        resolve: LinkResolver,
    ) -> None:
        """Add one step: detector id -> reading, vehicle id -> class, and link resolver.

        A segment whose camera is down (in :attr:`down`) sees nothing and its window
        counts no frame (it closes ``stale``); :attr:`seen` keeps what each camera saw.
        """
        inside_by_seg = self._detected(self._attribute(readings, resolve), classes)
        self.seen = inside_by_seg
        for seg_id, det_ids in self._seg_detectors.items():
            if seg_id in self.down:
                continue
            win = self._windows[seg_id]
            inside: dict[str, str] = inside_by_seg.get(seg_id, {})
            occupancy = 0.0
            jam = 0.0
            for det_id in det_ids:
                reading = readings.get(det_id)
                if reading is not None:
                    occupancy += reading.occupancy_pct / 100.0
                    jam = max(jam, reading.jam_m)
            win.steps += 1
            win.vehicles += len(inside)
            for vid, lane in inside.items():
                cls = classes.get(vid.removesuffix(DUPLICATE_SUFFIX), VehicleClass.CAR)
                win.by_class[cls] += 1.0
                win.pcu += self._factor(cls)
                if vid not in win.inside:
                    win.entered[(lane, cls)] += 1
            win.occupancy += occupancy / max(1, len(det_ids))
            win.queue_m += jam
            win.queue_max_m = max(win.queue_max_m, jam)
            win.inside = frozenset(inside)

    def _los(self, density: float) -> LevelOfService:
        for bound, los in zip(self._analysis.los_density_pcu_km_lane, LevelOfService, strict=False):
            if density <= bound:
                return los
        return LevelOfService.F

    def close_window(self, start: datetime, end: datetime) -> list[SegmentMetrics]:
        """Return every segment's measures over ``start``..``end`` and start a new window."""
        window_s = max((end - start).total_seconds(), 1e-9)
        order = list(LevelOfService)
        congested_from = order.index(self._analysis.congested_from_los)
        out: list[SegmentMetrics] = []
        for seg_id, seg in self._segments.items():
            win = self._windows[seg_id]
            n = max(win.steps, 1)
            pcu = win.pcu / n
            lane_km = seg.lane_km
            density = pcu / lane_km if lane_km > 0 else 0.0
            los = self._los(density)
            flows = tuple(
                FlowCount(
                    line_id=entry_line(lane),
                    vehicle_class=cls,
                    direction=Direction.FORWARD,
                    count=count,
                    flow_veh_h=count * 3600.0 / window_s,
                )
                for (lane, cls), count in sorted(win.entered.items())
            )
            total = sum(f.count for f in flows)
            out.append(
                SegmentMetrics(
                    site_id=self._site,
                    camera_id=CameraId(f"sim:{seg_id}"),
                    segment_id=seg_id,
                    window_start=start,
                    window_end=end,
                    frames=win.steps,
                    vehicles=win.vehicles / n,
                    vehicles_by_class={c: v / n for c, v in sorted(win.by_class.items())},
                    pcu=pcu,
                    density_pcu_km_lane=density,
                    occupancy=win.occupancy / n,
                    flow_veh_h=total * 3600.0 / window_s,
                    flows=flows,
                    queue_m=None if seg.exit else win.queue_m / n,
                    queue_max_m=None if seg.exit else win.queue_max_m,
                    los=los,
                    congested=order.index(los) >= congested_from,
                    stale=win.steps == 0,
                )
            )
            self._windows[seg_id] = _Window(inside=win.inside)
        return out
