"""The dashboard's HTTP API in-process (FastAPI's TestClient) on a real control loop.

The engine is a small fake :class:`~atcs.web.engine_view.EngineView` (the real engine runs
in ``tests/test_dashboard_browser.py``); the control loop, the supervisor, logins, the
audit log, snapshots and the Prometheus exposition are the real ones. A thread ticks the
control loop every 50 ms the way the engine's tick does.
"""

from __future__ import annotations

import json
import threading
import urllib.request
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from atcs.bus.nodes import NodeStatus
from atcs.config import AtcsConfig, parse_config
from atcs.control import ControlLoop, Source
from atcs.errors import ConfigError
from atcs.metrics import FrameAnalysis
from atcs.snapshots import Snapshotter
from atcs.types import (
    CameraId,
    CameraState,
    CameraStatus,
    Detections,
    Frame,
    IntersectionId,
    LevelOfService,
    SegmentId,
    SegmentMetrics,
    SiteId,
    TimingPlan,
    VehicleClass,
)
from atcs.web import build_context
from atcs.web.app import create_app
from atcs.web.context import DashboardContext
from atcs.web.engine_view import EngineCounters, OutputHealth
from atcs.web.server import WebServer

with warnings.catch_warnings():  # starlette asks for httpx2; httpx works the same here
    warnings.filterwarnings("ignore", message="Using `httpx` with")
    from fastapi.testclient import TestClient

OPERATOR = ("alice", "op-secret-1")
VIEWER = ("victor", "view-secret-1")
ENV = {"T_OP_PW": OPERATOR[1], "T_VIEW_PW": VIEWER[1]}
IX = IntersectionId("simpang-uji")


def site_raw(state_dir: Path, **dashboard: Any) -> dict[str, Any]:
    """A two-camera site with one two-phase intersection and a dashboard."""
    dash: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": 0,
        "allow_anonymous_viewers": True,
        "users": [
            {"name": OPERATOR[0], "role": "operator", "password_env": "T_OP_PW"},
            {"name": VIEWER[0], "role": "viewer", "password_env": "T_VIEW_PW"},
        ],
    }
    dash.update(dashboard)
    phase = {"min_green_s": 3.0, "max_green_s": 15.0, "yellow_s": 3.0, "all_red_s": 1.0}
    return {
        "site": {"id": "test", "name": "Simpang Uji", "timezone": "Asia/Jakarta"},
        "service": {"state_dir": str(state_dir)},
        "cameras": [
            {"id": "cam-n", "name": "North", "source": "north.mp4"},
            {"id": "cam-e", "name": "East", "source": "east.mp4"},
        ],
        "segments": [
            {
                "id": "n-in",
                "camera": "cam-n",
                "name": "North approach",
                "length_m": 30.0,
                "lanes": 2,
                "polygon": [[0.1, 0.1], [0.9, 0.1], [0.9, 0.9], [0.1, 0.9]],
            },
            {
                "id": "e-in",
                "camera": "cam-e",
                "length_m": 60.0,
                "lanes": 3,
                "polygon": [[0.2, 0.2], [0.8, 0.2], [0.8, 0.8]],
            },
        ],
        "lines": [
            {
                "id": "n-count",
                "camera": "cam-n",
                "segment": "n-in",
                "points": [[0.1, 0.5], [0.9, 0.5]],
            },
        ],
        "intersections": [
            {
                "id": IX,
                "name": "Simpang Uji",
                "controller": "webster",
                "cycle_min_s": 14.0,
                "cycle_max_s": 40.0,
                "max_cycle_step_s": 20.0,
                "max_split_step_s": 20.0,
                "stale_after_s": 30.0,
                "phases": [
                    {"id": "north", "segments": ["n-in"], **phase},
                    {"id": "east", "segments": ["e-in"], **phase},
                ],
                "fallback_plans": [
                    {"starts_at": "00:00", "name": "day", "greens_s": {"north": 5, "east": 5}},
                    {"starts_at": "23:59", "name": "event", "greens_s": {"north": 12, "east": 4}},
                ],
            }
        ],
        "dashboard": dash,
    }


