"""The on-disk MQTT queue: order, identity across restarts, the bound, exclusivity, full disk."""

from __future__ import annotations

import dataclasses
import functools
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from atcs.bus.messages import MessageMeta
from atcs.bus.outbox import NewMessage, Outbox, import_legacy_queue
from atcs.bus.payloads import encode_segment_metrics
from atcs.bus.topics import TopicKind
from atcs.errors import BusError, DataError
from tests.support.samples import metrics

OPEN_IN_ANOTHER_PROCESS = """
import sys
from pathlib import Path
from atcs.bus.outbox import Outbox
from atcs.errors import BusError
try:
    Outbox(Path(sys.argv[1]), 100)
except BusError as exc:
    print(exc)
    sys.exit(3)
"""


def _msg(i: int, kind: TopicKind = TopicKind.SEGMENT_METRICS) -> NewMessage:
    def enc(meta: MessageMeta) -> bytes:
        return json.dumps({"i": i, "seq": meta.seq, "stream": meta.stream}).encode()

    return NewMessage(kind, f"t/{kind.value}/{i}", enc)


def _ids(box: Outbox) -> list[int]:
    return [json.loads(m.payload)["i"] for m in box.pending(0, 10_000)]


def test_messages_come_back_in_order_with_growing_seq_and_survive_reopen(tmp_path: Path) -> None:
    path = tmp_path / "q.sqlite3"
    box = Outbox(path, 1000)
    box.append([_msg(i) for i in range(5)])
    stream = box.stream
    first = box.pending(0, 3)
    assert [m.seq for m in first] == [1, 2, 3]
    assert json.loads(first[0].payload) == {"i": 0, "seq": 1, "stream": stream}
    assert box.delete([1, 2]) == 2
    assert len(box) == 3
    box.close()

    again = Outbox(path, 1000)
    assert again.stream == stream
    assert len(again) == 3
    assert [m.seq for m in again.pending(0, 100)] == [3, 4, 5]
    again.delete([3, 4, 5])
    again.append([_msg(9)])
    assert [m.seq for m in again.pending(0, 100)] == [6]  # never reused, even when emptied
    again.close()


def test_bound_drops_oldest_metrics_first_and_never_in_flight(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "q.sqlite3", 10)
    box.append([_msg(0, TopicKind.TIMING_PLAN), _msg(1, TopicKind.CAMERA_STATUS)])
    box.append([_msg(i) for i in range(2, 10)])  # seqs 3..10 metrics, 10 in all
    result = box.append([_msg(i) for i in range(10, 15)], protect={3})  # 5 over the bound
    assert result.added == 5
    assert result.dropped == {TopicKind.SEGMENT_METRICS: 5}
    assert len(box) == 10
    # plan (0), camera status (1), in-flight metrics seq 3 (i=2) stay; i=3..7 went.
    assert _ids(box) == [0, 1, 2, 8, 9, 10, 11, 12, 13, 14]
    # With no metrics left to drop, camera statuses go before plans.
    small = Outbox(tmp_path / "q2.sqlite3", 10)
    small.append([_msg(i, TopicKind.TIMING_PLAN) for i in range(5)])
    small.append([_msg(i, TopicKind.CAMERA_STATUS) for i in range(5, 10)])
    res = small.append([_msg(i, TopicKind.TIMING_PLAN) for i in range(10, 13)])
    assert res.dropped == {TopicKind.CAMERA_STATUS: 3}


def test_a_message_that_cannot_be_encoded_is_skipped(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "q.sqlite3", 100)
    bad = dataclasses.replace(metrics(), vehicles=float("inf"))
    result = box.append(
        [
            NewMessage(
                TopicKind.SEGMENT_METRICS, "a", functools.partial(encode_segment_metrics, bad)
            ),
            _msg(1),
        ]
    )
    assert (result.added, result.bad) == (1, 1)
    assert _ids(box) == [1]
    with pytest.raises(DataError):
        encode_segment_metrics(bad, MessageMeta("s", 1))


def test_second_engine_on_the_same_queue_is_refused(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "q.sqlite3", 100)
    box.append([_msg(1)])
    with pytest.raises(BusError, match="in use by another engine"):
        Outbox(tmp_path / "q.sqlite3", 100)  # the same process
    other = subprocess.run(
        [sys.executable, "-c", OPEN_IN_ANOTHER_PROCESS, str(tmp_path / "q.sqlite3")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert other.returncode == 3, other.stderr
    assert "in use by another engine process" in other.stdout
    box.close()
    Outbox(tmp_path / "q.sqlite3", 100).close()


def test_full_disk_refuses_the_batch_and_keeps_what_was_there(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "q.sqlite3", 1_000_000)
    box.append([_msg(i) for i in range(3)])
    db = box.journal.db
    pages = db.execute("PRAGMA page_count").fetchone()[0]
    db.execute(f"PRAGMA max_page_count = {pages}")  # the file cannot grow: a full disk
    big = [NewMessage(TopicKind.SEGMENT_METRICS, "t", lambda m: b"x" * 50_000) for _ in range(20)]
    with pytest.raises(BusError, match="full"):
        box.append(big)
    assert len(box) == 3
    assert _ids(box) == [0, 1, 2]
    db.execute("PRAGMA max_page_count = 1073741823")
    box.append([_msg(3)])
    assert _ids(box) == [0, 1, 2, 3]
    assert [m.seq for m in box.pending(0, 10)] == [1, 2, 3, 4]  # no gap from the failed batch


def test_the_queue_of_an_earlier_version_is_moved_in_first(tmp_path: Path) -> None:
    legacy = tmp_path / "mqtt-outbox.sqlite3"
    old = sqlite3.connect(str(legacy))
    old.execute(
        "CREATE TABLE outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, "
        "topic TEXT NOT NULL, payload BLOB NOT NULL, retain INTEGER NOT NULL)"
    )
    old.executemany(
        "INSERT INTO outbox (kind, topic, payload, retain) VALUES (?, ?, ?, ?)",
        [("segment_metrics", "t/a", b'{"seq": 7}', 1), ("incident_event", "t/e", b"{}", 0)],
    )
    old.commit()
    old.close()
    box = Outbox(tmp_path / "outbox.sqlite3", 100)
    assert import_legacy_queue(legacy, box) == 2
    moved = box.pending(0, 10)
    assert [(m.kind, m.topic, m.payload, m.retain) for m in moved] == [
        (TopicKind.SEGMENT_METRICS, "t/a", b'{"seq": 7}', True),  # the bytes sent before
        (TopicKind.INCIDENT_EVENT, "t/e", b"{}", False),
    ]
    assert not legacy.exists()
    assert import_legacy_queue(legacy, box) == 0
    box.close()
