"""Camera snapshots across nodes: each edge serves its cameras' images, the room fetches them.

An edge node answers ``GET /snapshots/<camera>.jpg`` on its health server
(:func:`edge_snapshot_route`): the camera's latest annotated frame, encoded on demand, at
most one encoding per camera every ``node.snapshot_interval_s`` (in between, the same
image) and at most ``node.snapshot_max_per_s`` answers a second in all (beyond: 429).

The room (:class:`RoomSnapshots`, a :class:`~atcs.snapshots.SnapshotSource`) fetches
the images of the cameras its pages ask for (asked in the last ``WANTED_S``), from the
edge node that announced the camera on the bus, on a small pool of threads with a timeout:
at most one fetch per camera every ``node.snapshot_interval_s`` and at most
``node.snapshot_max_per_s`` in all. The pages read the cache and never wait for an edge.
A camera whose node is offline, unreachable or unnamed has no image and says why
(``no snapshot: node edge-b offline``). Why HTTP and not the bus: ``docs/nodes.md``.
"""

from __future__ import annotations

import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from urllib.parse import quote, unquote

from atcs.bus.feed import NodeBook
from atcs.config import AtcsConfig
from atcs.config.node import NodeConfig
from atcs.ratelimit import RateLimiter
from atcs.roles.health import HttpAnswer, Route
from atcs.snapshots import WANTED_S, CameraCounters, Snapshot, Snapshotter
from atcs.text import printable

log = logging.getLogger(__name__)

PREFIX = "/snapshots/"
"""Path of the edge's snapshot route: ``/snapshots/<camera>.jpg``."""
FETCH_THREADS = 4
"""Fetches the room runs at once (a slow edge holds one thread up to the timeout)."""
MAX_JPEG_BYTES = 5_000_000
"""Largest image the room accepts from an edge."""

Clock = Callable[[], float]


def _text(status: int, message: str) -> HttpAnswer:
    return HttpAnswer(status, "text/plain; charset=utf-8", message.encode())


def edge_snapshot_route(
    snapshots: Snapshotter, node: NodeConfig, clock: Clock = time.monotonic
) -> Route:
    """Return the edge's ``/snapshots/<camera>.jpg`` route, rate-bounded (module docstring)."""
    total = RateLimiter(node.snapshot_max_per_s, max(1.0, node.snapshot_max_per_s), clock=clock)
    cameras = set(snapshots.camera_ids)

    def answer(path: str) -> HttpAnswer:
        camera = unquote(path[len(PREFIX) :]).removesuffix(".jpg")
        if camera not in cameras:
            return _text(404, f"unknown camera {printable(camera, 100)!r} on this node")
        if not total.allow("all"):
            return HttpAnswer(
                429, "text/plain; charset=utf-8", b"too many snapshots asked", {"Retry-After": "1"}
            )
        snap = snapshots.demand(camera)
        if snap is None:
            return _text(503, "no analysed frame yet")
        return HttpAnswer(
            200,
            "image/jpeg",
            snap.jpeg,
            {
                "Cache-Control": "no-store",
                "X-Atcs-Frame-Seq": str(snap.frame_seq),
                "X-Atcs-Captured-At": snap.captured_at.isoformat(),
                "X-Atcs-Size": f"{snap.width_px}x{snap.height_px}",
                "X-Atcs-Detections": str(snap.detections),
            },
        )

    return answer


class FetchError(Exception):
    """An edge did not give an image; the message says why, for the operator."""


