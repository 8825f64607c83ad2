"""The ATCS room end to end: real headless Chromium against a running engine on the demo site.

The engine is ``build_engine`` on the demo site (``seeds/demo-site.toml`` and
``seeds/demo-intersection.toml``, three real clips and Simpang Demo) plus one real HTTP
MJPEG camera that the test stops, with a real Mosquitto and a real InfluxDB. Screenshots
of the wall (1080p and 4K), the laptop layout and the map go to ``artifacts/room/``
(``ATCS_ARTIFACTS_DIR`` overrides); docs/img holds copies.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from atcs.bus.alarms import decode_alarm
from atcs.config import load_config
from atcs.service import Engine, build_engine
from atcs.web import Dashboard
from tests.support.cameras import CameraServer, clip_jpegs
from tests.support.influxdb import InfluxServer
from tests.support.mosquitto import Collector, Mosquitto
from tests.support.net import free_port
from tests.support.page_checks import IMAGES_LOADED
from tests.test_dashboard_browser import CHROMIUM, CHROMIUM_ARGS

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = Path(os.environ.get("ATCS_ARTIFACTS_DIR", REPO / "artifacts")) / "room"
OPERATOR = ("ani", "room-operator-pw")
DB = "atcs_room_e2e"
GATE = "gerbang"

ENGLISH_WORDS = {
    "the", "and", "of", "stopped", "running", "decision", "inputs", "stale", "fresh",
    "released", "rejected", "applied", "unchanged", "waiting", "connected", "disconnected",
    "connection", "wrong", "password", "congestion", "camera", "cameras", "streaming",
    "offline", "alarms", "history", "level", "service", "log", "login", "frames",
    "since", "seconds", "hours", "uptime", "version", "density", "flow", "queue", "plan",
    "cycle", "green", "segment", "vehicles", "reason", "problems", "health", "engine",
    "acknowledge", "comment", "sound", "page", "map", "intersection", "fallback", "adaptive",
    "published", "from", "by", "no", "not", "yet", "steady", "rising", "falling", "lag",
}  # fmt: skip
"""Words that must not appear on the room's page in Indonesian mode ("alarm" is Indonesian too)."""


SITE_ZONE = "Asia/Makassar"
"""The test site's time zone (WITA)."""


def site_toml(tmp: Path, broker: Mosquitto, influx_url: str, camera_port: int) -> str:
    return f"""
include = ["{REPO / "seeds" / "demo-site.toml"}", "{REPO / "seeds" / "demo-intersection.toml"}"]

[site]
id = "room"
name = "Simpang Demo"
timezone = "{SITE_ZONE}"

[detector]
model = "${{ATCS_MODEL}}"

[analysis]
window_s = 2.0

[alarms]
onset_windows = 2
clear_windows = 2
camera_down_after_s = 2.0
stale_after_s = 600.0

[service]
state_dir = "{tmp / "var"}"

[mqtt]
host = "127.0.0.1"
port = {broker.port}

[influx]
api = "v1"
url = "{influx_url}"
database = "{DB}"
flush_interval_s = 0.5

[dashboard]
host = "127.0.0.1"
port = 0
language = "id"
allow_anonymous_viewers = true
refresh_s = 0.5
snapshot_interval_s = 1.0
wall_camera_tiles = 2
users = [{{ name = "{OPERATOR[0]}", role = "operator", password_env = "ATCS_ROOM_PW" }}]

[[cameras]]
id = "{GATE}"
name = "Gerbang tol (kamera HTTP)"
source = "http://127.0.0.1:{camera_port}/stream.mjpg"
kind = "mjpeg"
sample_fps = 1.0
stall_timeout_s = 3.0
reconnect_initial_s = 0.5
reconnect_max_s = 1.0
location = [-6.92120, 107.61750]

[[segments]]
id = "gerbang-masuk"
camera = "{GATE}"
name = "Gerbang masuk"
polygon = [[0.1, 0.3], [0.9, 0.3], [0.9, 1.0], [0.1, 1.0]]
length_m = 20.0
lanes = 2
geo_line = [[-6.92110, 107.61700], [-6.92150, 107.61860]]
"""


@dataclass
class Room:
    engine: Engine
    dashboard: Dashboard
    influx: InfluxServer
    camera: CameraServer
    alarms: Collector
    browser: Browser
    state_dir: Path
    segments: list[str]

    @property
    def url(self) -> str:
        return self.dashboard.url


