"""The writer protocol both server APIs implement, and how write failures are told apart.

A writer sends one line-protocol body and either returns (the server stored it) or raises
one of the :class:`~atcs.errors.StorageError` subclasses below. The sink keeps the points
of every failure except :class:`PointsRejectedError` (the server read the points and said
they are invalid, so sending them again cannot help).
"""

from __future__ import annotations

from typing import Protocol

from atcs.config.storage import Precision
from atcs.errors import StorageError


class ServerUnavailableError(StorageError):
    """The server cannot be reached or is failing (connection, timeout, HTTP 5xx or 429)."""


class AuthenticationError(StorageError):
    """The server refused the credentials or their rights (HTTP 401 or 403)."""


class DatabaseNotFoundError(StorageError):
    """The database (v1) or bucket (v2) does not exist (HTTP 404)."""


class PointsRejectedError(StorageError):
    """The server read the points and refused them (HTTP 400, 413 or 422)."""


class InfluxWriter(Protocol):
    """Sends line-protocol batches to one InfluxDB server."""

    @property
    def target(self) -> str:
        """Where points go, for log lines (URL and database or bucket; never a secret)."""
        ...

    def write(self, body: bytes, precision: Precision) -> None:
        """Store ``body`` (newline-separated lines) or raise a StorageError subclass."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


def error_for_status(status: int, message: str, target: str) -> StorageError:
    """Return the error that HTTP ``status`` with the server's ``message`` stands for."""
    detail = f"InfluxDB at {target} answered HTTP {status}: {message.strip()[:300]}"
    if status == 401:
        return AuthenticationError(f"{detail} (check the user name and password or token)")
    if status == 403:
        return AuthenticationError(f"{detail} (the user lacks the rights this write needs)")
    if status == 404:
        return DatabaseNotFoundError(detail)
    if status in (400, 413, 422):
        return PointsRejectedError(detail)
    return ServerUnavailableError(detail)