def metrics_window(segment: str, camera: str, end: datetime, density: float) -> SegmentMetrics:
    """One fresh 2-second window of ``segment`` with the given density."""
    return SegmentMetrics(
        site_id=SiteId("test"),
        camera_id=CameraId(camera),
        segment_id=SegmentId(segment),
        window_start=end - timedelta(seconds=2),
        window_end=end,
        frames=6,
        vehicles=density / 10,
        vehicles_by_class={VehicleClass.CAR: density / 20, VehicleClass.MOTORCYCLE: density / 20},
        pcu=density / 12,
        density_pcu_km_lane=density,
        occupancy=0.2,
        flow_veh_h=360.0,
        flows=(),
        queue_m=None,
        queue_max_m=None,
        los=LevelOfService.C if density < 20 else LevelOfService.F,
        congested=density >= 20,
        stale=False,
    )


@dataclass
class FakeEngine:
    """An :class:`EngineView` with a real control loop and settable health."""

    config: AtcsConfig
    loop: ControlLoop | None
    broker_connected: bool = True
    statuses: list[CameraStatus] = field(default_factory=list)

    @property
    def cfg(self) -> AtcsConfig:
        return self.config

    @property
    def control(self) -> ControlLoop | None:
        return self.loop

    def camera_statuses(self) -> Sequence[CameraStatus]:
        return self.statuses

    def nodes(self) -> Sequence[NodeStatus]:
        return ()

    def counters(self) -> EngineCounters:
        return EngineCounters(datetime.now(UTC) - timedelta(seconds=90), 120, 1, 0, 0, 2, 40)

    def outputs(self) -> Sequence[OutputHealth]:
        up = self.broker_connected
        mqtt = OutputHealth(
            "MQTT broker", "mqtt", up, "connected" if up else "disconnected",
            "" if up else "connection refused", 0 if up else 7, 0 if up else 7,
            {"published": 33, "disk_queue": 0 if up else 7, "connected": up},
        )  # fmt: skip
        return [mqtt]


@dataclass
class Api:
    """The app under test, its context, the fake engine and the plans the loop published."""

    client: TestClient
    ctx: DashboardContext
    engine: FakeEngine
    published: list[TimingPlan]
    cfg: AtcsConfig
    control: ControlLoop

    def login(self, user: tuple[str, str]) -> dict[str, Any]:
        r = self.client.post("/api/login", json={"username": user[0], "password": user[1]})
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    def override(self, **body: Any) -> Any:
        return self.client.post(f"/api/intersections/{IX}/override", json=body)


def make_api(tmp_path: Path, **dashboard: Any) -> Iterator[Api]:
    """Build the app on a ticking control loop; stop the ticker at the end."""
    cfg = parse_config(site_raw(tmp_path / "var", **dashboard), tmp_path, dict(ENV))
    published: list[TimingPlan] = []
    loop = ControlLoop.from_config(cfg, published.append)
    now = datetime.now(UTC)
    statuses = [
        CameraStatus(CameraId(c.id), CameraState.STREAMING, 5.0, now, "frames arriving")
        for c in cfg.cameras
    ]
    engine = FakeEngine(cfg, loop, statuses=statuses)
    assert cfg.dashboard is not None
    ctx = build_context(cfg.dashboard, engine, environ=ENV)
    stop = threading.Event()

    def tick() -> None:
        while not stop.wait(0.05):
            loop.tick()

    ticker = threading.Thread(target=tick, daemon=True)
    ticker.start()
    ctx.audit.start()
    with TestClient(create_app(ctx)) as client:
        yield Api(client, ctx, engine, published, cfg, loop)
    stop.set()
    ticker.join(5)
    ctx.auth.close()
    ctx.audit.close()


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    yield from make_api(tmp_path)


def audit_lines(api: Api) -> list[dict[str, Any]]:
    path = api.ctx.audit.path
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def wait_for(predicate: Any, timeout_s: float = 5.0) -> bool:
    deadline = datetime.now(UTC) + timedelta(seconds=timeout_s)
    while datetime.now(UTC) < deadline:
        if predicate():
            return True
        threading.Event().wait(0.05)
    return bool(predicate())


# --- schema and reading ------------------------------------------------------------------


def test_openapi_documents_every_endpoint(api: Api) -> None:
    schema = api.client.get("/openapi.json").json()
    paths = set(schema["paths"])
    assert {
        "/api/overview", "/api/segments", "/api/segments/{segment_id}", "/api/cameras",
        "/api/cameras/{camera_id}/snapshot.jpg", "/api/intersections",
        "/api/intersections/{intersection_id}", "/api/intersections/{intersection_id}/plans",
        "/api/intersections/{intersection_id}/override", "/api/health", "/api/login",
        "/api/logout", "/api/whoami", "/metrics",
    } <= paths  # fmt: skip
    override = schema["paths"]["/api/intersections/{intersection_id}/override"]["post"]
    assert {"202", "401", "403", "404", "422"} <= set(override["responses"])
    assert "ErrorBody" in schema["components"]["schemas"]


