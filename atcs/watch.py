"""``atcs watch``: a live table of segments from the MQTT bus for an operator or police desk.

It subscribes to ``{p}/segments/+/metrics`` and ``{p}/cameras/+/status`` on any broker
and redraws a table in place once a second (plain ANSI, no curses): segment, camera,
vehicles, PCU, density, flow, level of service, queue, age of the data and camera state.
Congested rows are highlighted, stale ones dimmed. Ctrl-C exits cleanly. :func:`render_table`
is a pure function of a snapshot and the time.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TextIO
from zoneinfo import ZoneInfo

from atcs.bus.monitor import BusMonitor, Snapshot
from atcs.config import load_config
from atcs.config.bus import MqttConfig
from atcs.errors import AtcsError

log = logging.getLogger(__name__)

RED_BG = "\x1b[1;97;41m"
DIM = "\x1b[2m"
BOLD = "\x1b[1m"
RESET = "\x1b[0m"
HOME = "\x1b[H"
CLEAR_LINE = "\x1b[K"
CLEAR_BELOW = "\x1b[J"
HIDE_CURSOR = "\x1b[?25l"
SHOW_CURSOR = "\x1b[?25h"

_COLUMNS = (
    ("segment", 18, "<"),
    ("camera", 14, "<"),
    ("veh", 6, ">"),
    ("pcu", 6, ">"),
    ("pcu/km/ln", 9, ">"),
    ("flow veh/h", 10, ">"),
    ("LOS", 3, "^"),
    ("queue m", 7, ">"),
    ("age s", 6, ">"),
    ("cam", 12, "<"),
)


@dataclass(frozen=True, slots=True)
class View:
    """How to draw: ``title`` on top, ANSI colours or not, at most ``width`` characters."""

    title: str
    color: bool = True
    width: int = 120
    timezone: str = "UTC"
    """IANA zone of the clock on top (the site's, from ``--config``)."""


def _cell(text: str, width: int, align: str) -> str:
    if len(text) > width:
        text = text[: width - 1] + "~"
    return f"{text:{align}{width}}"


def _num(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def render_table(snapshot: Snapshot, now: datetime, view: View) -> list[str]:
    """Return the lines of the table for ``snapshot`` at ``now`` (pure; no I/O)."""
    state = "connected" if snapshot.connected else "NOT CONNECTED"
    if snapshot.last_error and not snapshot.connected:
        state += f" ({snapshot.last_error})"
    congested = sum(1 for r in snapshot.segments.values() if r.metrics.congested)
    local = now.astimezone(ZoneInfo(view.timezone))
    head = (
        f"{view.title}  {local:%Y-%m-%d %H:%M:%S} {local.tzname()}  {state}  "
        f"segments {len(snapshot.segments)}  congested {congested}  "
        f"messages {snapshot.received}  malformed {snapshot.malformed}"
    )
    header = " ".join(_cell(name, w, a) for name, w, a in _COLUMNS)[: view.width]
    lines = [head[: view.width], ""]
    lines.append(f"{BOLD}{header}{RESET}" if view.color else header)
    if not snapshot.segments:
        lines.append("(waiting for segment metrics ...)")
    for seg_id in sorted(snapshot.segments):
        m = snapshot.segments[seg_id].metrics
        cam = snapshot.cameras.get(m.camera_id)
        age_s = max((now - m.window_end).total_seconds(), 0.0)
        cells = (
            m.segment_id,
            m.camera_id,
            _num(m.vehicles),
            _num(m.pcu),
            _num(m.density_pcu_km_lane),
            _num(m.flow_veh_h, 0),
            m.los.value,
            _num(m.queue_m),
            _num(age_s, 0),
            cam.state.value if cam is not None else "-",
        )
        row = " ".join(_cell(str(c), w, a) for c, (_, w, a) in zip(cells, _COLUMNS, strict=True))
        flag = "  CONGESTED" if m.congested else ("  stale" if m.stale else "")
        row = (row + flag)[: view.width]
        if view.color and m.congested:
            row = f"{RED_BG}{row}{RESET}"
        elif view.color and m.stale:
            row = f"{DIM}{row}{RESET}"
        lines.append(row)
    return lines


def frame(lines: list[str]) -> str:
    """Wrap ``lines`` to redraw the terminal in place (cursor home, clear to line ends)."""
    return HOME + "".join(f"{line}{CLEAR_LINE}\n" for line in lines) + CLEAR_BELOW


def _site_timezone(args: argparse.Namespace) -> str:
    config_path = getattr(args, "config", None)
    return "UTC" if config_path is None else load_config(config_path).site.timezone


def _mqtt_config(args: argparse.Namespace) -> MqttConfig:
    base = MqttConfig()
    config_path = getattr(args, "config", None)
    if config_path is not None:
        cfg = load_config(config_path)
        if cfg.mqtt is not None:
            base = cfg.mqtt
    changes: dict[str, object] = {}
    for key in ("host", "port", "prefix"):
        value = getattr(args, key, None)
        if value is not None:
            changes[key] = value
    if not changes:
        return base
    return MqttConfig.model_validate({**base.model_dump(), **changes})


def run_watch(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Run ``atcs watch``; return the exit status.

    ``args`` has ``config`` (path or None), ``host``, ``port``, ``prefix`` (None: from the
    config or the defaults), ``once`` (print one table after ``wait`` seconds and exit) and
    ``wait`` (seconds). Exit status 0, or 2 when the settings are unusable (or, with
    ``once``, when no broker could be reached).
    """
    stream = out or sys.stdout
    try:
        cfg = _mqtt_config(args)
        zone = _site_timezone(args)
        monitor = BusMonitor(cfg)
        monitor.start()
    except (AtcsError, ValueError) as exc:
        print(f"atcs watch: {exc}", file=sys.stderr)
        return 2
    title = f"atcs watch {cfg.host}:{cfg.port} {cfg.prefix}"
    try:
        if getattr(args, "once", False):
            return _once(monitor, stream, title, float(getattr(args, "wait", 3.0)), zone)
        return _live(monitor, stream, title, zone)
    except KeyboardInterrupt:
        return 0
    finally:
        monitor.close()


def _once(monitor: BusMonitor, stream: TextIO, title: str, wait_s: float, zone: str) -> int:
    connected = monitor.wait_connected(wait_s)
    if connected:
        time.sleep(max(wait_s, 0.0))
    view = View(title, color=False, width=200, timezone=zone)
    stream.write("\n".join(render_table(monitor.snapshot(), datetime.now(UTC), view)) + "\n")
    stream.flush()
    return 0 if connected else 2


def _live(monitor: BusMonitor, stream: TextIO, title: str, zone: str) -> int:
    color = stream.isatty()
    if color:
        stream.write(HIDE_CURSOR + HOME + CLEAR_BELOW)
    try:
        while True:
            width = shutil.get_terminal_size((120, 40)).columns
            view = View(title, color, width, timezone=zone)
            lines = render_table(monitor.snapshot(), datetime.now(UTC), view)
            stream.write(frame(lines) if color else "\n".join(lines) + "\n\n")
            stream.flush()
            time.sleep(1.0)
    except KeyboardInterrupt:
        return 0
    finally:
        if color:
            stream.write(SHOW_CURSOR)
            stream.flush()
