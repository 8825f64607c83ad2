"""Pure pieces of the dashboard: passwords, sessions, config, the board store,
the audit record, the labels of both languages, the example config and the Grafana files."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from atcs.config import load_config, parse_config
from atcs.config.dashboard import DashboardConfig
from atcs.control import PlanState, Source
from atcs.errors import ConfigError
from atcs.storage import camera_point, encode, metrics_point, plan_point
from atcs.types import (
    CameraId,
    CameraState,
    CameraStatus,
    IntersectionId,
    LevelOfService,
    PhaseId,
    PhaseTiming,
    PlanMode,
    SiteId,
    TimingPlan,
)
from atcs.web.audit import AuditRecord
from atcs.web.auth import (
    LoginRefused,
    SessionStore,
    UserDirectory,
    hash_password,
    verify_password,
)
from atcs.web.board import BoardStore
from tests.test_web_api import metrics_window

STATIC = Path(__file__).resolve().parents[1] / "atcs" / "web" / "static"
FAST = {"n": 2**10, "r": 8, "p": 1}
EXPENSIVE = hash_password("x", **FAST)  # its N or p raised below: a login must stay cheap


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# --- passwords, sessions ------------------------------------------------------------------


def test_scrypt_hash_verifies_only_the_right_password() -> None:
    encoded = hash_password("correct horse", **FAST)
    assert encoded.startswith("scrypt$1024$8$1$")
    assert verify_password("correct horse", encoded)
    assert not verify_password("correct horsE", encoded)
    assert not verify_password("correct horse", encoded.replace("scrypt$", "bcrypt$"))
    assert hash_password("correct horse", **FAST) != encoded, "fresh salt every time"
    DashboardConfig.model_validate({"users": [{"name": "a", "password_hash": encoded}]})


def test_user_directory_reads_env_passwords_and_skips_unset_ones() -> None:
    cfg = DashboardConfig.model_validate(
        {
            "users": [
                {"name": "op", "role": "operator", "password_env": "OP_PW"},
                {"name": "ghost", "password_env": "UNSET_PW"},
                {"name": "v", "password_hash": hash_password("viewer-pw", **FAST)},
            ]
        }
    )
    users = UserDirectory(cfg, {"OP_PW": "op-pw"})
    assert len(users) == 2, "a user whose variable is unset cannot log in"
    assert users.check("op", "op-pw") == "operator"
    assert users.check("op", "wrong") is None
    assert users.check("v", "viewer-pw") == "viewer"
    assert users.check("ghost", "") is None
    assert users.check("nobody", "op-pw") is None


def test_sessions_expire_and_are_bounded() -> None:
    clock = Clock()
    store = SessionStore(ttl_s=60.0, max_sessions=3, clock=clock)
    first = store.create("a", "operator")
    assert store.get(first.token) == first
    clock.now += 61.0
    assert store.get(first.token) is None, "expired"
    tokens = [store.create(f"u{i}", "viewer").token for i in range(5)]
    assert len(store) == 3
    assert store.get(tokens[0]) is None, "the oldest login is dropped"
    assert store.get(tokens[-1]) is not None
    store.drop(tokens[-1])
    assert store.get(tokens[-1]) is None
    assert store.get(None) is None
    assert store.get("") is None


def test_login_refused_carries_a_code() -> None:
    exc = LoginRefused("login_delayed", "wait", 12.0)
    assert (exc.code, exc.retry_after_s, str(exc)) == ("login_delayed", 12.0, "wait")


# --- config ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("users", "needle"),
    [
        ([{"name": "a"}], "exactly one of password_hash and password_env"),
        (
            [{"name": "a", "password_env": "X", "password_hash": hash_password("x", **FAST)}],
            "exactly one",
        ),
        ([{"name": "a", "password_hash": "plain-text"}], "scrypt$N$r$p$salt$hash"),
        ([{"name": "a", "password_env": "X"}, {"name": "a", "password_env": "Y"}], "duplicate"),
        ([{"name": "a", "role": "admin", "password_env": "X"}], "role"),
        ([{"name": "has space", "password_env": "X"}], "name"),
        (
            [{"name": "a", "password_hash": EXPENSIVE.replace("$1024$8$1$", "$1048576$8$1$")}],
            "scrypt cost too high",
        ),
        (
            [{"name": "a", "password_hash": EXPENSIVE.replace("$1024$8$1$", "$1024$8$64$")}],
            "scrypt cost too high",
        ),
    ],
)
def test_dashboard_config_errors_name_the_field(
    tmp_path: Path, users: list[dict[str, Any]], needle: str
) -> None:
    raw = {
        "site": {"id": "t"},
        "cameras": [{"id": "c", "source": "x.mp4"}],
        "dashboard": {"users": users},
    }
    with pytest.raises(ConfigError) as info:
        parse_config(raw, tmp_path, {})
    assert "dashboard" in str(info.value)
    assert needle in str(info.value)


def test_example_config_serves_the_dashboard(repo_dir: Path) -> None:
    cfg = load_config(repo_dir / "config.toml", environ={})
    dash = cfg.dashboard
    assert dash is not None, "config.toml serves the dashboard for the demo"
    assert dash.host == "127.0.0.1"
    assert dash.port == 8080
    assert dash.allow_anonymous_viewers
    assert [(u.role, u.password_env is not None) for u in dash.users] == [("operator", True)]


# --- board, audit ------------------------------------------------------------------------


def test_board_keeps_the_latest_window_a_bounded_trend_and_ignores_strangers() -> None:
    board = BoardStore(["n-in", "e-in"], trend_windows=3)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    for i in range(5):
        board.add_metrics([metrics_window("n-in", "cam-n", t0 + timedelta(seconds=2 * i), i)])
    board.add_metrics([metrics_window("n-in", "cam-n", t0, 99.0)])  # a late window
    board.add_metrics([metrics_window("other", "cam-x", t0, 1.0)])
    segs = {s.segment_id: s for s in board.segments()}
    n_in = segs["n-in"]
    assert n_in.latest is not None
    assert n_in.latest.density_pcu_km_lane == 4.0, "a late window does not replace a newer one"
    assert [p.density_pcu_km_lane for p in n_in.trend] == [3.0, 4.0, 99.0]
    assert n_in.windows == 6
    assert segs["e-in"].latest is None
    assert board.ignored_total == 1
    board.allow_cameras(["cam-n"])
    board.add_status(CameraStatus(CameraId("cam-n"), CameraState.STALLED, 0.0, None))
    board.add_status(CameraStatus(CameraId("cam-x"), CameraState.STREAMING, 5.0, None))
    status = board.status("cam-n")
    assert status is not None
    assert status.state is CameraState.STALLED
    assert board.status("cam-x") is None


def test_audit_record_as_json_and_as_an_operator_action_point() -> None:
    at = datetime(2026, 5, 1, 7, 30, tzinfo=UTC)
    rec = AuditRecord(
        at=at, site_id="demo", user="alice", role="operator", intersection_id="simpang-demo",
        action="fixed", reason='match "final", gate 3', outcome="accepted",
        detail="handed to the control loop", plan_name="night",
        greens_s={"south": 20.0, "east": 15.5}, remote="10.0.0.7",
    )  # fmt: skip
    data = json.loads(rec.to_json())
    assert data["at"] == "2026-05-01T07:30:00+00:00"
    assert data["greens_s"] == {"south": 20.0, "east": 15.5}
    line = encode(rec.to_point(), "ms")
    assert line is not None
    assert line.startswith(
        "operator_action,action=fixed,intersection=simpang-demo,outcome=accepted,site=demo "
    )
    assert 'user="alice"' in line
    assert 'reason="match \\"final\\", gate 3"' in line
    assert 'greens="south=20,east=15.5"' in line
    assert line.endswith(" 1777620600000")


# --- labels ------------------------------------------------------------------------------


def _label_blocks() -> dict[str, set[str]]:
    blocks: dict[str, set[str]] = {"en": set(), "id": set()}
    for name in ("i18n.js", "labels-room.js"):
        text = (STATIC / name).read_text()
        for lang in ("en", "id"):
            body = re.search(rf"^  {lang}: \{{\n(.*?)^  \}},", text, flags=re.MULTILINE | re.DOTALL)
            assert body is not None, (name, lang)
            blocks[lang] |= set(
                re.findall(r'^\s+"([a-z0-9_.A-Z-]+)":', body.group(1), re.MULTILINE)
            )
    return blocks


def test_both_languages_label_every_key_the_page_uses() -> None:
    blocks = _label_blocks()
    assert blocks["en"] == blocks["id"], blocks["en"] ^ blocks["id"]
    keys = blocks["en"]
    used: set[str] = set()
    for path in STATIC.glob("*.*"):
        text = path.read_text()
        used |= set(re.findall(r'\bt\("([a-z0-9_.]+)"', text))
        used |= set(re.findall(r'data-i18n(?:=|": )"([a-z0-9_.]+)"', text))
    assert used, "the scan finds labels"
    assert used <= keys, used - keys
    dynamic = (
        {f"los.{x.value}" for x in LevelOfService}
        | {f"cam.{x.value}" for x in CameraState}
        | {f"mode.{x.value}" for x in PlanMode}
        | {"mode.none"}
        | {f"source.{x.value}" for x in Source}
        | {f"plan.{x.value}" for x in PlanState}
        | {f"trend.{x}" for x in ("up", "down", "flat")}
        | {f"health.{x}" for x in ("ok", "degraded")}
        | {f"role.{x}" for x in ("operator", "viewer")}
        | {f"op.{x}" for x in ("hold", "fixed", "release")}
        | {f"action.{x}" for x in ("hold", "fixed", "release")}
    )
    assert dynamic <= keys, dynamic - keys
    codes = {
        "wrong_password", "login_delayed", "login_busy", "body_too_large", "login_required",
        "forbidden", "reason_required",
        "unknown_intersection", "override_refused", "invalid_request", "audit_unavailable",
    }  # fmt: skip
    assert {f"err.{c}" for c in codes} <= keys


# --- Grafana -----------------------------------------------------------------------------


def _stored_fields() -> dict[str, set[str]]:
    """Field and tag names of every measurement, from the real point builders."""
    t = datetime(2026, 1, 1, tzinfo=UTC)
    m = metrics_window("s", "c", t, 12.0)
    seg = metrics_point(m)
    from dataclasses import replace

    queued = metrics_point(replace(m, queue_m=3.0, queue_max_m=5.0))
    cam = camera_point(SiteId("x"), CameraStatus(CameraId("c"), CameraState.STREAMING, 5.0, t), t)
    plan = plan_point(
        SiteId("x"),
        TimingPlan(
            IntersectionId("i"), "p", "webster", PlanMode.ADAPTIVE, 20.0, 0.0,
            (PhaseTiming(PhaseId("a"), 6.0, 3.0, 1.0), PhaseTiming(PhaseId("b"), 6.0, 3.0, 1.0)),
            t, "r",
        ),
    )  # fmt: skip
    action = AuditRecord(t, "x", "u", "operator", "i", "fixed", "r", "accepted", plan_name="n")
    out: dict[str, set[str]] = {}
    for p in (seg, queued, cam, plan, action.to_point()):
        out.setdefault(p.measurement, set()).update(p.fields, p.tags)
    return out


def test_grafana_dashboard_queries_only_what_the_engine_stores(repo_dir: Path) -> None:
    dash = json.loads((repo_dir / "deploy/grafana/dashboards/atcs-overview.json").read_text())
    stored = _stored_fields()
    queries = [t["query"] for p in dash["panels"] for t in p.get("targets", [])]
    queries += [v["query"] for v in dash["templating"]["list"]]
    queries += [a["query"] for a in dash["annotations"]["list"]]
    assert len(queries) >= 12
    seen: set[str] = set()
    for q in queries:
        measurement = re.search(r'FROM "([a-z_]+)"', q)
        assert measurement is not None, q
        name = measurement.group(1)
        assert name in stored, q
        seen.add(name)
        for ident in re.findall(r'"([a-z_]+)"', q):
            assert ident in stored[name] or ident == name or ident in {
                "motorcycle", "car", "bus", "truck", "bicycle", "LOS", "density", "flow",
                "congested",
            }, f"{ident!r} in {q}"  # fmt: skip
    assert seen == {"segment_metrics", "signal_plan", "camera_health", "operator_action"}
    for panel in dash["panels"]:
        for target in panel.get("targets", []):
            assert target["datasource"]["uid"] == "atcs-influxdb"
    titles = " ".join(p["title"] for p in dash["panels"]).lower()
    for what in ("density", "flow", "plan", "camera"):
        assert what in titles


def test_grafana_provisioning_points_at_the_dashboard_uid(repo_dir: Path) -> None:
    ds = yaml.safe_load(
        (repo_dir / "deploy/grafana/provisioning/datasources/atcs.yaml").read_text()
    )
    influx = next(d for d in ds["datasources"] if d["type"] == "influxdb")
    assert influx["uid"] == "atcs-influxdb"
    assert "password" not in json.dumps(influx.get("jsonData", {}))
    assert influx["secureJsonData"]["password"].startswith("${")
    prov = yaml.safe_load(
        (repo_dir / "deploy/grafana/provisioning/dashboards/atcs.yaml").read_text()
    )
    assert prov["providers"][0]["type"] == "file"


def test_kubernetes_example_serves_the_dashboard_it_probes(repo_dir: Path) -> None:
    docs = list(yaml.safe_load_all((repo_dir / "deploy/kubernetes/atcs-node.yaml").read_text()))
    kinds = {d["kind"]: d for d in docs}
    import tomllib

    config = tomllib.loads(kinds["ConfigMap"]["data"]["config.toml"])
    dash = DashboardConfig.model_validate(config["dashboard"])
    container = kinds["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert container["ports"][0]["containerPort"] == dash.port
    assert container["readinessProbe"]["httpGet"]["path"] == "/api/whoami"
    names = {e["name"] for e in container["env"]}
    assert {u.password_env for u in dash.users} <= names, "passwords come from secrets"
    assert dash.metrics_token_env in names
    assert dash.secure_cookie == "auto"
    assert dash.trusted_proxies, "behind the Ingress the browser's address is believed"
