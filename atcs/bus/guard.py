"""Keep paho's network thread alive: guarded callbacks and a watch on the thread itself.

An exception that escapes a paho callback ends paho's network thread: from then on nothing
is sent or received, silently. :class:`CallbackGuard` wraps every callback so that any
exception is caught, counted and logged (rate-limited) with the message's topic, and the
callback returns normally (for an incoming QoS 1 message paho then sends its PUBACK, so a
poisoned message is not delivered again after a restart).

:class:`NetworkWatch` checks once a second that the network thread still runs (it can
still end on an error inside paho itself); if it died, it is reported (``alive`` False,
so health says MQTT is down), logged and restarted, at most :data:`MAX_RESTARTS` times in
a row. The same thread runs the owner's housekeeping (log and audit summaries).
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import paho.mqtt.client as mqtt

from atcs.logthrottle import ThrottledLog
from atcs.text import printable

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., None])

WATCH_EVERY_S = 1.0
MAX_RESTARTS = 20
"""Restarts of the network thread without it staying up for a minute in between."""


def _topic_of(args: tuple[Any, ...]) -> str:
    for arg in args:
        if isinstance(arg, mqtt.MQTTMessage):
            try:
                return printable(arg.topic, 200)
            except UnicodeDecodeError:
                return "(topic not UTF-8)"
    return ""


class CallbackGuard:
    """Wraps paho callbacks so that no exception reaches paho (see the module docstring)."""

    def __init__(self, owner: str) -> None:
        self.owner = owner
        self._lock = threading.Lock()
        self._errors = 0
        self._log = ThrottledLog(log, burst=5)

    @property
    def errors(self) -> int:
        """Exceptions caught so far."""
        with self._lock:
            return self._errors

    def wrap(self, name: str, callback: F) -> F:
        """Return ``callback`` guarded; ``name`` (``on_message`` ...) goes into the log line."""

        @functools.wraps(callback)
        def guarded(*args: Any, **kwargs: Any) -> None:
            try:
                callback(*args, **kwargs)
            except Exception as exc:  # the callback boundary: nothing may reach paho
                with self._lock:
                    self._errors += 1
                topic = _topic_of(args)
                self._log.emit(
                    logging.ERROR,
                    f"{self.owner} {name} {type(exc).__name__}",
                    "%s: %s failed%s: %s: %s (counted in callback_errors)",
                    self.owner,
                    name,
                    f" on {topic}" if topic else "",
                    type(exc).__name__,
                    str(exc)[:300],
                )

        return guarded  # type: ignore[return-value]

    def flush(self) -> None:
        """Write due summaries of suppressed error lines."""
        self._log.flush()


class NetworkWatch:
    """Watches paho's network thread, restarts it when it died (see the module docstring)."""

    def __init__(
        self,
        client: mqtt.Client,
        owner: str,
        *,
        housekeeping: Callable[[], None] | None = None,
        every_s: float = WATCH_EVERY_S,
    ) -> None:
        self._client = client
        self._owner = owner
        self._housekeeping = housekeeping
        self._every_s = every_s
        self._stop = threading.Event()
        self._network: threading.Thread | None = None
        self._thread = threading.Thread(target=self._run, name=f"{owner}-watch", daemon=True)
        self._lock = threading.Lock()
        self._counted: threading.Thread | None = None
        self.deaths = 0
        self.restarts = 0
        self._restarts_in_a_row = 0

    def start(self) -> None:
        """Start paho's network thread (``loop_start``) and the watch."""
        self._client.loop_start()
        self._network = self._current()
        self._thread.start()

    def alive(self) -> bool:
        """Tell whether paho's network thread runs."""
        thread = self._network
        return thread is not None and thread.is_alive()

    def stop(self) -> None:
        """Stop watching (before ``disconnect``/``loop_stop``: a stopped loop is not restarted)."""
        self._stop.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(self._every_s * 5)

    def _current(self) -> threading.Thread | None:
        thread = getattr(self._client, "_thread", None)
        return thread if isinstance(thread, threading.Thread) else None

    def _run(self) -> None:
        up_s = 0.0
        while not self._stop.wait(self._every_s):
            try:
                if self.alive():
                    up_s += self._every_s
                    if up_s >= 60.0:
                        self._restarts_in_a_row = 0
                else:
                    up_s = 0.0
                    self._died()
                if self._housekeeping is not None:
                    self._housekeeping()
            except Exception:  # the watch's loop boundary
                log.exception("%s: network watch step failed", self._owner)

    def check(self) -> bool:
        """Check now (the watch does it every second); restart a dead thread; return alive."""
        if not self.alive():
            self._died()
        return self.alive()

    def _died(self) -> None:
        network = self._network
        with self._lock:
            if network is not None and network is self._counted:
                return  # already counted, and not restarted (gave up)
            self._counted = network
            self.deaths += 1
        if self._restarts_in_a_row >= MAX_RESTARTS:
            log.critical(
                "%s: the MQTT network thread died again (%d restarts in a row); not "
                "restarting it: nothing is sent or received",
                self._owner,
                MAX_RESTARTS,
            )
            return
        log.error(
            "%s: the MQTT network thread died (nothing was sent or received); restarting it",
            self._owner,
        )
        self._restarts_in_a_row += 1
        self._client.loop_start()
        self._network = self._current()
        with self._lock:
            self.restarts += 1