@pytest.fixture(scope="module")
def room(
    tmp_path_factory: pytest.TempPathFactory,
    media_dir: Path,
    model_path: str,
    influxdb: InfluxServer,
) -> Iterator[Room]:
    tmp = tmp_path_factory.mktemp("room-e2e")
    broker = Mosquitto(tmp / "mosquitto")
    broker.start()
    camera = CameraServer(clip_jpegs(media_dir / "tjunction_pole_cars_truck.mp4"), free_port())
    camera.start()
    config = tmp / "room.toml"
    config.write_text(site_toml(tmp, broker, influxdb.url, camera.port))
    alarms = Collector(broker, "atcs/v1/alarms/+/state")
    with pytest.MonkeyPatch.context() as mp, sync_playwright() as pw:
        mp.setenv("ATCS_ROOM_PW", OPERATOR[1])
        mp.setenv("ATCS_MEDIA_DIR", str(media_dir))
        mp.setenv("ATCS_MODEL", model_path)
        cfg = load_config(config)
        slower = [c.model_copy(update={"sample_fps": min(c.sample_fps, 2.0)}) for c in cfg.cameras]
        engine = build_engine(cfg.model_copy(update={"cameras": slower}))
        dashboard = next(s for s in engine.sinks if isinstance(s, Dashboard))
        runner = threading.Thread(target=engine.run, name="room-engine", daemon=True)
        runner.start()
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        expect.set_options(timeout=15_000)
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    urllib.request.urlopen(dashboard.url + "api/whoami", timeout=5).close()
                    break
                except OSError:
                    time.sleep(0.2)
            yield Room(
                engine, dashboard, influxdb, camera, alarms, browser, tmp / "var",
                [s.id for s in cfg.segments],
            )  # fmt: skip
        finally:
            browser.close()
            engine.stop()
            runner.join(60)
            alarms.close()
            camera.stop()
            broker.kill()


def screenshot(pg: Page, name: str, *, full_page: bool = False) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    pg.screenshot(path=str(path), full_page=full_page)
    return path


def new_page(room: Room, width: int, height: int) -> tuple[Page, list[str], list[str]]:
    context = room.browser.new_context(viewport={"width": width, "height": height})
    pg = context.new_page()
    requests: list[str] = []
    errors: list[str] = []
    pg.on("request", lambda r: requests.append(r.url))
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    return pg, requests, errors


def wait_for_los(pg: Page) -> None:
    pg.wait_for_function(
        "() => { const p = [...document.querySelectorAll('[data-role=map] path.map-segment')];"
        " return p.length && p.every(e => e.dataset.los); }",
        timeout=60_000,
    )


NO_SCROLL = """() => { const e = document.scrollingElement;
  return [e.scrollHeight, e.clientHeight, e.scrollWidth, e.clientWidth]; }"""


