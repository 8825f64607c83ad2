"""Dashboard logins: scrypt password hashes, the user directory, sessions and lockouts.

Passwords are checked with :func:`hashlib.scrypt` (N=2**14, r=8, p=1 by default) and a
constant-time comparison; an unknown user costs the same check, so the answer time does
not tell which names exist. A session is a random token (``secrets.token_urlsafe``) kept
in memory with an expiry; the store is bounded (the oldest login is dropped). Too many
failed logins of one name lock that name out for a while; the failure map is bounded too.

``python -m atcs.web.auth`` prints the hash of a password read from the terminal (or from
standard input) for the ``password_hash`` of a ``[[dashboard.users]]`` entry.
"""

from __future__ import annotations

import base64
import getpass
import hashlib
import hmac
import logging
import os
import secrets
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from atcs.config.dashboard import SCRYPT_HASH, DashboardConfig, Role

log = logging.getLogger(__name__)

SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
_DKLEN = 32
_MAXMEM = 64 * 1024 * 1024
FAILURES_TRACKED_MAX = 1024
"""Names whose failed logins are remembered; beyond this the oldest is forgotten."""


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
    """A login that did not succeed; ``code`` tells why (``wrong_password``, ``locked_out``)."""

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


class LoginThrottle:
    """Counts failed logins per name; after ``max_failures`` the name is locked out."""

    def __init__(
        self, max_failures: int, lockout_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._max = max_failures
        self._lockout_s = lockout_s
        self._clock = clock
        self._lock = threading.Lock()
        self._failures: OrderedDict[str, tuple[int, float]] = OrderedDict()

    def locked_for_s(self, name: str) -> float:
        """Seconds ``name`` stays locked out (0.0: may try)."""
        with self._lock:
            count, until = self._failures.get(name, (0, 0.0))
        if count < self._max:
            return 0.0
        return max(0.0, until - self._clock())

    def failed(self, name: str) -> None:
        """Count one failure of ``name`` (starts the lockout at the limit)."""
        with self._lock:
            count, until = self._failures.pop(name, (0, 0.0))
            now = self._clock()
            if count >= self._max and until <= now:
                count = 0  # the last lockout is over: start counting again
            count += 1
            self._failures[name] = (count, now + self._lockout_s)
            while len(self._failures) > FAILURES_TRACKED_MAX:
                self._failures.popitem(last=False)

    def succeeded(self, name: str) -> None:
        """Forget the failures of ``name``."""
        with self._lock:
            self._failures.pop(name, None)


class Authenticator:
    """Logs users in and out: the directory, the throttle and the session store together."""

    def __init__(self, cfg: DashboardConfig, environ: Mapping[str, str] | None = None) -> None:
        self.directory = UserDirectory(cfg, environ)
        self.sessions = SessionStore(cfg.session_ttl_s, cfg.sessions_max)
        self.throttle = LoginThrottle(cfg.login_failures_max, cfg.lockout_s)
        self.anonymous_viewers = cfg.allow_anonymous_viewers

    def login(self, name: str, password: str) -> Session:
        """Return a new session or raise :class:`LoginRefused` (locked out, wrong password)."""
        wait_s = self.throttle.locked_for_s(name)
        if wait_s > 0.0:
            raise LoginRefused(
                "locked_out",
                f"too many failed logins for {name!r}; try again in {wait_s:.0f} s",
                wait_s,
            )
        role = self.directory.check(name, password)
        if role is None:
            self.throttle.failed(name)
            log.warning("dashboard: failed login for user %r", name[:64])
            raise LoginRefused("wrong_password", "unknown user or wrong password")
        self.throttle.succeeded(name)
        log.info("dashboard: user %s logged in (%s)", name, role)
        return self.sessions.create(name, role)


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
