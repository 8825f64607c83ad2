"""Dashboard logins: scrypt password hashes, the user directory, sessions and throttling.

Passwords are checked with :func:`hashlib.scrypt` (N=2**14, r=8, p=1 by default) and a
constant-time comparison; an unknown user costs the same check, so the answer time does
not tell which names exist. Checks run on a few threads of their own with a bounded queue
(:class:`PasswordChecks`), after the throttle (:mod:`atcs.web.throttle`) let the attempt
through: failures delay further attempts exponentially per address and per name, never
lock anyone out. A session is a random token (``secrets.token_urlsafe``) kept in memory
with an expiry; the store is bounded (the oldest login is dropped).

``python -m atcs.web.auth`` prints the hash of a password read from the terminal (or from
standard input) for the ``password_hash`` of a ``[[dashboard.users]]`` entry.
"""

from __future__ import annotations

import asyncio
import base64
import getpass
import hashlib
import hmac
import logging
import math
import os
import secrets
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from atcs.config.dashboard import SCRYPT_HASH, SCRYPT_MEMORY_MAX, DashboardConfig, Role
from atcs.text import printable
from atcs.web.throttle import LoginThrottle, ThrottlePolicy

log = logging.getLogger(__name__)

SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
_DKLEN = 32
_MAXMEM = 2 * SCRYPT_MEMORY_MAX  # 128*N*r plus scrypt's own buffers


