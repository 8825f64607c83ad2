"""The InfluxDB sink against real servers: Debian's InfluxDB 1.6 and nginx for the v2 API.

Both write paths are proven by reading the rows back with InfluxQL through ``/query``:
v1 writer -> influxd, and influxdb-client (v2 API) -> nginx -> influxd. Outages stop the
real server mid-run; "engine restarts" close one sink and open another on the same state.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from atcs.config.storage import InfluxConfig, Precision
from atcs.storage import InfluxSink, V1Writer, metrics_point
from atcs.storage.lineprotocol import timestamp
from atcs.types import CameraId, CameraState, CameraStatus, SegmentMetrics, SiteId
from tests.support import wait
from tests.support.influxdb import InfluxServer, NginxProxy, new_db
from tests.support.net import free_port
from tests.support.samples import STORAGE_T0, sample_metrics, timing_plan

pytestmark = pytest.mark.integration

FAST: dict[str, Any] = {
    "flush_interval_s": 0.05,
    "retry_initial_s": 0.05,
    "retry_max_s": 0.3,
    "batch_size": 50,
    "timeout_s": 3.0,
}


def num(sink: InfluxSink) -> dict[str, int]:
    return {k: int(v) for k, v in sink.health().items() if not isinstance(v, str)}


def wait_for(cond: Callable[[], bool]) -> None:
    """Wait up to 20 s for ``cond``: real servers are slower than the scripted writer."""
    wait.wait_for(cond, 20.0)


def drained(sink: InfluxSink) -> bool:
    h = num(sink)
    return h["queue_points"] == 0 and h["spool_points"] == 0 and sink.health()["connected"] is True


def v1_config(server: InfluxServer, db: str, **extra: Any) -> InfluxConfig:
    return InfluxConfig.model_validate(
        {"api": "v1", "url": server.url, "database": db, **FAST, **extra}
    )


def v2_config(proxy: NginxProxy, bucket: str, **extra: Any) -> InfluxConfig:
    return InfluxConfig.model_validate(
        {"api": "v2", "url": proxy.url, "bucket": bucket, **FAST, **extra}
    )


def expected_fields(m: SegmentMetrics) -> dict[str, Any]:
    return dict(metrics_point(m).fields)


def assert_rows_match(
    rows: list[dict[str, Any]], written: list[SegmentMetrics], precision: Precision
) -> None:
    assert len(rows) == len(written)
    for row, m in zip(rows, written, strict=True):
        assert row["time"] == timestamp(m.window_end, precision)
        assert row["site"] == m.site_id
        assert row["camera"] == m.camera_id
        assert row["segment"] == m.segment_id
        want = expected_fields(m)
        got = {k: v for k, v in row.items() if k in want}
        assert got == pytest.approx(want)
        # fields the point leaves out (None queue) are null in the row, never zero
        for key in ("queue_m", "queue_max_m"):
            if key not in want:
                assert row.get(key) is None


EPOCH = {"s": "s", "ms": "ms", "us": "u", "ns": "ns"}


def select_metrics(
    server: InfluxServer, db: str, precision: Precision, **auth: str
) -> list[dict[str, Any]]:
    return server.rows(
        "SELECT * FROM segment_metrics GROUP BY * ORDER BY time", db, epoch=EPOCH[precision], **auth
    )


def test_v1_round_trip_of_every_measurement(influxdb: InfluxServer, tmp_path: Path) -> None:
    db = new_db()  # does not exist yet: the v1 writer creates it
    sink = InfluxSink(v1_config(influxdb, db), SiteId("bandung"), tmp_path)
    sink.start()
    written = [sample_metrics(i, queue=i % 2 == 0) for i in range(120)]
    for i in range(0, 120, 4):
        sink.on_metrics(written[i : i + 4])
    last_frame = datetime.now(UTC) - timedelta(seconds=2)
    sink.on_camera_status(
        CameraStatus(CameraId("cam-1"), CameraState.STREAMING, 1.9, last_frame, 'via "rtsp", ok')
    )
    plan = timing_plan(
        "simpang-dago",
        "plan-7",
        {"p1": 46.0, "p2": 42.0},
        cycle_s=96.0,
        all_red_s=1.0,
        valid_from=STORAGE_T0 + timedelta(seconds=96),
        reason="y=0.52,0.40; L=8 s",
        data_age_s=3.0,
    )
    sink.on_plan(plan)
    wait_for(lambda: num(sink)["points_written"] == 122)
    sink.close()

    assert_rows_match(select_metrics(influxdb, db, "ms"), written, "ms")
    (cam,) = influxdb.rows("SELECT * FROM camera_health GROUP BY *", db)
    assert cam["state"] == "streaming"
    assert cam["up"] is True
    assert cam["fps"] == 1.9
    assert cam["detail"] == 'via "rtsp", ok'
    assert 2.0 <= cam["since_last_frame_s"] < 10.0
    (row,) = influxdb.rows("SELECT * FROM signal_plan GROUP BY *", db)
    assert row["time"] == timestamp(plan.valid_from, "ms")
    assert (row["intersection"], row["controller"], row["mode"]) == (
        "simpang-dago",
        "webster",
        "adaptive",
    )
    assert row["plan_id"] == "plan-7"
    assert row["reason"] == "y=0.52,0.40; L=8 s"
    assert (row["cycle_s"], row["green_p1_s"], row["green_p2_s"]) == (96.0, 46.0, 42.0)
    # the schema keeps ids out of the tags: plan id and times are fields, never series keys
    tag_keys = influxdb.query("SHOW TAG KEYS", db)[0]["series"]
    keys = {s["name"]: sorted(v[0] for v in s["values"]) for s in tag_keys}
    assert keys == {
        "camera_health": ["camera", "site"],
        "segment_metrics": ["camera", "segment", "site"],
        "signal_plan": ["controller", "intersection", "mode", "site"],
    }


@pytest.mark.parametrize("precision", ["ms", "ns", "s"])
def test_v2_client_through_nginx_round_trip(
    influxdb: InfluxServer, influx_v2_proxy: NginxProxy, tmp_path: Path, precision: Precision
) -> None:
    db = new_db()
    influxdb.query(f'CREATE DATABASE "{db}"', method="POST")
    cfg = v2_config(influx_v2_proxy, db, precision=precision)
    sink = InfluxSink(cfg, SiteId("bandung"), tmp_path, environ={"ATCS_INFLUX_TOKEN": "any:thing"})
    sink.start()
    written = [sample_metrics(i, segment=f"seg-{i % 3}") for i in range(90)]
    for m in written:
        sink.on_metrics([m])
    wait_for(lambda: num(sink)["points_written"] == 90)
    sink.close()
    rows = select_metrics(influxdb, db, precision)
    rows.sort(key=lambda r: (r["segment"], r["time"]))
    written.sort(key=lambda m: (m.segment_id, m.window_end))
    assert_rows_match(rows, written, precision)
    log = (influx_v2_proxy.root / "access.log").read_text()
    assert f"POST /api/v2/write?org=-&bucket={db}&precision={precision} " in log


def write_windows(sink: InfluxSink, windows: range, pause_s: float = 0.005) -> list[SegmentMetrics]:
    """Write windows and an order probe: one point rewritten each window (last write wins)."""
    out = []
    for i in windows:
        m = sample_metrics(i)
        probe = sample_metrics(0, segment="order-probe", frames=i)
        sink.on_metrics([m, probe])
        out.append(m)
        time.sleep(pause_s)
    return out


def assert_all_once_in_order(
    server: InfluxServer, db: str, written: list[SegmentMetrics], **auth: str
) -> None:
    rows = server.rows(
        "SELECT * FROM segment_metrics WHERE segment = 'gajah-mada-nb' ORDER BY time", db, **auth
    )
    assert [r["time"] for r in rows] == [timestamp(m.window_end, "ms") for m in written]
    assert [r["vehicles"] for r in rows] == [m.vehicles for m in written]
    (probe,) = server.rows(
        "SELECT frames FROM segment_metrics WHERE segment = 'order-probe'", db, **auth
    )
    assert probe["frames"] == len(written) - 1  # the last write reached the server last


@pytest.mark.parametrize("api", ["v1", "v2"])
def test_outage_mid_run_loses_nothing_and_keeps_order(
    make_influxdb: Callable[..., InfluxServer],
    make_nginx_proxy: Callable[[InfluxServer], NginxProxy],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    api: str,
) -> None:
    server = make_influxdb()
    db = new_db()
    server.query(f'CREATE DATABASE "{db}"', method="POST")
    cfg = v1_config(server, db) if api == "v1" else v2_config(make_nginx_proxy(server), db)
    sink = InfluxSink(cfg, SiteId("bandung"), tmp_path)
    sink.start()
    with caplog.at_level(logging.INFO, logger="atcs.storage"):
        written = write_windows(sink, range(0, 40))
        wait_for(lambda: num(sink)["points_written"] == 80)
        server.stop()
        written += write_windows(sink, range(40, 100))
        wait_for(lambda: num(sink)["spool_points"] > 0 and sink.health()["state"] == "unreachable")
        error = str(sink.health()["last_error"])
        assert ("unreachable" in error) if api == "v1" else ("HTTP 502" in error)
        server.start()
        written += write_windows(sink, range(100, 130))
        wait_for(lambda: drained(sink))
    sink.close()
    assert_all_once_in_order(server, db, written)
    h = num(sink)
    assert h["points_accepted"] == 260
    assert h["points_written"] + h["points_replayed"] == 260
    assert h["points_replayed"] > 0
    messages = [r.getMessage() for r in caplog.records]
    assert any(
        "retried with backoff" in r.getMessage() and r.levelno == logging.WARNING
        for r in caplog.records
    )
    assert any("writing (" in m for m in messages)


def test_engine_restart_while_server_is_down_replays_the_spool(
    make_influxdb: Callable[..., InfluxServer], tmp_path: Path
) -> None:
    server = make_influxdb()
    db = new_db()
    cfg = v1_config(server, db)
    first = InfluxSink(cfg, SiteId("bandung"), tmp_path / "state")
    first.start()
    written = write_windows(first, range(0, 20))
    wait_for(lambda: num(first)["points_written"] == 40)
    server.kill()
    written += write_windows(first, range(20, 50))
    first.close(timeout_s=2.0)  # the server is still down: the rest is persisted
    assert num(first)["spool_points"] == 60

    second = InfluxSink(cfg, SiteId("bandung"), tmp_path / "state")  # the engine's next run
    second.start()
    assert num(second)["spool_points"] == 60
    written += write_windows(second, range(50, 70))
    wait_for(lambda: second.health()["state"] == "unreachable")
    server.start()
    wait_for(lambda: drained(second))
    second.close()
    assert_all_once_in_order(server, db, written)
    h = num(second)
    assert h["points_replayed"] >= 60  # everything the first run left, then what waited behind it
    assert h["points_replayed"] + h["points_written"] == 100


def test_spool_bound_reached_is_signalled_and_accounted(
    make_influxdb: Callable[..., InfluxServer], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = make_influxdb()
    db = new_db()
    cfg = v1_config(server, db, spool_max_bytes=20_000, batch_size=5)
    sink = InfluxSink(cfg, SiteId("bandung"), tmp_path)
    sink.start()
    server.stop()
    with caplog.at_level(logging.INFO, logger="atcs.storage"):
        for i in range(240):
            sink.on_metrics([sample_metrics(i)])
            time.sleep(0.001)
        wait_for(lambda: num(sink)["queue_points"] == 0 and num(sink)["spool_full"] == 1)
        h = num(sink)
        assert h["points_refused_spool_full"] > 0
        assert h["spool_bytes"] <= 20_000
        full = [r for r in caplog.records if "is full" in r.getMessage()]
        assert len(full) == 1
        assert full[0].levelno == logging.ERROR
        server.start()
        wait_for(lambda: drained(sink))
    sink.close()
    h = num(sink)
    stored = server.rows("SELECT count(vehicles) FROM segment_metrics", db)[0]["count"]
    assert stored == h["points_replayed"] + h["points_written"]
    assert h["points_accepted"] == stored + h["points_refused_spool_full"] == 240


@pytest.mark.parametrize("api", ["v1", "v2"])
def test_wrong_credentials_are_a_clear_error_and_nothing_accepted_is_lost(
    make_influxdb: Callable[..., InfluxServer],
    make_nginx_proxy: Callable[[InfluxServer], NginxProxy],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    api: str,
) -> None:
    server = make_influxdb(auth=True)
    server.create_admin("admin", "adminpw")
    db = new_db()
    server.query(f'CREATE DATABASE "{db}"', user="admin", password="adminpw", method="POST")
    server.query(
        "CREATE USER writer WITH PASSWORD 'right-pw'",
        user="admin",
        password="adminpw",
        method="POST",
    )
    server.query(
        f'GRANT WRITE ON "{db}" TO writer', user="admin", password="adminpw", method="POST"
    )
    if api == "v1":
        cfg = v1_config(server, db, username="writer", create_database=False)
        bad_env = {"ATCS_INFLUX_PASSWORD": "wrong-pw"}
        good_env = {"ATCS_INFLUX_PASSWORD": "right-pw"}
    else:
        cfg = v2_config(make_nginx_proxy(server), db)
        bad_env = {"ATCS_INFLUX_TOKEN": "writer:wrong-pw"}
        good_env = {"ATCS_INFLUX_TOKEN": "writer:right-pw"}
    sink = InfluxSink(cfg, SiteId("bandung"), tmp_path / "state", environ=bad_env)
    sink.start()
    with caplog.at_level(logging.INFO, logger="atcs.storage"):
        written = write_windows(sink, range(0, 30))
        wait_for(lambda: sink.health()["state"] == "auth_failed")
        sink.close(timeout_s=1.0)
    errors = [
        r for r in caplog.records if r.levelno == logging.ERROR and "HTTP 401" in r.getMessage()
    ]
    assert errors, caplog.text
    assert "check the user name and password" in errors[0].getMessage()
    assert "wrong-pw" not in caplog.text
    assert "wrong-pw" not in repr(sink.health())
    assert num(sink)["spool_points"] == 60

    fixed = InfluxSink(cfg, SiteId("bandung"), tmp_path / "state", environ=good_env)
    fixed.start()
    written += write_windows(fixed, range(30, 40))
    wait_for(lambda: drained(fixed))
    fixed.close()
    assert_all_once_in_order(server, db, written, user="admin", password="adminpw")


def test_missing_database_without_create_rights_and_unreachable_host(
    influxdb: InfluxServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = new_db()
    missing = InfluxSink(
        v1_config(influxdb, db, create_database=False), SiteId("s"), tmp_path / "a"
    )
    missing.start()
    with caplog.at_level(logging.INFO, logger="atcs.storage"):
        missing.on_metrics([sample_metrics(0)])
        wait_for(lambda: missing.health()["state"] == "not_found")
        missing.close(timeout_s=0.5)
    assert "database not found" in str(missing.health()["last_error"])
    assert any(r.levelno == logging.ERROR and "HTTP 404" in r.getMessage() for r in caplog.records)
    assert num(missing)["spool_points"] == 1

    # nothing listens on this port: connection refused, a warning, the points kept on disk
    dead = InfluxConfig.model_validate({**FAST, "url": f"http://127.0.0.1:{free_port()}"})
    unreachable = InfluxSink(dead, SiteId("s"), tmp_path / "b")
    unreachable.start()
    unreachable.on_metrics([sample_metrics(0)])
    wait_for(lambda: unreachable.health()["state"] == "unreachable")
    unreachable.on_metrics([sample_metrics(1)])
    unreachable.close(timeout_s=0.5)
    assert num(unreachable)["spool_points"] == 2


def test_v1_writer_query_and_create(influxdb: InfluxServer) -> None:
    db = new_db()
    writer = V1Writer(v1_config(influxdb, db))
    writer.write(b"probe,site=x v=1.5 1700000000000\n", "ms")
    results = writer.query("SELECT v FROM probe")
    assert results[0]["series"][0]["values"] == [["2023-11-14T22:13:20Z", 1.5]]
    writer.close()