def test_overview_shows_segments_with_values_los_and_a_bounded_trend(tmp_path: Path) -> None:
    for api in make_api(tmp_path, trend_windows=4):
        empty = api.client.get("/api/overview").json()
        assert [s["segment_id"] for s in empty["segments"]] == ["n-in", "e-in"]
        assert empty["segments"][0]["los"] is None, "no window yet: no values invented"
        assert empty["timezone"] == "Asia/Jakarta"
        t0 = datetime.now(UTC).replace(microsecond=0)
        for i, density in enumerate([5.0, 8.0, 12.0, 18.0, 25.0, 30.0]):
            end = t0 + timedelta(seconds=2 * i)
            api.ctx.board.add_metrics([metrics_window("n-in", "cam-n", end, density)])
        seg = api.client.get("/api/segments/n-in").json()
        assert seg["density_pcu_km_lane"] == pytest.approx(30.0)
        assert seg["los"] == "F"
        assert seg["congested"] is True
        assert seg["vehicles_by_class"] == {"car": 1.5, "motorcycle": 1.5}
        assert [p["density_pcu_km_lane"] for p in seg["trend"]] == [12.0, 18.0, 25.0, 30.0]
        assert seg["windows"] == 6
        assert api.client.get("/api/segments/nope").json()["code"] == "unknown_segment"
        health = api.client.get("/api/health").json()
        assert health["status"] == "ok"
        assert health["sinks"][0]["kind"] == "mqtt"
        api.engine.broker_connected = False
        health = api.client.get("/api/health").json()
        assert health["status"] == "degraded"
        assert any("MQTT broker: disconnected" in p for p in health["problems"])


def test_snapshot_is_the_annotated_latest_frame(api: Api) -> None:
    assert api.client.get("/api/cameras/nope/snapshot.jpg").json()["code"] == "unknown_camera"
    r = api.client.get("/api/cameras/cam-n/snapshot.jpg")
    assert r.status_code == 503
    assert r.json()["code"] == "no_image_yet"
    image = np.full((720, 1280, 3), 90, dtype=np.uint8)
    frame = Frame(CameraId("cam-n"), 7, datetime.now(UTC), image)
    box = Detections(
        np.array([[500, 300, 700, 450]], dtype=np.float32),
        np.array([0.9], dtype=np.float32),
        np.array([0]),
        np.array([3]),
    )
    analysis = FrameAnalysis(CameraId("cam-n"), 7, frame.captured_at, None, box, (), ())
    snaps = api.ctx.snapshots
    assert isinstance(snaps, Snapshotter)  # role all: encoded from the engine's frames
    snaps.observe(frame, analysis)
    snaps.start()
    try:
        assert wait_for(lambda: snaps.snapshot("cam-n") is not None)
    finally:
        snaps.stop()
    r = api.client.get("/api/cameras/cam-n/snapshot.jpg")
    assert r.status_code == 200
    assert r.headers["content-type"] == "image/jpeg"
    decoded = cv2.imdecode(np.frombuffer(r.content, np.uint8), cv2.IMREAD_COLOR)
    assert decoded is not None
    assert decoded.shape[1] == api.cfg.dashboard.snapshot_width_px  # type: ignore[union-attr]
    plain = cv2.resize(image, (decoded.shape[1], decoded.shape[0]))
    changed = np.abs(decoded.astype(int) - plain.astype(int)).max(axis=2) > 40
    assert changed[int(0.1 * 540) : int(0.9 * 540), int(0.1 * 960)].any(), "polygon drawn"
    scaled_box = changed[225:338, 375:525]
    assert scaled_box.any(), "the vehicle box is drawn at its scaled place"
    cams = api.client.get("/api/cameras").json()
    north = next(c for c in cams if c["camera_id"] == "cam-n")
    assert north["snapshot_seq"] == 7
    assert north["frames_analysed"] == 1
    assert north["detections"] == 1
    assert north["snapshot_url"].startswith("api/cameras/cam-n/snapshot.jpg")


