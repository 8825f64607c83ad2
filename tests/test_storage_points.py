"""Line protocol, the InfluxDB points of the engine's records, and the storage config."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from atcs.config import parse_config
from atcs.config.storage import InfluxConfig
from atcs.errors import ConfigError, DataError
from atcs.storage import Point, camera_point, encode, metrics_point, plan_point
from atcs.storage.lineprotocol import timestamp
from atcs.types import CameraId, CameraState, CameraStatus, SiteId
from tests.support.samples import STORAGE_T0, sample_metrics, timing_plan


def test_timestamp_in_every_precision_is_exact() -> None:
    at = datetime(2026, 3, 1, 7, 30, 0, 123456, tzinfo=UTC)
    secs = int(datetime(2026, 3, 1, 7, 30, tzinfo=UTC).timestamp())
    assert timestamp(at, "s") == secs
    assert timestamp(at, "ms") == secs * 1000 + 123
    assert timestamp(at, "us") == secs * 1_000_000 + 123456
    assert timestamp(at, "ns") == (secs * 1_000_000 + 123456) * 1000
    jakarta = at.astimezone(ZoneInfo("Asia/Jakarta"))
    assert timestamp(jakarta, "ns") == timestamp(at, "ns")
    with pytest.raises(DataError):
        timestamp(datetime(2026, 1, 1), "s")


def test_encode_escapes_keys_values_and_strings() -> None:
    point = Point(
        measurement="my measure,x",
        time=datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC),
        tags={"z tag": "a,b=c d", "a": "first", "empty": ""},
        fields={
            "n=1": 1.5,
            "count": 3,
            "ok": True,
            "bad": False,
            "text": 'say "hi" \\ there\nnext',
            "nan": float("nan"),
            "inf": float("inf"),
        },
    )
    line = encode(point, "s")
    assert line == (
        r"my\ measure\,x,a=first,z\ tag=a\,b\=c\ d "
        r'n\=1=1.5,count=3i,ok=true,bad=false,text="say \"hi\" \\ there next" 1'
    )


def test_point_with_no_writable_field_is_none_and_bad_points_raise() -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    assert encode(Point("m", at, {}, {"x": float("nan")}), "s") is None
    with pytest.raises(DataError):
        Point("", at, {}, {"x": 1.0})
    with pytest.raises(DataError):
        Point("m", datetime(2026, 1, 1), {}, {"x": 1.0})
    with pytest.raises(DataError):
        encode(Point("m", at, {"": "v"}, {"x": 1.0}), "s")
    with pytest.raises(DataError):
        encode(Point("m", at, {}, {"x": [1]}), "s")  # type: ignore[dict-item]


def test_metrics_point_tags_fields_and_time() -> None:
    m = sample_metrics(3)
    point = metrics_point(m)
    assert point.measurement == "segment_metrics"
    assert dict(point.tags) == {"site": "bandung", "camera": "cam-1", "segment": "gajah-mada-nb"}
    assert point.time == m.window_end
    f = point.fields
    assert f["vehicles"] == 15.5
    assert f["frames"] == 20
    assert isinstance(f["frames"], int)
    assert f["vehicles_car"] == 4.25
    assert f["vehicles_motorcycle"] == 8.25
    assert f["vehicles_bus"] == 0.0
    assert f["vehicles_truck"] == 0.0
    assert f["vehicles_bicycle"] == 0.0
    assert f["pcu"] == 5.4875
    assert f["density_pcu_km_lane"] == 18.29
    assert f["occupancy"] == 0.375
    assert f["flow_veh_h"] == 2520.0
    assert f["flow_motorcycle_forward_veh_h"] == 2160.0
    assert f["crossings_motorcycle_forward"] == 6
    assert f["flow_car_backward_veh_h"] == 360.0
    assert f["crossings_car_backward"] == 1
    assert f["flow_bus_forward_veh_h"] == 0.0
    assert f["crossings_truck_backward"] == 0
    assert f["queue_m"] == 42.0
    assert f["queue_max_m"] == 55.5
    assert f["los"] == "D"
    assert f["congested"] is False
    assert f["stale"] is False
    assert f["window_s"] == 10.0
    line = encode(point, "ms")
    assert line is not None
    assert line.startswith("segment_metrics,camera=cam-1,segment=gajah-mada-nb,site=bandung ")
    assert ',los="D",' in line
    assert ",frames=20i," in line
    assert ",stale=false " in line
    assert line.endswith(f" {int(m.window_end.timestamp()) * 1000}")
    # without a stop line the queue fields are left out, not written as zero
    no_queue = metrics_point(sample_metrics(0, queue=False)).fields
    assert "queue_m" not in no_queue
    assert "queue_max_m" not in no_queue


def test_camera_point() -> None:
    at = STORAGE_T0 + timedelta(seconds=5)
    status = CameraStatus(
        CameraId("cam-1"), CameraState.STALLED, 0.0, STORAGE_T0, "no frame for 5 s"
    )
    point = camera_point(SiteId("bandung"), status, at)
    assert point.measurement == "camera_health"
    assert dict(point.tags) == {"site": "bandung", "camera": "cam-1"}
    assert point.time == at
    assert point.fields == {
        "state": "stalled",
        "up": False,
        "fps": 0.0,
        "since_last_frame_s": 5.0,
        "detail": "no frame for 5 s",
    }
    fresh = camera_point(
        SiteId("s"), CameraStatus(CameraId("c"), CameraState.STREAMING, 2.0, None), at
    )
    assert fresh.fields == {"state": "streaming", "up": True, "fps": 2.0}


def test_plan_point_keeps_plan_id_out_of_tags() -> None:
    plan = timing_plan(
        "simpang-lima",
        "p-000123",
        {"ns": 40.0, "ew": 35.0},
        cycle_s=90.0,
        offset_s=12.0,
        valid_from=STORAGE_T0 + timedelta(seconds=90),
        reason="critical flow ratios 0.41, 0.36",
        data_age_s=4.5,
        extra={"y_total": 0.77},
    )
    point = plan_point(SiteId("denpasar"), plan)
    assert point.measurement == "signal_plan"
    assert dict(point.tags) == {
        "site": "denpasar",
        "intersection": "simpang-lima",
        "controller": "webster",
        "mode": "adaptive",
    }
    assert point.time == plan.valid_from
    assert point.fields["plan_id"] == "p-000123"
    assert point.fields["reason"] == "critical flow ratios 0.41, 0.36"
    assert point.fields["green_ns_s"] == 40.0
    assert point.fields["green_ew_s"] == 35.0
    assert point.fields["yellow_ns_s"] == 3.0
    assert point.fields["all_red_ew_s"] == 2.0
    assert point.fields["cycle_s"] == 90.0
    assert point.fields["offset_s"] == 12.0
    assert point.fields["phases"] == 2
    assert point.fields["data_age_s"] == 4.5
    assert point.fields["extra_y_total"] == 0.77


def test_influx_config_defaults_and_validation() -> None:
    cfg = InfluxConfig()
    assert cfg.api == "v1"
    assert cfg.precision == "ms"
    assert cfg.database == "atcs"
    assert InfluxConfig(api="v2", bucket="atcs/autogen").org == "-"
    with pytest.raises(ValueError, match="database"):
        InfluxConfig(database="")
    with pytest.raises(ValueError, match="bucket"):
        InfluxConfig(api="v2", bucket="")
    with pytest.raises(ValueError, match="org"):
        InfluxConfig(api="v2", org="")
    with pytest.raises(ValueError, match="url"):
        InfluxConfig(url="ftp://x")
    with pytest.raises(ValueError, match="retry_max_s"):
        InfluxConfig(retry_initial_s=5, retry_max_s=1)
    with pytest.raises(ValueError, match="password_env"):
        InfluxConfig(password_env="not a name")


def test_influx_table_in_a_config_file(tmp_path: Path) -> None:
    raw = {
        "site": {"id": "bandung"},
        "cameras": [{"id": "cam-1", "source": "clip.mp4"}],
        "influx": {"api": "v2", "url": "https://influx.example:8086", "bucket": "atcs"},
    }
    cfg = parse_config(raw, tmp_path, environ={})
    assert cfg.influx is not None
    assert cfg.influx.api == "v2"
    raw["influx"] = {"api": "v3"}
    with pytest.raises(ConfigError, match=r"influx\.api"):
        parse_config(raw, tmp_path, environ={})
    raw["influx"] = {"password": "secret"}
    with pytest.raises(ConfigError, match=r"influx\.password"):
        parse_config(raw, tmp_path, environ={})