def fetch_snapshot(url: str, camera: str, timeout_s: float) -> Snapshot:
    """GET ``url``'s image of ``camera``; :class:`FetchError` with the reason otherwise."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:  # noqa: S310 - configured http(s) URL
            jpeg = resp.read(MAX_JPEG_BYTES + 1)
            headers = resp.headers
    except urllib.error.HTTPError as exc:
        body = exc.read(200).decode("utf-8", "replace")
        raise FetchError(f"HTTP {exc.code}: {printable(body, 200)}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise FetchError(f"unreachable: {printable(str(reason), 200)}") from None
    if len(jpeg) > MAX_JPEG_BYTES or not jpeg.startswith(b"\xff\xd8"):
        raise FetchError("the answer is not a JPEG image")
    try:
        width, height = (int(v) for v in headers.get("X-Atcs-Size", "0x0").split("x", 1))
        return Snapshot(
            camera_id=camera,
            frame_seq=int(headers.get("X-Atcs-Frame-Seq", "0")),
            captured_at=datetime.fromisoformat(headers.get("X-Atcs-Captured-At", "")),
            jpeg=jpeg,
            width_px=width,
            height_px=height,
            detections=int(headers.get("X-Atcs-Detections", "0")),
        )
    except ValueError:
        raise FetchError("the image came without valid X-Atcs headers") from None


class RoomSnapshots:
    """The room's camera images, fetched from the edge nodes (module docstring)."""

    def __init__(
        self,
        cfg: AtcsConfig,
        nodes: NodeBook,
        *,
        clock: Clock = time.monotonic,
        fetch: Callable[[str, str, float], Snapshot] = fetch_snapshot,
        tick_s: float = 0.2,
    ) -> None:
        self._node = cfg.node
        self._ids = [c.id for c in cfg.cameras]
        self._nodes = nodes
        self._clock = clock
        self._fetch = fetch
        self._tick_s = tick_s
        self._lock = threading.Lock()
        self._cache: dict[str, Snapshot] = {}
        self._problems: dict[str, str] = {}
        self._wanted: dict[str, float] = {}
        self._last_fetch: dict[str, float] = {}
        self._busy: set[str] = set()
        rate = cfg.node.snapshot_max_per_s
        self._total = RateLimiter(rate, max(1.0, rate), clock=clock)
        self._pool: ThreadPoolExecutor | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.encoded_total = 0
        """Images fetched."""
        self.failures_total = 0
        """Fetches that brought no image."""

    @property
    def camera_ids(self) -> list[str]:
        """The city's cameras."""
        return self._ids

    def snapshot(self, camera_id: str) -> Snapshot | None:
        """Return the cached image (no I/O) and keep fetching this camera a while."""
        with self._lock:
            if camera_id in self._ids:
                self._wanted[camera_id] = self._clock()
            return self._cache.get(camera_id)

    def problem(self, camera_id: str) -> str:
        """Why the camera has no current image (empty when it has one or none was asked)."""
        with self._lock:
            return self._problems.get(camera_id, "")

    def counters(self) -> dict[str, CameraCounters]:
        """None here: the edges count frames."""
        return {}

    def due(self) -> list[tuple[str, str, str]]:
        """Cameras to fetch now, within the bounds, as (camera, node, URL); marks them busy.

        A camera not asked for in ``WANTED_S`` is not fetched; one whose node is offline,
        unknown or has no URL gets the reason as its problem and loses its image.
        """
        now = self._clock()
        out = []
        with self._lock:
            wanted = [c for c, t in self._wanted.items() if now - t < WANTED_S]
            self._wanted = {c: self._wanted[c] for c in wanted}
        for camera in wanted:
            node = self._nodes.node_of_camera(camera)
            why = ""
            url = ""
            if node is None:
                why = "no snapshot: no node announced this camera"
            elif not node.online:
                why = f"no snapshot: node {node.node_id} offline"
            else:
                url = self._node.url_of(node.node_id)
                if not url:
                    why = f"no snapshot: no URL for node {node.node_id} (node.edge_url)"
            with self._lock:
                if why:
                    self._problems[camera] = why
                    self._cache.pop(camera, None)
                    continue
                if camera in self._busy:
                    continue
                if now - self._last_fetch.get(camera, -1e9) < self._node.snapshot_interval_s:
                    continue
                if not self._total.allow("all"):
                    break
                self._last_fetch[camera] = now
                self._busy.add(camera)
            assert node is not None
            out.append((camera, node.node_id, f"{url}{PREFIX}{quote(camera)}.jpg"))
        return out

    def fetch_one(self, camera: str, node: str, url: str) -> None:
        """Fetch one image into the cache, or record why there is none."""
        try:
            snap = self._fetch(url, camera, self._node.snapshot_timeout_s)
        except FetchError as exc:
            with self._lock:
                self._busy.discard(camera)
                self._problems[camera] = f"no snapshot: node {node} {exc}"
                self.failures_total += 1
            log.debug("snapshot of %s from node %s: %s", camera, node, exc)
            return
        with self._lock:
            self._busy.discard(camera)
            self._cache[camera] = snap
            self._problems.pop(camera, None)
            self.encoded_total += 1

    def start(self) -> None:
        """Start the fetching thread and its pool."""
        if self._thread is None:
            self._pool = ThreadPoolExecutor(FETCH_THREADS, thread_name_prefix="atcs-snapshot")
            self._thread = threading.Thread(target=self._run, name="atcs-snapshots", daemon=True)
            self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop fetching (fetches under way end within their timeout)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)

    def _run(self) -> None:
        while not self._stop.wait(self._tick_s):
            try:
                for job in self.due():
                    assert self._pool is not None
                    self._pool.submit(self.fetch_one, *job)
            except Exception:  # the thread's loop boundary: log, go on
                log.exception("room snapshots: fetching failed")