def test_wall_fits_1080p_and_4k_and_the_map_colours_every_segment(room: Room) -> None:
    pg, requests, errors = new_page(room, 1920, 1080)
    pg.goto(room.url + "?layout=wall&lang=id")
    expect(pg.locator("body")).to_have_class("layout-wall")
    wait_for_los(pg)
    segments = pg.locator("[data-role=map] path.map-segment")
    expect(segments).to_have_count(len(room.segments))
    colours = {"A": "#1a9850", "B": "#66bd63", "C": "#d9ef8b", "D": "#fee08b", "E": "#fc8d59",
               "F": "#d73027"}  # fmt: skip
    drawn = segments.evaluate_all(
        "ps => ps.map(p => [p.dataset.segment, p.dataset.los, p.getAttribute('stroke')])"
    )
    assert sorted(d[0] for d in drawn) == sorted(room.segments)
    for seg, los, stroke in drawn:
        assert stroke == colours[los], f"{seg} drawn {stroke} for LOS {los}"
    labels = pg.locator("[data-role=map] .map-label")
    assert labels.count() >= len(room.segments)
    pg.wait_for_function(
        IMAGES_LOADED,
        arg="figure.camera:not([hidden]) img",
        timeout=30_000,
    )
    scroll_h, client_h, scroll_w, client_w = pg.evaluate(NO_SCROLL)
    assert scroll_h <= client_h, "no vertical scrolling at 1920x1080"
    assert scroll_w <= client_w, "no horizontal scrolling at 1920x1080"
    tiles = pg.locator("figure.camera:not([hidden])")
    assert tiles.count() == 2, "the camera grid shows one page of 2 (of 4 cameras)"
    expect(pg.locator("#wall-page")).to_contain_text(re.compile(r"[12]/2"))
    tinted = pg.locator("figure.camera[data-los]:not([data-los=''])")
    assert tinted.count() >= 1
    expect(pg.locator("figure.camera .tile-queue:not([hidden])").first).to_contain_text("m")
    small = pg.locator("#board-h").evaluate("e => parseFloat(getComputedStyle(e).fontSize)")
    assert small >= 24
    screenshot(pg, "room-wall-1080p.png")
    pg.locator("[data-role=map] path.map-segment[data-segment='beijing-south-approach']").click(
        force=True
    )
    dialog = pg.locator("#details-dialog")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("Kaki selatan")
    pg.keyboard.press("Escape")
    pg.locator("figure.camera:not([hidden])").first.click()
    expect(dialog.locator("img.enlarged")).to_be_visible()
    pg.keyboard.press("Escape")
    pg.context.close()
    assert errors == []
    assert all(u.startswith(room.url) or u.startswith("data:") for u in requests), requests

    big, requests, errors = new_page(room, 3840, 2160)
    big.goto(room.url + "?layout=wall&lang=id")
    wait_for_los(big)
    big.wait_for_function(
        IMAGES_LOADED,
        arg="figure.camera:not([hidden]) img",
        timeout=30_000,
    )
    scroll_h, client_h, scroll_w, client_w = big.evaluate(NO_SCROLL)
    assert scroll_h <= client_h, "no vertical scrolling at 3840x2160"
    assert scroll_w <= client_w, "no horizontal scrolling at 3840x2160"
    body = big.locator("body").evaluate("e => parseFloat(getComputedStyle(e).fontSize)")
    assert body >= 32, "type grows with the screen: readable from across a room"
    screenshot(big, "room-wall-4k.png")
    big.context.close()
    assert errors == []


def test_laptop_and_map_screenshots_no_request_leaves_the_origin(room: Room) -> None:
    pg, requests, errors = new_page(room, 1366, 768)
    pg.goto(room.url + "?layout=laptop&lang=id")
    wait_for_los(pg)
    expect(pg.locator("[data-role=alarms]")).to_be_visible()
    pg.wait_for_function(
        "() => [...document.querySelectorAll('figure.camera img')].some(i => i.naturalWidth)",
        timeout=30_000,
    )
    screenshot(pg, "room-laptop.png", full_page=True)
    pg.locator("#map-panel").screenshot(path=str(ARTIFACTS / "room-map.png"))
    for path in ("history", "report"):
        pg.goto(room.url + path)
        pg.wait_for_load_state("networkidle")
    pg.context.close()
    assert errors == []
    assert requests
    assert all(u.startswith(room.url) or u.startswith("data:") for u in requests), requests


