"""The dashboard end to end: real headless Chromium against a running engine.

One engine for the module (``build_engine`` on a config with ``[dashboard]``, exactly as
``atcs run`` builds it) plays two real clips through the real detector, publishes to a
real Mosquitto and stores in a real InfluxDB, both started by the suite. Debian's
``chromium`` (never a downloaded browser) is driven with Playwright. Screenshots of the
wall and laptop layouts go to ``artifacts/dashboard/`` (``ATCS_ARTIFACTS_DIR`` overrides).
The last test runs Schemathesis against the running API's OpenAPI schema.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from atcs.bus.payloads import decode_timing_plan
from atcs.config import load_config
from atcs.service import Engine, build_engine
from atcs.types import PlanMode
from atcs.web import Dashboard
from tests.support.influxdb import InfluxServer
from tests.support.mosquitto import Collector, Mosquitto
from tests.support.page_checks import IMAGES_LOADED

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = Path(os.environ.get("ATCS_ARTIFACTS_DIR", REPO / "artifacts")) / "dashboard"
CHROMIUM = os.environ.get("ATCS_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run",
]  # fmt: skip
OPERATOR = ("alice", "e2e-operator-pw")
VIEWER = ("victor", "e2e-viewer-pw")
IX = "simpang-uji"
DB = "atcs_web_e2e"
PLAN_TOPIC = f"atcs/v1/intersections/{IX}/plan"


def site_toml(tmp: Path, media: Path, model: str, broker: Mosquitto, influx_url: str) -> str:
    return f"""
[site]
id = "e2e"
name = "Simpang Uji"
timezone = "Asia/Jakarta"

[detector]
model = "{model}"
image_size_px = 640

[analysis]
window_s = 2.0

[service]
state_dir = "{tmp / "var"}"

[mqtt]
host = "127.0.0.1"
port = {broker.port}
reconnect_min_s = 1
reconnect_max_s = 2
keepalive_s = 5

[influx]
api = "v1"
url = "{influx_url}"
database = "{DB}"
flush_interval_s = 1.0

[dashboard]
host = "127.0.0.1"
port = 0                            # any free port; the test reads the bound one
language = "id"
allow_anonymous_viewers = true
refresh_s = 0.5
snapshot_interval_s = 0.5
users = [
  {{ name = "{OPERATOR[0]}", role = "operator", password_env = "ATCS_E2E_OPERATOR_PW" }},
  {{ name = "{VIEWER[0]}", role = "viewer", password_env = "ATCS_E2E_VIEWER_PW" }},
]

[[cameras]]
id = "pontianak"
name = "Jl. Ahmad Yani, Pontianak"
source = "{media / "pontianak_motorcycles.mp4"}"
sample_fps = 3.0
loop = true

[[cameras]]
id = "motorway"
name = "Motorway overpass"
source = "{media / "motorway_overpass.mp4"}"
sample_fps = 3.0
loop = true

[[segments]]
id = "inbound"
name = "Right carriageway, toward the camera"
camera = "pontianak"
polygon = [[0.59, 0.00], [0.76, 0.00], [1.00, 0.42], [1.00, 1.00], [0.50, 1.00], [0.60, 0.40]]
length_m = 30.0
lanes = 2

[[segments]]
id = "carriageway"
name = "Motorway southbound"
camera = "motorway"
polygon = [[0.46, 0.15], [0.59, 0.15], [0.97, 1.00], [0.05, 1.00]]
length_m = 90.0
lanes = 3

[[lines]]
id = "inbound-count"
camera = "pontianak"
segment = "inbound"
points = [[0.55, 0.30], [1.00, 0.30]]

[[intersections]]
id = "{IX}"
name = "Simpang Uji"
controller = "webster"
cycle_min_s = 14.0
cycle_max_s = 30.0
max_cycle_step_s = 20.0
max_split_step_s = 20.0
stale_after_s = 30.0

[[intersections.phases]]
id = "north"
segments = ["inbound"]
min_green_s = 3.0
max_green_s = 12.0
yellow_s = 3.0
all_red_s = 1.0

[[intersections.phases]]
id = "east"
segments = ["carriageway"]
min_green_s = 3.0
max_green_s = 12.0
yellow_s = 3.0
all_red_s = 1.0

