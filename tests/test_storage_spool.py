"""The InfluxDB lane of the outbox: order, bound, locking and a disk that refuses writes."""

from __future__ import annotations

import resource
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from atcs.errors import SpoolFullError, StorageError
from atcs.storage import Spool
from atcs.storage.spool import import_legacy_spool


@pytest.fixture
def spool(tmp_path: Path) -> Iterator[Spool]:
    s = Spool(tmp_path / "outbox.sqlite3", max_bytes=10_000)
    yield s
    s.close()


def test_batches_come_back_in_order_across_reopen(tmp_path: Path) -> None:
    first = Spool(tmp_path / "outbox.sqlite3", max_bytes=10_000)
    first.append(["m v=1 1", "m v=2 2"], "s")
    first.append(["m v=3 3"], "ms")
    assert (first.points, first.batches) == (3, 2)
    assert first.size_bytes == len(b"m v=1 1\nm v=2 2\n") + len(b"m v=3 3\n")
    first.close()

    again = Spool(tmp_path / "outbox.sqlite3", max_bytes=10_000)
    assert (again.points, again.batches) == (3, 2)
    again.append(["m v=4 4"], "ns")
    seen = []
    while (batch := again.peek()) is not None:
        seen.append((batch.precision, batch.points, batch.body))
        again.pop(batch.seq)
    assert seen == [
        ("s", 2, b"m v=1 1\nm v=2 2\n"),
        ("ms", 1, b"m v=3 3\n"),
        ("ns", 1, b"m v=4 4\n"),
    ]
    assert (again.points, again.size_bytes, again.batches) == (0, 0, 0)
    again.close()
    empty = Spool(tmp_path / "outbox.sqlite3", max_bytes=10_000)
    assert (empty.points, empty.batches, empty.peek()) == (0, 0, None)
    empty.close()


def test_bound_refuses_new_batches_and_keeps_old_ones(spool: Spool) -> None:
    line = "segment_metrics,site=s v=1.0 1700000000000"
    spool.append([line] * 100, "ms")  # 4400 bytes
    spool.append([line] * 100, "ms")
    before = (spool.points, spool.size_bytes)
    with pytest.raises(SpoolFullError, match="full"):
        spool.append([line] * 100, "ms")
    assert (spool.points, spool.size_bytes) == before
    assert spool.size_bytes <= spool.max_bytes
    assert spool.full
    with pytest.raises(SpoolFullError):  # full until under 90 %: one gap, not holes
        spool.append([line] * 10, "ms")
    batch = spool.peek()
    assert batch is not None
    spool.pop(batch.seq)
    assert not spool.full  # 4400 of 10 000 bytes
    spool.append([line] * 100, "ms")  # room again after the oldest left
    assert spool.points == 200


def test_a_second_spool_cannot_share_the_lane(spool: Spool) -> None:
    with pytest.raises(StorageError, match="in use by another engine"):
        Spool(spool.path, max_bytes=10_000)


def test_pop_must_be_the_oldest(spool: Spool) -> None:
    spool.append(["m v=1 1"], "s")
    spool.append(["m v=2 2"], "s")
    with pytest.raises(StorageError, match="not the oldest"):
        spool.pop(2)


def test_a_disk_that_refuses_the_write_leaves_the_spool_unchanged(spool: Spool) -> None:
    """The kernel refuses to grow a file past RLIMIT_FSIZE (EFBIG), as a full disk would."""
    spool.append(["m v=1 1"], "s")
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1024, hard))
    try:
        with pytest.raises(StorageError, match="cannot write to spool"):
            spool.append(["m,tag=x v=1.0 1700000000000"] * 100, "ms")
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, old_handler)
    assert (spool.points, spool.batches) == (1, 1)
    assert [b.body for b in spool.peek_run(100)] == [b"m v=1 1\n"]
    spool.append(["m v=2 2"], "s")  # usable again once the disk has room
    assert spool.points == 2


def test_an_unusable_folder_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StorageError, match="cannot open the outbox"):
        Spool(blocker / "spool", max_bytes=10_000)


def test_small_batches_are_read_back_together_up_to_a_point_count(spool: Spool) -> None:
    for i in range(5):
        spool.append([f"m v={i} {i}"] * 2, "s")
    spool.append(["m v=9 9"], "ms")
    run = spool.peek_run(max_points=5)
    assert [b.points for b in run] == [2, 2]
    assert b"".join(b.body for b in run) == b"m v=0 0\nm v=0 0\nm v=1 1\nm v=1 1\n"
    for batch in run:
        spool.pop(batch.seq)
    assert [b.points for b in spool.peek_run(max_points=100)] == [2, 2, 2]  # stops at "ms"
    assert [b.points for b in spool.peek_run(max_points=1)] == [2]  # the oldest, whatever size


def test_the_spool_files_of_an_earlier_version_are_moved_in_oldest_first(
    tmp_path: Path, spool: Spool
) -> None:
    folder = tmp_path / "influx" / "spool"
    folder.mkdir(parents=True)
    (folder / "0000000000000002-1-ms.lp").write_text("m v=2 2\n")
    (folder / "0000000000000001-2-s.lp").write_text("m v=1 1\nm v=1 1\n")
    (folder / "lock").write_text("")
    assert import_legacy_spool(folder, spool) == 3
    assert [(b.precision, b.body) for b in spool.peek_run(1)] == [("s", b"m v=1 1\nm v=1 1\n")]
    assert spool.points == 3
    assert sorted(p.name for p in folder.iterdir()) == ["lock"]
