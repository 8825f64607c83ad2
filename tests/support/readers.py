"""Camera readers started by a test and stopped (and joined) when it ends."""

from __future__ import annotations

from collections.abc import Iterator

from atcs.sources import CameraReader


def stopped_at_end() -> Iterator[list[CameraReader]]:
    """Body of a ``readers`` fixture: yield a list tests append readers to, then stop all.

    Every reader is asked to stop before any is joined, so their threads wind down together.
    """
    started: list[CameraReader] = []
    yield started
    for reader in started:
        reader.stop()
    for reader in started:
        assert reader.join(5.0), "camera thread did not stop"