[[intersections.fallback_plans]]
starts_at = "00:00"
name = "day"
greens_s = {{ north = 5.0, east = 5.0 }}

[[intersections.fallback_plans]]
starts_at = "23:59"
name = "event"
greens_s = {{ north = 12.0, east = 4.0 }}
"""


@dataclass
class Site:
    """The running engine, its dashboard, the servers, the bus subscriber and the browser."""

    engine: Engine
    dashboard: Dashboard
    broker: Mosquitto
    influx: InfluxServer
    plans: Collector
    browser: Browser
    state_dir: Path

    @property
    def url(self) -> str:
        return self.dashboard.url


def _get_json(url: str) -> object:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.loads(resp.read())


@pytest.fixture(scope="module")
def site(
    tmp_path_factory: pytest.TempPathFactory,
    media_dir: Path,
    model_path: str,
    influxdb: InfluxServer,
) -> Iterator[Site]:
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"chromium not found at {CHROMIUM}: apt-get install -y chromium")
    tmp = tmp_path_factory.mktemp("dashboard-e2e")
    broker = Mosquitto(tmp / "mosquitto")
    broker.start()
    config = tmp / "site.toml"
    config.write_text(site_toml(tmp, media_dir, model_path, broker, influxdb.url))
    plans = Collector(broker, PLAN_TOPIC)
    with pytest.MonkeyPatch.context() as mp, sync_playwright() as pw:
        mp.setenv("ATCS_E2E_OPERATOR_PW", OPERATOR[1])
        mp.setenv("ATCS_E2E_VIEWER_PW", VIEWER[1])
        engine = build_engine(load_config(config))
        dashboard = next(s for s in engine.sinks if isinstance(s, Dashboard))
        runner = threading.Thread(target=engine.run, name="e2e-engine", daemon=True)
        runner.start()
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        expect.set_options(timeout=10_000)  # two shared cores: give the page time
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    _get_json(dashboard.url + "api/whoami")
                    break
                except OSError:
                    time.sleep(0.2)
            yield Site(engine, dashboard, broker, influxdb, plans, browser, tmp / "var")
        finally:
            browser.close()
            engine.stop()
            runner.join(60)
            plans.close()
            broker.kill()
    assert not runner.is_alive(), "the engine stops"


@pytest.fixture
def page(site: Site) -> Iterator[Page]:
    context = site.browser.new_context(viewport={"width": 1366, "height": 768})
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    yield pg
    context.close()
    assert errors == [], f"the page raised: {errors}"


def screenshot(pg: Page, name: str, *, full_page: bool = False) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    pg.screenshot(path=str(path), full_page=full_page)
    return path


def values(pg: Page, field: str) -> dict[str, str]:
    cells = pg.locator(f"tr[data-segment] td[data-field='{field}']")
    out: dict[str, str] = {}
    for i in range(cells.count()):
        cell = cells.nth(i)
        row = cell.locator("xpath=..")
        out[row.get_attribute("data-segment") or ""] = cell.get_attribute("data-value") or ""
    return out


# Counts the magenta pixels of the snapshot the <img> shows. The wall swaps the element's
# src for each new snapshot, and mid-swap it has no pixels (naturalWidth 0), so the count
# is taken on a private copy of the same URL, decoded before it is drawn.
MAGENTA_PIXELS = """async (img) => {
  const copy = new Image();
  copy.src = img.currentSrc || img.src;
  await copy.decode();
  const c = document.createElement('canvas');
  c.width = copy.naturalWidth; c.height = copy.naturalHeight;
  const g = c.getContext('2d'); g.drawImage(copy, 0, 0);
  const d = g.getImageData(0, 0, c.width, c.height).data;
  let n = 0;
  for (let i = 0; i < d.length; i += 4) if (d[i] > 190 && d[i + 2] > 190 && d[i + 1] < 90) n++;
  return n;
}"""


def test_board_and_camera_wall_update_live(site: Site, page: Page) -> None:
    page.goto(site.url)
    expect(page.locator("#board-h")).to_have_text("Papan kepadatan")
    rows = page.locator("tr[data-segment]")
    expect(rows).to_have_count(2)
    expect(page.locator("tr[data-segment='inbound'] .seg-name")).to_have_text(
        "Right carriageway, toward the camera"
    )
    page.wait_for_function(
        "() => [...document.querySelectorAll('tr[data-segment]')].every(r => r.dataset.los)",
        timeout=30_000,
    )
    # the badge shows the row's level of service (read together: the board re-renders)
    page.wait_for_function(
        "() => { const r = document.querySelector(\"tr[data-segment='inbound']\");"
        " return r && r.dataset.los && r.querySelector('.los-badge')?.textContent"
        " === r.dataset.los; }",
        timeout=15_000,
    )
    expect(page.locator("tr[data-segment='inbound'] .los-label")).not_to_be_empty()
    seen: dict[str, set[str]] = {"inbound": set(), "carriageway": set()}
    ends: set[str] = set()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        for seg, value in values(page, "vehicles").items():
            seen[seg].add(value)
        ends.add(page.locator("tr[data-segment='carriageway'] td.updated").inner_text())
        if len(ends) >= 3 and all(len(v) >= 2 for v in seen.values()):
            break
        page.wait_for_timeout(500)
    assert len(ends) >= 3, "new windows keep arriving"
    assert all(len(v) >= 2 for v in seen.values()), f"values change as the clip plays: {seen}"
    camera = page.locator("figure[data-camera='pontianak']")
    expect(camera.locator(".cam-state")).to_have_text("mengalir")
    image = camera.locator("img.snapshot")
    expect(image).to_be_visible(timeout=20_000)
    page.wait_for_function(
        "() => { const i = document.querySelector(\"figure[data-camera='pontianak'] img\");"
        " return i && i.complete && i.naturalWidth > 0; }",
        timeout=20_000,
    )
    first_seq = image.get_attribute("data-seq")
    assert image.evaluate(MAGENTA_PIXELS) > 100, "the counting line is drawn on the image"
    page.wait_for_function(
        f"() => document.querySelector(\"figure[data-camera='pontianak'] img\")"
        f".dataset.seq !== '{first_seq}'",
        timeout=15_000,
    )
    mqtt = page.locator("#health-outputs .output[data-kind='mqtt']")
    expect(mqtt).to_have_attribute("data-connected", "true", timeout=15_000)
    expect(page.locator("#health-outputs .output[data-kind='influxdb']")).to_have_attribute(
        "data-connected", "true", timeout=15_000
    )
    screenshot(page, "dashboard-laptop.png", full_page=True)
    page.locator("#lang-toggle").click()
    expect(page.locator("#board-h")).to_have_text("Congestion board")
    expect(camera.locator(".cam-state")).to_have_text("streaming")
    wall = site.browser.new_page(viewport={"width": 1920, "height": 1080})
    try:
        wall.goto(site.url + "?layout=wall&lang=en")
        expect(wall.locator("body")).to_have_class("layout-wall")
        wall.wait_for_function(
            IMAGES_LOADED,
            arg="figure.camera img",
            timeout=20_000,
        )
        size = wall.locator("#board-h").evaluate("e => parseFloat(getComputedStyle(e).fontSize)")
        assert size >= 24, "the wall layout is readable from across a room"
        screenshot(wall, "dashboard-wall.png")
    finally:
        wall.close()


def login(pg: Page, user: tuple[str, str]) -> None:
    pg.locator("#login-open").click()
    pg.locator("#login-user").fill(user[0])
    pg.locator("#login-password").fill(user[1])
    pg.locator("#login-submit").click()


POST_OVERRIDE = """async ([ix, body]) => {
  const r = await fetch(`api/intersections/${ix}/override`, {method: 'POST',
    headers: {'Content-Type': 'application/json'}, body: JSON.stringify(body)});
  return [r.status, (await r.json()).code];
}"""


def test_wrong_password_and_viewers_cannot_override(site: Site, page: Page) -> None:
    page.goto(site.url + "?lang=en")
    form = page.locator(f"article[data-ix='{IX}'] form.override-form")
    expect(form.locator(".op-submit")).to_be_disabled()
    expect(form.locator(".op-note")).to_be_visible()
    body = {"action": "hold", "reason": "should not pass"}
    assert page.evaluate(POST_OVERRIDE, [IX, body]) == [401, "login_required"]
    login(page, (VIEWER[0], "not-the-password"))
    error = page.locator("#login-error")
    expect(error).to_be_visible()
    expect(error).to_have_attribute("data-code", "wrong_password")
    expect(error).to_contain_text("Wrong user name or password")
    page.locator("#login-password").fill(VIEWER[1])
    page.locator("#login-submit").click()
    expect(page.locator("#who")).to_have_text("victor (viewer)")
    expect(form.locator(".op-submit")).to_be_disabled()
    assert page.evaluate(POST_OVERRIDE, [IX, body]) == [403, "forbidden"]
    state = _get_json(site.url + f"api/intersections/{IX}")
    assert isinstance(state, dict)
    assert state["override"] is None, "nothing changed"


def test_operator_override_changes_the_plan_and_reaches_the_bus(site: Site, page: Page) -> None:
    page.goto(site.url + "?lang=en")
    login(page, OPERATOR)
    expect(page.locator("#who")).to_have_text("alice (operator)")
    card = page.locator(f"article[data-ix='{IX}']")
    form = card.locator("form.override-form")
    expect(form.locator(".op-submit")).to_be_enabled()
    form.locator(".op-action").select_option("fixed")
    form.locator(".op-plan").select_option("event")
    form.locator(".op-submit").click()
    message = form.locator(".op-msg")
    expect(message).to_have_attribute("data-result", "reason_required")
    expect(message).to_contain_text("Give a reason")
    reason = "Pertandingan sepak bola di stadion"
    form.locator(".op-reason").fill(reason)
    sent_at = time.monotonic()
    form.locator(".op-submit").click()
    expect(message).to_have_attribute("data-result", "ok")
    expect(card).to_have_attribute("data-source", "fixed")
    expect(card.locator(".ix-override")).to_contain_text(reason)
    expect(card.locator(".ix-override")).to_contain_text("alice")
    manual = card.locator(".plan[data-mode='manual']").first
    expect(manual).to_be_visible()
    expect(manual.locator(".phase-green[data-phase='north']")).to_have_attribute("data-green", "12")

    def manual_on_bus() -> bool:
        for msg in site.plans.snapshot():
            plan = decode_timing_plan(msg.payload).record
            if plan.mode is PlanMode.MANUAL and reason in plan.reason:
                greens = {p.phase_id: p.green_s for p in plan.phases}
                return greens == {"north": 12.0, "east": 4.0}
        return False

    assert site.plans.wait_for(lambda _m: manual_on_bus(), timeout_s=15), "plan on the bus"
    expect(card.locator(".ix-running .plan")).to_have_attribute(
        "data-mode", "manual", timeout=40_000
    )
    assert time.monotonic() - sent_at < 45
    wall = site.browser.new_page(viewport={"width": 1920, "height": 1080})
    try:
        wall.goto(site.url + "?layout=wall&lang=id")
        expect(wall.locator(f"article[data-ix='{IX}'] .ix-override")).to_be_visible()
        wall.wait_for_function(
            IMAGES_LOADED,
            arg="figure.camera img",
            timeout=20_000,
        )
        screenshot(wall, "dashboard-wall-override.png")
    finally:
        wall.close()
    audit = (site.state_dir / "dashboard" / "operator-actions.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in audit]
    accepted = [r for r in records if r["outcome"] == "accepted"]
    assert accepted[-1]["user"] == "alice"
    assert accepted[-1]["reason"] == reason
    assert any(r["detail"].startswith("reason_required") for r in records)

    def stored() -> list[dict[str, object]]:
        return site.influx.rows(
            "SELECT * FROM operator_action WHERE outcome = 'accepted'", DB, epoch="ms"
        )

    deadline = time.monotonic() + 15
    while not stored() and time.monotonic() < deadline:
        time.sleep(0.5)
    rows = stored()
    assert rows, "the action is written to InfluxDB"
    assert rows[-1]["user"] == "alice"
    assert rows[-1]["reason"] == reason
    assert rows[-1]["plan_name"] == "event"
    form.locator(".op-action").select_option("release")
    form.locator(".op-reason").fill("match over")
    form.locator(".op-submit").click()
    expect(card).not_to_have_attribute("data-source", "fixed")
    expect(card.locator(".ix-override")).to_be_hidden()


def test_links_to_an_unknown_intersection_say_so(site: Site, page: Page) -> None:
    page.goto(site.url + "?lang=en&intersection=simpang-nowhere")
    message = page.locator("#ix-message")
    expect(message).to_be_visible()
    expect(message).to_contain_text("Unknown intersection “simpang-nowhere”")
    expect(message).to_contain_text(IX)
    page.goto(site.url + f"?lang=en&intersection={IX}")
    expect(page.locator(f"article[data-ix='{IX}']")).to_have_class("ix focused")
    expect(page.locator("#ix-message")).to_be_hidden()


def test_outages_are_shown_and_the_page_recovers_by_itself(site: Site, page: Page) -> None:
    page.goto(site.url + "?lang=en")
    mqtt = page.locator("#health-outputs .output[data-kind='mqtt']")
    expect(mqtt).to_have_attribute("data-connected", "true", timeout=15_000)
    site.broker.kill()
    banner = page.locator("[data-banner='broker']")
    expect(banner).to_be_visible(timeout=20_000)
    expect(banner).to_contain_text("MQTT broker unreachable")
    expect(mqtt).to_have_attribute("data-connected", "false")
    expect(page.locator("#health-status")).to_have_attribute("data-status", "degraded")
    site.broker.restart()
    expect(banner).to_have_count(0, timeout=30_000)
    expect(mqtt).to_have_attribute("data-connected", "true")
    site.dashboard.server.stop()
    lost = page.locator("[data-banner='conn']")
    expect(lost).to_be_visible(timeout=10_000)
    expect(lost).to_contain_text("Connection to the engine lost")
    expect(page.locator("#conn")).to_have_attribute("data-state", "lost")
    site.dashboard.server.start()
    expect(lost).to_have_count(0, timeout=15_000)
    expect(page.locator("#conn")).to_have_attribute("data-state", "live")


def test_api_docs_render_offline_under_the_engines_csp(site: Site, page: Page) -> None:
    """``/api/docs`` is served by the engine itself: no CDN, nothing the CSP blocks."""
    base = site.dashboard.url
    requested: list[str] = []
    console: list[str] = []
    page.on("request", lambda r: requested.append(r.url))
    page.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
    page.goto(base + "api/docs")
    expect(page.locator("#api-status")).to_contain_text("paths")
    operations = page.locator("details.op")
    assert operations.count() >= 14
    login = page.locator("details.op", has_text="/api/login")
    login.locator("summary").click()
    expect(login).to_contain_text("login_delayed")
    expect(login.locator("table").last).to_contain_text("429")
    expect(page.locator("#schema-ErrorBody")).to_contain_text("code")
    assert requested, "the page loaded"
    assert all(url.startswith(base) or url.startswith("data:") for url in requested), requested
    assert console == [], console


def test_api_conforms_to_its_openapi_schema(site: Site) -> None:
    """Schemathesis: every operation, a few generated requests each, every default check.

    Runs last: as a logged-in operator its generated overrides may really hold the plan.
    Logout (which ends the session it uses) goes last of all.
    """
    import requests
    import schemathesis
    from hypothesis import HealthCheck, Phase, given, settings

    base = site.url.rstrip("/")
    login = requests.post(
        base + "/api/login", json={"username": OPERATOR[0], "password": OPERATOR[1]}, timeout=10
    )
    headers = {"Authorization": f"Bearer {login.json()['token']}"}
    schema = schemathesis.openapi.from_url(base + "/openapi.json", timeout=10)
    from schemathesis.core.result import Ok

    results = list(schema.get_all_operations())
    operations = [r.ok() for r in results if isinstance(r, Ok)]
    assert len(operations) == len(results), "every operation of the schema is valid"
    operations.sort(key=lambda op: op.label == "POST /api/logout")
    assert len(operations) >= 14
    for operation in operations:

        @settings(
            max_examples=6, deadline=None, database=None, derandomize=True,
            suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate],
        )  # fmt: skip
        @given(case=operation.as_strategy())
        def check(case: schemathesis.Case[Any]) -> None:
            case.call_and_validate(base_url=base, headers=headers, timeout=15)

        check()