def test_a_stopped_camera_raises_an_alarm_an_operator_acknowledges(room: Room) -> None:
    pg, _requests, errors = new_page(room, 1366, 900)
    pg.goto(room.url + "?layout=laptop&lang=en")
    room.camera.stop()
    alarm = pg.locator(f"[data-role=alarms] li[data-kind='camera_down'][data-subject='{GATE}']")
    expect(alarm).to_be_visible(timeout=30_000)
    expect(alarm).to_have_attribute("data-acknowledged", "false")
    expect(alarm).to_contain_text("Camera down")
    pg.locator("#login-open").click()
    pg.locator("#login-user").fill(OPERATOR[0])
    pg.locator("#login-password").fill(OPERATOR[1])
    pg.locator("#login-submit").click()
    expect(pg.locator("#who")).to_contain_text(OPERATOR[0])
    form = alarm.locator("form.ack-form")
    form.locator(".ack-send").click()
    expect(form.locator(".ack-msg")).to_have_attribute("data-result", "comment_required")
    comment = "Petugas dikirim ke gerbang; kabel kamera putus"
    form.locator(".ack-comment").fill(comment)
    form.locator(".ack-send").click()
    expect(alarm).to_have_attribute("data-acknowledged", "true")
    expect(alarm).to_contain_text(comment)
    expect(alarm).to_contain_text(OPERATOR[0])
    pg.context.close()
    assert errors == []
    lines = (room.state_dir / "dashboard" / "alarm-acks.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert records[-1]["user"] == OPERATOR[0]
    assert records[-1]["comment"] == comment
    assert any(r["outcome"] == "refused" and r["detail"] == "comment_required" for r in records)

    def acked_on_bus() -> bool:
        for msg in room.alarms.snapshot():
            event = decode_alarm(msg.payload).record
            if event.alarm.subject == GATE and event.alarm.acked_by == OPERATOR[0]:
                return event.alarm.ack_comment == comment
        return False

    assert room.alarms.wait_for(lambda _m: acked_on_bus(), timeout_s=15), "on the bus"
    deadline = time.monotonic() + 15
    rows: list[dict[str, object]] = []
    while time.monotonic() < deadline and not rows:
        rows = room.influx.rows(
            "SELECT * FROM alarm WHERE \"change\" = 'acknowledged' AND \"kind\" = 'camera_down'",
            DB,
        )
        time.sleep(0.5)
    assert rows, "the acknowledgement is stored"
    assert rows[-1]["user"] == OPERATOR[0]
    assert rows[-1]["comment"] == comment
    room.camera.start()


def _write_history(room: Room, segment: str, density: float, cars: int) -> list[datetime]:
    """Write a window every 5 minutes over the last 2 hours; return their times (UTC)."""
    now = datetime.now(UTC)
    lines = []
    times = [now - timedelta(minutes=minutes) for minutes in range(5, 125, 5)]
    for when in times:
        at = int(when.timestamp() * 1000)
        lines.append(
            f"segment_metrics,site=room,camera=beijing,segment={segment} "
            f"density_pcu_km_lane={density},vehicles=4.0,flow_veh_h=500.0,observed_s=10.0,"
            f"crossings_car_forward={cars}i,crossings_motorcycle_backward=2i {at}"
        )
    body = ("\n".join(lines) + "\n").encode()
    request = urllib.request.Request(
        f"{room.influx.url}/write?db={DB}&precision=ms", data=body, method="POST"
    )
    urllib.request.urlopen(request, timeout=10).close()
    return times


def test_history_chart_csv_and_daily_report_show_what_influxdb_holds(room: Room) -> None:
    seg = "beijing-junction"
    written = _write_history(room, seg, 87.5, 3)
    pg, requests, errors = new_page(room, 1366, 900)
    pg.goto(room.url + f"history?segment={seg}&range=hours&lang=id")
    line = pg.locator("#density-chart polyline[data-series='density']")
    expect(line).to_be_visible()
    assert int(line.get_attribute("data-points") or 0) >= 20
    assert float(line.get_attribute("data-max") or 0) >= 87.5
    cars = pg.locator("#flow-chart polyline[data-series='car']")
    expect(cars).to_be_visible()
    assert float(cars.get_attribute("data-max") or 0) >= 3 / 10 * 3600 * 0.99
    expect(pg.locator("h2").first).to_have_text("Kepadatan (SMP/km/lajur)")
    with urllib.request.urlopen(
        room.url + f"api/history/segments/{seg}/export.csv?range=hours", timeout=10
    ) as resp:
        table = list(csv.DictReader(io.StringIO(resp.read().decode())))
    assert any(float(r["density_pcu_km_lane"]) == 87.5 for r in table)
    # the report of the site's local day holding most of the written windows (near local
    # midnight the two hours span two days)
    zone = ZoneInfo(SITE_ZONE)
    days = Counter(w.astimezone(zone).date() for w in written)
    day, windows = days.most_common(1)[0]
    pg.goto(room.url + f"report?lang=id&day={day.isoformat()}")
    cell = pg.locator(f"tr[data-segment='{seg}'] td[data-class='car']")
    expect(cell).to_be_visible()
    assert int(cell.get_attribute("data-counted") or 0) >= 3 * windows
    assert windows >= 12
    screenshot(pg, "room-report.png", full_page=True)
    pg.context.close()
    assert errors == []
    assert all(u.startswith(room.url) or u.startswith("data:") for u in requests), requests


def test_indonesian_mode_shows_no_english_word(room: Room) -> None:
    pg, _requests, errors = new_page(room, 1366, 900)
    pg.goto(room.url + "?layout=laptop&lang=id")
    wait_for_los(pg)
    pg.wait_for_function(
        "() => document.querySelector('#health-engine dd') && "
        "document.querySelectorAll('.ix .plan').length > 0",
        timeout=60_000,
    )
    for details in pg.locator("details").all():
        details.evaluate("d => d.open = true")
    text = pg.locator("body").inner_text()
    words = {w.strip(".,:;()“”\"'·/–-").lower() for w in text.split()}
    found = sorted(words & ENGLISH_WORDS)
    assert found == [], f"English words on the Indonesian page: {found}"
    assert "WITA" in text, "times carry the site's zone"
    pg.context.close()
    assert errors == []
