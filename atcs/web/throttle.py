"""Login throttling: exponential delays per client address and per name, never a lockout.

Policy (numbers from ``[dashboard]``, defaults in brackets; the rationale is in
``docs/dashboard.md``):

- Every login attempt is counted as a failure when it is let through (so a burst of
  parallel attempts cannot all slip through before the first failure is known) and the
  count is taken back when the password was right.
- **Per address** (IPv4 address, IPv6 /64 network): the first ``free_failures`` [5]
  failures are answered at once; after that the address must wait ``base_delay_s`` [1 s]
  doubled for every further failure, at most ``max_delay_s`` [30 s], before its next
  attempt is checked. Earlier attempts are refused (429 ``login_delayed`` with the wait)
  without checking the password and without counting.
- **Per name**, the same rule counts the failures of a name from addresses that never
  logged in as that name. An address where the name logged in before (a *known* address,
  remembered for ``known_for_s`` [30 days]) is exempt from the name's delay: a flood of
  wrong passwords for ``operator`` from elsewhere never delays the operator at the desk.
- Counts are forgotten ``memory_s`` [15 min] after the last failure and reset by a success
  from that address.
- Memory is bounded: at most ``entries_max`` addresses, names and known pairs each. A full
  table is never flushed by new keys: expired entries go first, and new keys beyond the
  bound share one overflow entry (so spraying many names or addresses slows the sprayer
  down instead of making the engine forget a name under attack). Known addresses never
  fall into the overflow entry of the address table.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

_K = TypeVar("_K")

_SLACK_S = 1e-3
"""A wait shorter than this (s) counts as none (clock and float rounding)."""

OVERFLOW = "*"
"""Key of the entry shared by the keys that did not fit into a full table.

