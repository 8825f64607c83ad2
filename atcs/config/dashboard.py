"""Configuration of the live web dashboard and its HTTP API (``[dashboard]``).

Users log in with a password checked against a scrypt hash (``password_hash``, made with
``python -m atcs.web.auth``) or against a password read from an environment variable
(``password_env``) when the dashboard starts; the file never holds a plain password.
Validation does no I/O.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from atcs.config._base import InsidePath, StrictModel

SCRYPT_HASH = re.compile(
    r"^scrypt\$(?P<n>[0-9]+)\$(?P<r>[0-9]+)\$(?P<p>[0-9]+)\$"
    r"(?P<salt>[A-Za-z0-9+/=]{16,})\$(?P<hash>[A-Za-z0-9+/=]{32,})$"
)
"""``scrypt$N$r$p$salt$hash`` with salt and hash in standard base64."""

SCRYPT_MAX_BYTES = 64 * 1024 * 1024
SCRYPT_MAX_P = 16
"""Bounds of the scrypt parameters a hash may carry: 128 * N * r bytes of memory, p."""

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
        if r < 1 or not 1 <= p <= SCRYPT_MAX_P or 128 * n * r > SCRYPT_MAX_BYTES:
            raise ValueError(
                f"scrypt parameters out of bounds: 128 * N * r at most {SCRYPT_MAX_BYTES} "
                f"bytes, 1 <= p <= {SCRYPT_MAX_P} (a login must cost bounded time and memory)"
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
        default=5, ge=1, le=100, description="Failed logins of one name before a lockout."
    )
    lockout_s: float = Field(
        default=60.0, ge=0.0, le=86400.0, description="Lockout after too many failures, s."
    )
    secure_cookie: bool = Field(
        default=False,
        description="Mark the session cookie Secure (set when served over HTTPS).",
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
    audit_file: InsidePath = Field(
        default="dashboard/operator-actions.jsonl",
        description=(
            "Audit log of operator actions (JSON lines), relative to service.state_dir and "
            "inside it (no '..', not absolute)."
        ),
    )

    @model_validator(mode="after")
    def _unique_users(self) -> DashboardConfig:
        seen: set[str] = set()
        problems = []
        for i, user in enumerate(self.users):
            if user.name in seen:
                problems.append(f"users[{i}].name: duplicate user {user.name!r}")
            seen.add(user.name)
        if problems:
            raise ValueError("; ".join(problems))
        return self
