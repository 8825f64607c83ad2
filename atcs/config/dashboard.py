"""Configuration of the live web dashboard and its HTTP API (``[dashboard]``).

Users log in with a password checked against a scrypt hash (``password_hash``, made with
``python -m atcs.web.auth``) or against a password read from an environment variable
(``password_env``) when the dashboard starts; the file never holds a plain password.
Validation does no I/O.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from atcs.config._base import InsidePath, StrictModel
from atcs.config.room import MapConfig

SCRYPT_HASH = re.compile(
    r"^scrypt\$(?P<n>[0-9]+)\$(?P<r>[0-9]+)\$(?P<p>[0-9]+)\$"
    r"(?P<salt>[A-Za-z0-9+/=]{16,})\$(?P<hash>[A-Za-z0-9+/=]{32,})$"
)
"""``scrypt$N$r$p$salt$hash`` with salt and hash in standard base64."""

SCRYPT_MEMORY_MAX = 64 * 1024 * 1024
"""Most memory (bytes, 128·N·r) one password check may take."""

SCRYPT_P_MAX = 4
"""Highest scrypt parallelisation parameter p accepted (cost grows with it)."""

Role = Literal["operator", "viewer"]
Language = Literal["id", "en"]


class DashboardUser(StrictModel):
    """One dashboard user: a name, a role and where its password is checked against."""

    name: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$",
        description="Login name: letters, digits, '.', '_', '@', '-' (shown in the audit log).",
    )
    role: Role = Field(
        default="viewer",
        description="operator: may hold, fix and release plans; viewer: read only.",
    )
    password_hash: str | None = Field(
        default=None,
        max_length=512,
        description="scrypt hash 'scrypt$N$r$p$salt$hash' (python -m atcs.web.auth).",
    )
    password_env: str | None = Field(
        default=None,
        max_length=128,
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description=(
            "Name of the environment variable holding the password (read at start and "
            "hashed in memory); a user whose variable is unset cannot log in."
        ),
    )

    @field_validator("password_hash")
    @classmethod
    def _hash_format(cls, value: str | None) -> str | None:
        if value is None:
            return None
        match = SCRYPT_HASH.match(value)
        if match is None:
            raise ValueError("must look like 'scrypt$N$r$p$salt$hash' (python -m atcs.web.auth)")
        n, r, p = (int(match.group(k)) for k in ("n", "r", "p"))
        if n < 2 or n & (n - 1):
            raise ValueError("scrypt N must be a power of two")
        if 128 * n * r > SCRYPT_MEMORY_MAX or not 1 <= p <= SCRYPT_P_MAX or r < 1:
            raise ValueError(
                f"scrypt cost too high: 128*N*r must be at most {SCRYPT_MEMORY_MAX} bytes and "
                f"p 1 to {SCRYPT_P_MAX} (every login attempt pays it)"
            )
        return value

    @model_validator(mode="after")
    def _one_secret(self) -> DashboardUser:
        if (self.password_hash is None) == (self.password_env is None):
            raise ValueError("give exactly one of password_hash and password_env")
        return self


class DashboardConfig(StrictModel):
    """The live dashboard and HTTP API served by ``atcs run``; absent: not served."""

    host: str = Field(
        default="127.0.0.1",
        min_length=1,
        max_length=253,
        description="Address to listen on; 0.0.0.0 serves every interface (put TLS in front).",
    )
    port: int = Field(default=8080, ge=0, le=65535, description="TCP port; 0: any free port.")
    language: Language = Field(
        default="id", description="Default label language: id (Bahasa Indonesia) or en."
    )
    title: str = Field(
        default="", max_length=200, description="Page title; empty: the site's name."
    )
    allow_anonymous_viewers: bool = Field(
        default=False,
        description="True: anyone who reaches the page may watch without logging in.",
    )
    users: list[DashboardUser] = Field(
        default_factory=list,
        max_length=1000,
        description="Users who may log in (operators and viewers).",
    )
    session_ttl_s: float = Field(
        default=43200.0, gt=0.0, le=2592000.0, description="A login lasts this long, s."
    )
    sessions_max: int = Field(
        default=1000, ge=1, le=100000, description="Live logins kept; the oldest is dropped."
    )
    login_failures_max: int = Field(
        default=5,
        ge=1,
        le=100,
        description=(
            "Failed logins answered at once, per client address and per name from addresses "
            "it never logged in from; each further failure doubles the wait."
        ),
    )
    login_delay_s: float = Field(
        default=1.0,
        gt=0.0,
        le=60.0,
        description="Wait after the first failure beyond login_failures_max, s (then doubled).",
    )
    login_delay_max_s: float = Field(
        default=30.0,
        gt=0.0,
        le=3600.0,
        description="Longest wait between two login attempts, s (never a lockout).",
    )
    login_memory_s: float = Field(
        default=900.0,
        ge=1.0,
        le=86400.0,
        description="Failures are forgotten this long after the last one, s.",
    )
    login_known_for_s: float = Field(
        default=2592000.0,
        ge=0.0,
        le=31536000.0,
        description=(
            "An address a name logged in from stays exempt from that name's wait this long, s."
        ),
    )
    login_clients_max: int = Field(
        default=4096,
        ge=16,
        le=1000000,
        description="Addresses, names and known addresses remembered by the throttle (each).",
    )
    login_checks_max: int = Field(
        default=2,
        ge=1,
        le=32,
        description=(
            "Password checks run at once for unknown addresses (scrypt: about 16 MiB and "
            "40 ms each); known addresses have one more of their own."
        ),
    )
    login_queue_max: int = Field(
        default=16,
        ge=1,
        le=1024,
        description="Password checks waiting or running before more are answered 503 login_busy.",
    )
    secure_cookie: bool | Literal["auto"] = Field(
        default="auto",
        description=(
            "Mark the session cookie Secure: auto (when the request came over TLS, directly "
            "or through a trusted proxy), true (always) or false (never)."
        ),
    )
    cert_file: str | None = Field(
        default=None,
        max_length=4096,
        description="PEM certificate (chain): serve HTTPS (needs key_file).",
    )
    key_file: str | None = Field(
        default=None, max_length=4096, description="PEM private key of cert_file."
    )
    trusted_proxies: list[str] = Field(
        default_factory=list,
        max_length=256,
        description=(
            "Reverse proxies (addresses or CIDR networks) whose X-Forwarded-For and "
            "X-Forwarded-Proto headers are believed; empty: none."
        ),
    )
    metrics_token_env: str | None = Field(
        default=None,
        max_length=128,
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description=(
            "Name of the environment variable holding a bearer token that may read /metrics "
            "without a login (for Prometheus)."
        ),
    )
    request_body_max_bytes: int = Field(
        default=65536,
        ge=1024,
        le=16777216,
        description="Largest request body accepted, bytes; larger: 413.",
    )
    refresh_s: float = Field(
        default=1.0, ge=0.2, le=60.0, description="How often the page asks for new values, s."
    )
    snapshot_interval_s: float = Field(
        default=1.0,
        ge=0.2,
        le=60.0,
        description="Least time between two annotated camera images of one camera, s.",
    )
    snapshot_width_px: int = Field(
        default=960, ge=160, le=3840, description="Width of the camera images, pixels."
    )
    snapshot_jpeg_quality: int = Field(
        default=75, ge=20, le=95, description="JPEG quality of the camera images, 20..95."
    )
    trend_windows: int = Field(
        default=30, ge=2, le=720, description="Windows kept per segment for its trend."
    )
    map: MapConfig = Field(
        default_factory=MapConfig, description="The city map: basemap tiles and first view."
    )
    wall_camera_tiles: int = Field(
        default=6,
        ge=1,
        le=64,
        description="Camera tiles on one page of the wall's camera grid; more cameras rotate.",
    )
    wall_page_s: float = Field(
        default=12.0,
        ge=2.0,
        le=600.0,
        allow_inf_nan=False,
        description="Seconds each page of the wall's camera grid is shown.",
    )
    alarm_sound: bool = Field(
        default=True,
        description="The wall beeps and flashes while an unacknowledged major alarm is active.",
    )
    audit_file: InsidePath = Field(
        default="dashboard/operator-actions.jsonl",
        description=(
            "Audit log of operator actions (JSON lines), relative to service.state_dir and "
            "inside it (no '..', not absolute)."
        ),
    )

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        bad = []
        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                bad.append(item)
        if bad:
            raise ValueError(f"not addresses or CIDR networks: {bad}")
        return value

    @model_validator(mode="after")
    def _unique_users(self) -> DashboardConfig:
        seen: set[str] = set()
        problems = []
        if (self.cert_file is None) != (self.key_file is None):
            problems.append("cert_file and key_file: set both or neither")
        if self.login_delay_max_s < self.login_delay_s:
            problems.append("login_delay_max_s: must not be below login_delay_s")
        for i, user in enumerate(self.users):
            if user.name in seen:
                problems.append(f"users[{i}].name: duplicate user {user.name!r}")
            seen.add(user.name)
        if problems:
            raise ValueError("; ".join(problems))
        return self