Every other key is stored with a ``=`` in front, so no name or address can be mistaken for
it.
"""


@dataclass(frozen=True, slots=True)
class ThrottlePolicy:
    """Numbers of the throttle; see the module docstring (times in seconds)."""

    free_failures: int = 5
    base_delay_s: float = 1.0
    max_delay_s: float = 30.0
    memory_s: float = 900.0
    known_for_s: float = 30 * 86400.0
    entries_max: int = 4096

    def delay_s(self, failures: int) -> float:
        """Wait (s) before the next attempt after ``failures`` counted failures."""
        over = failures - self.free_failures
        if over < 0:
            return 0.0
        return min(self.max_delay_s, self.base_delay_s * 2.0 ** min(over, 60))


def address_key(host: str) -> str:
    """Return the throttle key of a client address: the IPv4 address or the IPv6 /64."""
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host[:64]  # not an address (a test client's name, a Unix socket)
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


@dataclass(slots=True)
class _Count:
    failures: int
    last_s: float


class _Counts:
    """Failure counts by key: bounded, expiring, with one shared overflow entry."""

    def __init__(self, policy: ThrottlePolicy) -> None:
        self._policy = policy
        self._table: OrderedDict[str, _Count] = OrderedDict()

    def __len__(self) -> int:
        return len(self._table)

    def _full(self) -> bool:
        """Tell whether no new key fits (one place stays kept for the overflow entry)."""
        return len(self._table) - (OVERFLOW in self._table) >= self._policy.entries_max - 1

    def failures(self, key: str, now: float) -> int:
        """Failures counted for ``key`` itself (0 when unknown or forgotten)."""
        count = self._live("=" + key, now)
        return count.failures if count is not None else 0

    def _live(self, key: str, now: float) -> _Count | None:
        count = self._table.get(key)
        if count is not None and now - count.last_s > self._policy.memory_s:
            del self._table[key]
            return None
        return count

    def _expire(self, now: float) -> None:
        while self._table:
            key, oldest = next(iter(self._table.items()))
            if now - oldest.last_s <= self._policy.memory_s:
                return
            del self._table[key]

    def wait_s(self, key: str, now: float, may_overflow: bool = True) -> float:
        """Seconds ``key`` must still wait (0: may try now)."""
        self._expire(now)
        count = self._live("=" + key, now)
        if count is None and may_overflow and self._full():
            count = self._live(OVERFLOW, now)
        if count is None:
            return 0.0
        delay = self._policy.delay_s(count.failures)
        left = min(delay, count.last_s + delay - now)  # min: float rounding
        return left if left > _SLACK_S else 0.0

    def add(self, key: str, now: float, may_overflow: bool = True) -> str:
        """Count one failure of ``key``; return the entry it was counted under."""
        self._expire(now)
        key = "=" + key
        if key not in self._table and self._full():
            if may_overflow:
                key = OVERFLOW
            else:
                oldest = next(k for k in self._table if k != OVERFLOW)
                del self._table[oldest]
        count = self._table.pop(key, None) or _Count(0, now)
        count.failures += 1
        count.last_s = now
        self._table[key] = count  # most recent last: expiry walks from the front
        return key

    def take_back(self, key: str) -> None:
        """Undo one :meth:`add` counted under the entry ``key`` (the attempt was right)."""
        count = self._table.get(key)
        if count is not None:
            count.failures -= 1
            if count.failures <= 0:
                del self._table[key]

    def forget(self, key: str) -> None:
        """Drop the entry ``key`` (as :meth:`add` returned it)."""
        self._table.pop(key, None)


@dataclass(frozen=True, slots=True)
class Attempt:
    """A login attempt let through: where its failure was counted, to take it back."""

    name: str
    address: str
    address_entry: str
    name_entry: str | None
    known: bool


class LoginThrottle:
    """Decides whether a login attempt may be checked now; safe from any thread."""

    def __init__(self, policy: ThrottlePolicy, clock: Callable[[], float] = time.monotonic) -> None:
        self.policy = policy
        self._clock = clock
        self._lock = threading.Lock()
        self._addresses = _Counts(policy)
        self._names = _Counts(policy)
        self._known: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._known_addresses: OrderedDict[str, float] = OrderedDict()

    def sizes(self) -> dict[str, int]:
        """Entries held per table (each at most ``policy.entries_max``)."""
        with self._lock:
            return {
                "addresses": len(self._addresses),
                "names": len(self._names),
                "known": len(self._known),
                "known_addresses": len(self._known_addresses),
            }

    def _recent(self, seen: float | None, now: float) -> bool:
        return seen is not None and now - seen <= self.policy.known_for_s

    def _is_known(self, name: str, address: str, now: float) -> bool:
        return self._recent(self._known.get((name, address)), now)

    def name_failures(self, name: str) -> int:
        """Failures of ``name`` from addresses it never logged in from, still remembered."""
        with self._lock:
            return self._names.failures(name, self._clock())

    def known(self, name: str, host: str) -> bool:
        """Tell whether ``name`` logged in from ``host`` (its address) recently."""
        with self._lock:
            return self._is_known(name, address_key(host), self._clock())

    def admit(self, name: str, host: str) -> tuple[Attempt | None, float]:
        """Let an attempt through (counted as a failure) or say how long to wait, s."""
        address = address_key(host)
        with self._lock:
            now = self._clock()
            known = self._is_known(name, address, now)
            address_known = known or self._recent(self._known_addresses.get(address), now)
            wait = self._addresses.wait_s(address, now, may_overflow=not address_known)
            if not known:
                wait = max(wait, self._names.wait_s(name, now))
            if wait > 0.0:
                return None, wait
            entry = self._addresses.add(address, now, may_overflow=not address_known)
            name_entry = None if known else self._names.add(name, now)
        return Attempt(name, address, entry, name_entry, known), 0.0

    def succeeded(self, attempt: Attempt) -> None:
        """Take back the failure of a right password and remember the known address."""
        with self._lock:
            if attempt.address_entry == OVERFLOW:
                self._addresses.take_back(OVERFLOW)
            else:
                self._addresses.forget(attempt.address_entry)
            if attempt.name_entry is not None:
                self._names.take_back(attempt.name_entry)
            now = self._clock()
            _remember(self._known, (attempt.name, attempt.address), now, self.policy.entries_max)
            _remember(self._known_addresses, attempt.address, now, self.policy.entries_max)


def _remember(table: OrderedDict[_K, float], key: _K, now: float, bound: int) -> None:
    """Put ``key`` last in ``table`` with time ``now``; drop the oldest beyond ``bound``."""
    table.pop(key, None)
    table[key] = now
    while len(table) > bound:
        table.popitem(last=False)
