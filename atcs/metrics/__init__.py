"""Segment analysis: geometry, tracking, counting lines, queues and windowed measures.

Pure code (numpy only, no threads, no I/O). The entry point is :class:`CameraAnalyzer`::

    analyzer = CameraAnalyzer.from_config(cfg, camera_id, width_px, height_px, origin)
    frame = analyzer.update(frame_seq, at, offset_s, detections)   # FrameAnalysis
    metrics = analyzer.close_windows(until)                         # list[SegmentMetrics]
    last = analyzer.flush()           # end of input: pending crossings, tuple[LineCrossing]
    metrics = analyzer.close_windows(end, partial=True)             # flushes, then closes
    events = analyzer.take_events()   # movement matrices and incident events, AnalyzerEvents
"""

from __future__ import annotations

from atcs.metrics.analyzer import AnalyzerEvents, CameraAnalyzer, FrameAnalysis, SegmentFrame
from atcs.metrics.layout import SegmentGeometry
from atcs.metrics.lines import LineGeometry
from atcs.metrics.measures import (
    density_pcu_km_lane,
    is_congested,
    level_of_service,
    queue_length_m,
)

__all__ = [
    "AnalyzerEvents",
    "CameraAnalyzer",
    "FrameAnalysis",
    "LineGeometry",
    "SegmentFrame",
    "SegmentGeometry",
    "density_pcu_km_lane",
    "is_congested",
    "level_of_service",
    "queue_length_m",
]
