"""The durable outbox: a group writes every lane or none, also when the writer is SIGKILLed."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from atcs.errors import OutboxError
from atcs.journal import DropOldest, Journal, NewEntry, RefuseWhenFull, group

WRITER = """
import sys
from pathlib import Path
from atcs.journal import DropOldest, Journal, NewEntry, RefuseWhenFull, group

journal = Journal.open(Path(sys.argv[1]))
bus = journal.lane("mqtt", DropOldest(10**9, ("w",)))
store = journal.lane("influx", RefuseWhenFull(10**10))
window = 0
while True:
    body = b"w%d" % window
    with group():
        bus.append([NewEntry("w", "t", lambda seq, b=body: b)])
        store.append([NewEntry("ms", "", lambda seq, b=body: b * 3, weight=3, size=len(body) * 3)])
    window += 1
    if window == 200:
        print("ready", flush=True)
"""


def _windows(path: Path, lane_name: str, policy: DropOldest | RefuseWhenFull) -> list[int]:
    lane = Journal.open(path).lane(lane_name, policy)
    out = [int(e.payload.split(b"w")[1]) for e in lane.pending(0, 10**9)]
    lane.close()
    return out


def test_a_window_killed_mid_write_is_in_every_lane_or_in_none(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    for attempt in range(3):  # three kills at different moments of the write loop
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True
        )
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(0.05 * attempt)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        on_bus = _windows(path, "mqtt", DropOldest(10**9, ("w",)))
        in_store = _windows(path, "influx", RefuseWhenFull(10**10))
        assert len(on_bus) >= 200 * (attempt + 1)
        assert on_bus == in_store
        # every run starts again at window 0: its windows follow the last run's
        assert on_bus.count(0) == attempt + 1


def test_a_group_that_cannot_be_written_leaves_every_lane_unchanged(tmp_path: Path) -> None:
    journal = Journal.open(tmp_path / "outbox.sqlite3")
    bus = journal.lane("mqtt", DropOldest(100, ("w",)))
    store = journal.lane("influx", RefuseWhenFull(10**9))
    failed: list[str] = []
    with group():
        bus.append([NewEntry("w", "t", lambda seq: b"before")])
        store.append([NewEntry("ms", "", lambda seq: b"before", size=6)])
    pages = journal.db.execute("PRAGMA page_count").fetchone()[0]
    journal.db.execute(f"PRAGMA max_page_count = {pages}")  # the file cannot grow
    with group():
        bus.append([NewEntry("w", "t", lambda seq: b"x" * 200_000)], lambda e: failed.append("b"))
        store.append(
            [NewEntry("ms", "", lambda seq: b"after", size=5)], lambda e: failed.append("s")
        )
    journal.db.execute("PRAGMA max_page_count = 1073741823")
    assert failed == ["b", "s"]  # each lane's owner hears of it (the bus keeps it in memory)
    assert [e.payload for e in bus.pending(0, 10)] == [b"before"]
    assert [e.payload for e in store.pending(0, 10)] == [b"before"]
    bus.close()
    store.close()


def test_one_owner_per_lane_and_numbers_never_reused(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    journal = Journal.open(path)
    lane = journal.lane("influx", RefuseWhenFull(10**6))
    with pytest.raises(OutboxError, match="in use"):
        journal.lane("influx", RefuseWhenFull(10**6))
    lane.append([NewEntry("ms", "", lambda seq: json.dumps(seq).encode()) for _ in range(3)])
    first = [e.seq for e in lane.pending(0, 10)]
    assert [json.loads(e.payload) for e in lane.pending(0, 10)] == first  # built with its seq
    lane.delete(first)
    lane.close()
    again = Journal.open(path).lane("influx", RefuseWhenFull(10**6))
    again.append([NewEntry("ms", "", lambda seq: b"x")])
    assert [e.seq for e in again.pending(0, 10)] == [first[-1] + 1]
    again.close()