def test_metrics_exposition_parses_and_counts(api: Api) -> None:
    api.ctx.board.add_metrics([metrics_window("e-in", "cam-e", datetime.now(UTC), 14.0)])
    r = api.client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(r.text)}
    for name in (
        "atcs_frames_detected", "atcs_windows_published", "atcs_result_queue",
        "atcs_camera_frames_analysed", "atcs_camera_detections", "atcs_camera_lag_seconds",
        "atcs_output_connected", "atcs_output_queued", "atcs_output_spooled",
        "atcs_mqtt_published", "atcs_segment_density_pcu_km_lane", "atcs_uptime_seconds",
        "atcs_operator_actions", "atcs_control_events",
    ):  # fmt: skip
        assert name in families, name
    density = {
        s.labels["segment"]: s.value for s in families["atcs_segment_density_pcu_km_lane"].samples
    }
    assert density == {"e-in": 14.0}
    frames = [s for s in families["atcs_frames_detected"].samples if s.name.endswith("_total")]
    assert frames[0].value == 120


def test_security_headers_and_the_page(api: Api) -> None:
    r = api.client.get("/")
    assert r.status_code == 200
    assert "static/app.js" in r.text
    assert "script-src 'self'" in r.headers["content-security-policy"]
    assert r.headers["x-content-type-options"] == "nosniff"
    assert api.client.get("/static/i18n.js").status_code == 200
    assert api.client.get("/no/such/page").json()["code"] == "not_found"


# --- logins and rights -------------------------------------------------------------------


def test_wrong_passwords_delay_the_next_attempt_but_never_lock_the_name_out(
    tmp_path: Path,
) -> None:
    for api in make_api(tmp_path, login_failures_max=3, login_delay_s=0.3, login_delay_max_s=0.6):
        for _ in range(3):
            r = api.client.post("/api/login", json={"username": "alice", "password": "nope"})
            assert r.status_code == 401
            assert r.json()["code"] == "wrong_password"
        r = api.client.post("/api/login", json={"username": "alice", "password": OPERATOR[1]})
        assert r.status_code == 429, "the address waits, even with the right password"
        assert r.json()["code"] == "login_delayed"
        assert r.headers["retry-after"] == "1"
        r = api.client.post("/api/login", json={"username": "nobody", "password": "x"})
        assert r.json()["code"] == "login_delayed", "unknown names get the same answer"
        threading.Event().wait(0.35)
        assert api.login(OPERATOR)["role"] == "operator", "after the wait the password works"
        assert api.ctx.counters().by_name["login_delayed"] == 2


def test_login_sets_a_strict_http_only_cookie_and_logout_ends_it(api: Api) -> None:
    r = api.client.post("/api/login", json={"username": OPERATOR[0], "password": OPERATOR[1]})
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie
    assert "samesite=strict" in cookie
    token = r.json()["token"]
    assert api.client.get("/api/whoami").json()["user"] == "alice"
    bearer = {"Authorization": f"Bearer {token}"}
    api.client.post("/api/logout")
    assert api.client.get("/api/whoami").json()["role"] == "anonymous"
    assert api.client.get("/api/whoami", headers=bearer).json()["role"] == "anonymous"


def test_reading_needs_a_login_when_anonymous_viewers_are_off(tmp_path: Path) -> None:
    for api in make_api(tmp_path, allow_anonymous_viewers=False):
        r = api.client.get("/api/overview")
        assert r.status_code == 401
        assert r.json()["code"] == "login_required"
        token = api.login(VIEWER)["token"]
        assert api.client.get("/api/overview").status_code == 200
        api.client.cookies.clear()
        bearer = {"Authorization": f"Bearer {token}"}
        assert api.client.get("/api/segments", headers=bearer).status_code == 200


def test_viewers_cannot_override(api: Api) -> None:
    r = api.override(action="hold", reason="testing")
    assert r.status_code == 401
    assert r.json()["code"] == "login_required"
    api.login(VIEWER)
    r = api.override(action="hold", reason="testing")
    assert r.status_code == 403
    assert r.json()["code"] == "forbidden"
    state = api.control.state()[IX]
    assert state.override is None
    assert audit_lines(api) == [], "refusals before authentication are not operator actions"


# --- operator actions --------------------------------------------------------------------


