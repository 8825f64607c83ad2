"""The zones benchmark: a short real run (Mosquitto, MqttBus, BusFeed) gives consistent numbers."""

from __future__ import annotations

import json
import math

import pytest

from benchmarks import bench_zones


@pytest.mark.integration
def test_a_short_run_receives_what_it_sent_and_times_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["--segments", "6", "--vehicles", "40", "--seconds", "2", "--window-s", "1", "--json"]
    assert bench_zones.main(argv) == 0
    doc = json.loads(capsys.readouterr().out)
    zones, windows = doc["phases"]
    assert (zones["phase"], windows["phase"]) == ("zones", "metrics")
    assert zones["sent"] == 12  # 6 segments once a second for 2 s
    assert windows["sent"] == 12  # 6 segments once per 1-s window for 2 s
    for phase in (zones, windows):
        assert 0 < phase["received"] <= phase["sent"]
        assert phase["dropped"] == phase["sent"] - phase["received"]
        assert phase["malformed"] == 0
        assert 0 < phase["bytes_median"] <= phase["bytes_max"]
        assert 0 <= phase["latency_p50_s"] <= phase["latency_p95_s"] < 5
        assert phase["receiver_cpu_s"] > 0
        assert math.isfinite(phase["cpu_s_per_1000"])
        assert phase["decode_us"] > 0
        assert phase["encode_us"] > 0
    assert windows["received"] == windows["sent"]  # QoS 1 through the disk queue: none lost
    assert zones["bytes_median"] > windows["bytes_median"]  # 40 vehicles outweigh a window