def hash_password(password: str, *, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> str:
    """Return ``scrypt$N$r$p$salt$hash`` for ``password`` with a fresh 16-byte salt."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(
        password.encode(), salt=salt, n=n, r=r, p=p, maxmem=_MAXMEM, dklen=_DKLEN
    )
    b64 = base64.b64encode
    return f"scrypt${n}${r}${p}${b64(salt).decode()}${b64(digest).decode()}"


def verify_password(password: str, encoded: str) -> bool:
    """Tell whether ``password`` matches the scrypt hash ``encoded`` (constant-time compare)."""
    match = SCRYPT_HASH.match(encoded)
    if match is None:
        return False
    try:
        salt = base64.b64decode(match.group("salt"), validate=True)
        expected = base64.b64decode(match.group("hash"), validate=True)
        digest = hashlib.scrypt(
            password.encode(),
            salt=salt,
            n=int(match.group("n")),
            r=int(match.group("r")),
            p=int(match.group("p")),
            maxmem=_MAXMEM,
            dklen=len(expected),
        )
    except ValueError:
        return False
    return hmac.compare_digest(digest, expected)


@dataclass(frozen=True, slots=True)
class Session:
    """A logged-in user: name, role, and when the login ends (``time.monotonic`` seconds)."""

    token: str
    user: str
    role: Role
    expires_at: float

    @property
    def may_operate(self) -> bool:
        """True for operators (hold, fixed plan, release)."""
        return self.role == "operator"


class LoginRefused(Exception):  # noqa: N818 - a refusal, not a fault of the program
    """A login that did not succeed: ``code`` says why, ``retry_after_s`` when to try again.

    Codes: ``wrong_password``, ``login_delayed``, ``login_busy``.
    """

    def __init__(self, code: str, message: str, retry_after_s: float = 0.0) -> None:
        super().__init__(message)
        self.code = code
        self.retry_after_s = retry_after_s


class UserDirectory:
    """The configured users and their password hashes (env passwords hashed at start)."""

    def __init__(self, cfg: DashboardConfig, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self._users: dict[str, tuple[Role, str]] = {}
        for user in cfg.users:
            if user.password_hash is not None:
                self._users[user.name] = (user.role, user.password_hash)
                continue
            secret = env.get(user.password_env or "", "")
            if not secret:
                log.warning(
                    "dashboard user %s cannot log in: environment variable %s is not set",
                    user.name,
                    user.password_env,
                )
                continue
            self._users[user.name] = (user.role, hash_password(secret))
        self._dummy = hash_password(secrets.token_urlsafe(12))

    def __len__(self) -> int:
        return len(self._users)

    def check(self, name: str, password: str) -> Role | None:
        """Return the role of ``name`` when ``password`` is right, else None (same cost)."""
        entry = self._users.get(name)
        ok = verify_password(password, entry[1] if entry else self._dummy)
        return entry[0] if entry is not None and ok else None


class SessionStore:
    """Live sessions by token, bounded and expiring; safe from any thread."""

    def __init__(
        self, ttl_s: float, max_sessions: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._ttl_s = ttl_s
        self._max = max_sessions
        self._clock = clock
        self._lock = threading.Lock()
        self._sessions: OrderedDict[str, Session] = OrderedDict()

    def create(self, user: str, role: Role) -> Session:
        """Open a session for ``user``; the oldest is dropped when the store is full."""
        session = Session(secrets.token_urlsafe(32), user, role, self._clock() + self._ttl_s)
        with self._lock:
            self._sessions[session.token] = session
            while len(self._sessions) > self._max:
                self._sessions.popitem(last=False)
        return session

    def get(self, token: str | None) -> Session | None:
        """Return the live session of ``token`` (None when unknown or expired)."""
        if not token:
            return None
        with self._lock:
            session = self._sessions.get(token)
            if session is None:
                return None
            if session.expires_at <= self._clock():
                del self._sessions[token]
                return None
            return session

    def drop(self, token: str | None) -> None:
        """End the session of ``token`` (logout)."""
        if token:
            with self._lock:
                self._sessions.pop(token, None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._sessions)


class PasswordChecks:
    """Runs password checks on a few threads of their own, with a bounded number waiting.

    A scrypt check costs about 16 MiB and tens of milliseconds of CPU; running checks only
    on ``workers`` dedicated threads bounds both, whatever the number of requests. At most
    ``queue_max`` checks wait or run for callers from unknown addresses; more are turned
    away (``login_busy``). Callers from an address their name logged in from have one
    thread and ``queue_max`` places of their own, so a flood of guesses from elsewhere
    never queues in front of the operator.
    """

    def __init__(self, workers: int, queue_max: int) -> None:
        self._pools = {
            False: ThreadPoolExecutor(max_workers=workers, thread_name_prefix="atcs-login"),
            True: ThreadPoolExecutor(max_workers=1, thread_name_prefix="atcs-login-known"),
        }
        self._queue_max = queue_max
        self._lock = threading.Lock()
        self._pending = {False: 0, True: 0}

    @property
    def pending(self) -> int:
        """Checks waiting or running."""
        with self._lock:
            return sum(self._pending.values())

    def _done(self, known: bool) -> None:
        with self._lock:
            self._pending[known] -= 1

    async def check(
        self, directory: UserDirectory, name: str, password: str, known: bool
    ) -> Role | None:
        """Return the role of ``name`` when ``password`` is right (see :meth:`UserDirectory.check`).

        Raises :class:`LoginRefused` ``login_busy`` when too many checks wait already.
        """
        with self._lock:
            if self._pending[known] >= self._queue_max:
                raise LoginRefused(
                    "login_busy", "too many logins at once; try again in a second", 1.0
                )
            self._pending[known] += 1
        future = self._pools[known].submit(directory.check, name, password)
        future.add_done_callback(lambda _f: self._done(known))
        return await asyncio.wrap_future(future)

    def close(self) -> None:
        """Drop the checks still waiting and let the threads end."""
        for pool in self._pools.values():
            pool.shutdown(wait=False, cancel_futures=True)


def throttle_policy(cfg: DashboardConfig) -> ThrottlePolicy:
    """Return the login throttle's numbers from ``[dashboard]``."""
    return ThrottlePolicy(
        free_failures=cfg.login_failures_max,
        base_delay_s=cfg.login_delay_s,
        max_delay_s=cfg.login_delay_max_s,
        memory_s=cfg.login_memory_s,
        known_for_s=cfg.login_known_for_s,
        entries_max=cfg.login_clients_max,
    )


class Authenticator:
    """Logs users in and out: the directory, the throttle, the checks and the sessions."""

    def __init__(self, cfg: DashboardConfig, environ: Mapping[str, str] | None = None) -> None:
        self.directory = UserDirectory(cfg, environ)
        self.sessions = SessionStore(cfg.session_ttl_s, cfg.sessions_max)
        self.throttle = LoginThrottle(throttle_policy(cfg))
        self.checks = PasswordChecks(cfg.login_checks_max, cfg.login_queue_max)
        self.anonymous_viewers = cfg.allow_anonymous_viewers
        env = os.environ if environ is None else environ
        self._metrics_token = env.get(cfg.metrics_token_env or "", "").encode()
        if cfg.metrics_token_env and not self._metrics_token:
            log.warning(
                "dashboard: /metrics token variable %s is not set: /metrics needs a login",
                cfg.metrics_token_env,
            )

    def metrics_token_ok(self, token: str | None) -> bool:
        """Tell whether ``token`` is the configured /metrics token (constant-time)."""
        if not self._metrics_token or not token:
            return False
        return hmac.compare_digest(token.encode(), self._metrics_token)

    async def login(self, name: str, password: str, client: str) -> Session:
        """Return a new session or raise :class:`LoginRefused`.

        ``client`` is the caller's address. Codes: ``login_delayed`` (too many failures from
        that address, or of that name from addresses it never logged in from: wait
        ``retry_after_s``), ``login_busy`` (too many checks at once), ``wrong_password``.
        """
        attempt, wait_s = self.throttle.admit(name, client)
        if attempt is None:
            raise LoginRefused(
                "login_delayed",
                f"too many failed logins; try again in {math.ceil(wait_s)} s",
                wait_s,
            )
        role = await self.checks.check(self.directory, name, password, attempt.known)
        if role is None:
            log.warning(
                "dashboard: failed login for user %s from %s",
                printable(name, 64),
                printable(client, 64),
            )
            raise LoginRefused("wrong_password", "unknown user or wrong password")
        self.throttle.succeeded(attempt)
        log.info("dashboard: user %s logged in (%s) from %s", name, role, printable(client, 64))
        return self.sessions.create(name, role)

    def close(self) -> None:
        """Stop the password-check threads."""
        self.checks.close()


def main() -> int:
    """Print the scrypt hash of a password typed twice (or read from standard input)."""
    if sys.stdin.isatty():
        first = getpass.getpass("password: ")
        if first != getpass.getpass("again: "):
            print("the passwords differ", file=sys.stderr)
            return 1
    else:
        first = sys.stdin.readline().rstrip("\n")
    if len(first) < 8:
        print("use at least 8 characters", file=sys.stderr)
        return 1
    print(hash_password(first))
    return 0


if __name__ == "__main__":
    sys.exit(main())
