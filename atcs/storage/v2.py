"""The InfluxDB v2 write API through the ``influxdb-client`` package.

Serves InfluxDB 2.x, 3.x and 1.8+ (whose compatibility API takes ``database/retention``
as the bucket and ``user:password`` as the token). The client runs in SYNCHRONOUS mode with
its own retries off: batching, retry with backoff and the disk spool are the sink's, so a
failed batch is never dropped by the library's batching writer after its retries.
"""

from __future__ import annotations

from typing import Any

import urllib3
from influxdb_client.client.influxdb_client import InfluxDBClient
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.domain.write_precision import WritePrecision
from influxdb_client.rest import ApiException

from atcs.config.storage import InfluxConfig, Precision
from atcs.storage.base import ServerUnavailableError, error_for_status

_PRECISION: dict[Precision, Any] = {
    "ns": WritePrecision.NS,
    "us": WritePrecision.US,
    "ms": WritePrecision.MS,
    "s": WritePrecision.S,
}


def _api_message(exc: ApiException) -> str:
    message = getattr(exc, "message", None)
    if isinstance(message, bytes):
        return message.decode("utf-8", errors="replace")
    if isinstance(message, str):
        return message
    return str(exc.reason or "")


class V2Writer:
    """Writes to one bucket through ``influxdb-client``'s synchronous write API."""

    def __init__(self, config: InfluxConfig, token: str = "") -> None:
        """Create the client; nothing is sent until the first write."""
        self._bucket = config.bucket
        self._org = config.org
        self._client = InfluxDBClient(
            url=config.url.rstrip("/"),
            token=token,
            org=config.org,
            timeout=int(config.timeout_s * 1000),
            verify_ssl=config.verify_tls,
            ssl_ca_cert=config.ca_file,
            retries=False,
        )
        self._write_api = self._client.write_api(write_options=SYNCHRONOUS)
        self.target = f"{config.url.rstrip('/')} (v2, bucket {self._bucket!r})"

    def write(self, body: bytes, precision: Precision) -> None:
        """Write ``body`` to the bucket; raise a StorageError subclass on failure."""
        try:
            self._write_api.write(
                bucket=self._bucket,
                org=self._org,
                record=body,
                write_precision=_PRECISION[precision],
            )
        except ApiException as exc:
            raise error_for_status(int(exc.status or 0), _api_message(exc), self.target) from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise ServerUnavailableError(f"InfluxDB at {self.target} unreachable: {exc}") from None

    def close(self) -> None:
        """Close the client and its connections."""
        self._write_api.close()  # type: ignore[no-untyped-call]
        self._client.close()  # type: ignore[no-untyped-call]
