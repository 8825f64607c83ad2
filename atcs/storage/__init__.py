"""Time-series storage in InfluxDB: points, the v1 and v2 writers, the spool and the sink.

The service builds one :class:`InfluxSink` from the ``[influx]`` config table and hands it
records through the :class:`atcs.sinks.Sink` protocol; see ``docs/influxdb.md``.
"""

from __future__ import annotations

from atcs.storage.base import (
    AuthenticationError,
    DatabaseNotFoundError,
    InfluxWriter,
    PointsRejectedError,
    ServerUnavailableError,
)
from atcs.storage.factory import make_query_client, make_writer
from atcs.storage.lineprotocol import Point, encode
from atcs.storage.points import (
    ALARM,
    CAMERA_HEALTH,
    SEGMENT_METRICS,
    SIGNAL_PLAN,
    alarm_point,
    camera_point,
    metrics_point,
    plan_point,
)
from atcs.storage.sink import InfluxSink
from atcs.storage.spool import Spool
from atcs.storage.v1 import V1Writer
from atcs.storage.v2 import V2Writer

__all__ = [
    "ALARM",
    "CAMERA_HEALTH",
    "SEGMENT_METRICS",
    "SIGNAL_PLAN",
    "AuthenticationError",
    "DatabaseNotFoundError",
    "InfluxSink",
    "InfluxWriter",
    "Point",
    "PointsRejectedError",
    "ServerUnavailableError",
    "Spool",
    "V1Writer",
    "V2Writer",
    "alarm_point",
    "camera_point",
    "encode",
    "make_query_client",
    "make_writer",
    "metrics_point",
    "plan_point",
]
