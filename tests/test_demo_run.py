"""The README's run command path: ``atcs run`` on the demo site with real Mosquitto and InfluxDB."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from atcs.bus.schemas import validate
from atcs.bus.topics import Topics
from tests.support.influxdb import InfluxServer
from tests.support.mosquitto import Collector, Mosquitto

pytestmark = [pytest.mark.e2e, pytest.mark.integration]


def test_demo_site_publishes_stores_and_plans(
    repo_dir: Path,
    tmp_path: Path,
    mosquitto: Mosquitto,
    influxdb: InfluxServer,
    collectors: list[Collector],
) -> None:
    sub = Collector(mosquitto, "atcs/v1/#")
    collectors.append(sub)
    env = {
        **os.environ,
        "ATCS_MQTT_PORT": str(mosquitto.port),
        "ATCS_INFLUX_URL": influxdb.url,
        "ATCS_STATE_DIR": str(tmp_path / "state"),
        "ATCS_DASHBOARD_PORT": "0",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "atcs.cli", "run", "--config", str(repo_dir / "config.toml"),
         "--duration", "26"],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    messages = sub.snapshot()
    by_topic: dict[str, list[dict[str, object]]] = {}
    for m in messages:
        by_topic.setdefault(m.topic, []).append(json.loads(m.payload))
    topics = Topics("atcs/v1")
    for topic, docs in by_topic.items():
        for doc in docs:
            validate(topics.parse(topic).kind, doc)
    segments = {t.split("/")[3] for t in by_topic if t.endswith("/metrics")}
    assert segments == {
        "pontianak-inbound", "pontianak-outbound", "beijing-south-approach",
        "beijing-junction", "motorway-southbound",
    }  # fmt: skip
    plans = by_topic["atcs/v1/intersections/simpang-demo/plan"]
    assert plans, "the demo intersection gets a plan"
    assert all(p["intersection"] == "simpang-demo" for p in plans)
    cameras = {t.split("/")[3] for t in by_topic if t.startswith("atcs/v1/cameras/")}
    assert cameras == {"pontianak", "beijing", "motorway"}
    status = [d["state"] for d in by_topic["atcs/v1/status"]]
    assert status[0] == "online"
    assert status[-1] == "offline"
    rows = influxdb.rows("SELECT * FROM segment_metrics", "atcs")
    assert {r["segment"] for r in rows} == segments
    plan_rows = influxdb.rows("SELECT * FROM signal_plan", "atcs")
    assert plan_rows
    assert {r["intersection"] for r in plan_rows} == {"simpang-demo"}
    assert influxdb.rows("SELECT * FROM camera_health", "atcs")