def test_bad_requests_get_clear_answers_and_are_audited(api: Api) -> None:
    api.login(OPERATOR)
    r = api.override(action="fixed", plan_name="event", reason="   ")
    assert (r.status_code, r.json()["code"]) == (422, "reason_required")
    r = api.client.post("/api/intersections/nope/override", json={"action": "hold", "reason": "x"})
    assert (r.status_code, r.json()["code"]) == (404, "unknown_intersection")
    assert IX in r.json()["message"], "the known intersections are named"
    r = api.override(action="fixed", plan_name="carnival", reason="x")
    assert (r.status_code, r.json()["code"]) == (422, "override_refused")
    assert "carnival" in r.json()["message"]
    r = api.override(action="fixed", greens_s={"north": 2.0, "east": 5.0}, reason="x")
    assert r.json()["code"] == "override_refused", "greens below the minimum are refused"
    r = api.override(action="hold")
    assert (r.status_code, r.json()["code"]) == (422, "invalid_request")
    assert "reason" in r.json()["message"]
    lines = audit_lines(api)
    assert [ln["outcome"] for ln in lines] == ["refused"] * 4
    assert lines[0]["user"] == "alice"
    assert lines[0]["detail"].startswith("reason_required")
    assert api.engine.loop.state()[IX].override is None  # type: ignore[union-attr]


def test_an_operator_fixes_a_plan_and_releases_it(api: Api) -> None:
    api.login(OPERATOR)
    assert wait_for(lambda: api.published), "the loop publishes a first plan"
    r = api.override(action="fixed", plan_name="event", reason="football match")
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["applied"] is True
    ix = body["intersection"]
    assert ix["source"] == Source.FIXED.value
    assert ix["override"]["who"] == "alice"
    assert ix["override"]["why"] == "football match"
    assert wait_for(lambda: any(p.controller == "manual" for p in api.published))
    manual = next(p for p in api.published if p.controller == "manual")
    assert {p.phase_id: p.green_s for p in manual.phases} == {"north": 12.0, "east": 4.0}
    assert "football match" in manual.reason
    shown = api.client.get(f"/api/intersections/{IX}").json()
    plans = [shown["pending"], shown["running"], *shown["plans"]]
    assert any(p and p["mode"] == "manual" for p in plans), "the page sees the manual plan"
    r = api.override(action="release", reason="match over")
    assert r.status_code == 202
    assert r.json()["intersection"]["override"] is None
    lines = audit_lines(api)
    assert [(ln["action"], ln["outcome"]) for ln in lines] == [
        ("fixed", "accepted"),
        ("release", "accepted"),
    ]
    assert lines[0]["plan_name"] == "event"
    assert lines[0]["remote"] == "testclient"
    assert api.ctx.desk.counts == {"accepted": 2, "refused": 0}


# --- the server thread -------------------------------------------------------------------


def test_web_server_serves_on_a_free_port_and_names_a_taken_one(api: Api) -> None:
    server = WebServer(create_app(api.ctx), "127.0.0.1", 0)
    server.start()
    try:
        with urllib.request.urlopen(server.url + "api/whoami", timeout=5) as resp:
            assert json.loads(resp.read())["role"] == "anonymous"
        other = WebServer(create_app(api.ctx), "127.0.0.1", server.port)
        with pytest.raises(ConfigError, match=f"cannot listen on 127.0.0.1:{server.port}"):
            other.start()
    finally:
        server.stop()


def test_build_engine_attaches_the_dashboard_and_a_taken_port_stops_the_start(
    tmp_path: Path,
) -> None:
    import socket

    from atcs.service import build_engine
    from atcs.web import Dashboard

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        cfg = parse_config(site_raw(tmp_path / "var", port=port), tmp_path, dict(ENV))
        engine = build_engine(cfg)
        dashboards = [s for s in engine.sinks if isinstance(s, Dashboard)]
        assert len(dashboards) == 1
        assert engine.sinks[0] is dashboards[0], "started first, closed last"
        snapshots = dashboards[0].ctx.snapshots
        assert isinstance(snapshots, Snapshotter)
        assert snapshots.observe in engine.frame_observers
        with pytest.raises(ConfigError, match=f"cannot listen on 127.0.0.1:{port}"):
            engine.start()
        assert engine.cameras is None, "nothing else started"
    no_dash = parse_config(site_raw(tmp_path / "var"), tmp_path, dict(ENV))
    del_dash = no_dash.model_copy(update={"dashboard": None})
    assert not any(isinstance(s, Dashboard) for s in build_engine(del_dash).sinks)
