"""Shared pieces of the configuration models: the strict base model and value types.

Value types: finite numbers, normalised points, polygons and lines, time zones, log
levels, paths; and the ``${ENV}`` helpers. Every float in every model is finite
(``allow_inf_nan=False`` on :class:`StrictModel`); fields add their physical bounds.
Validation does no I/O except reading the list of time zone names from the tz database
once.
"""

from __future__ import annotations

import functools
import itertools
import os
import re
import zoneinfo
from pathlib import PurePosixPath
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

_DRIVE = re.compile(r"^[A-Za-z]:")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ENV_REF = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}")


class StrictModel(BaseModel):
    """Base of every config model: unknown keys are errors, models are immutable.

    Every float is finite: ``nan``, ``inf`` and numbers too large for a float are refused.
    """

    model_config = ConfigDict(
        extra="forbid", frozen=True, validate_default=True, allow_inf_nan=False
    )


MIN_POLYGON_AREA = 1e-6
"""Least area of a segment polygon, as a fraction of the image (2 px² of a 1080p frame)."""

MAX_POLYGON_POINTS = 100
"""Most corners of a segment polygon."""

Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
"""A finite number in [0, 1]: a normalised image coordinate or a share."""

NormPoint = tuple[Fraction, Fraction]
"""A point in normalised image coordinates: x and y as fractions of width and height."""

Name = Annotated[str, Field(max_length=200)]
"""A human name or label shown on screens (at most 200 characters)."""

PathText = Annotated[str, Field(min_length=1, max_length=4096, pattern=r"^[^\x00]*$")]
"""A file or folder path or a URL: 1..4096 characters, no NUL."""

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
"""A Python logging level name."""


def _cross(o: NormPoint, a: NormPoint, b: NormPoint) -> float:
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])


def _within(a: NormPoint, b: NormPoint, p: NormPoint) -> bool:
    """Whether ``p``, collinear with segment ab, lies on it."""
    return min(a[0], b[0]) <= p[0] <= max(a[0], b[0]) and min(a[1], b[1]) <= p[1] <= max(a[1], b[1])


def segments_touch(a: NormPoint, b: NormPoint, c: NormPoint, d: NormPoint) -> bool:
    """Whether the closed segments ab and cd share at least one point."""
    d1, d2, d3, d4 = _cross(c, d, a), _cross(c, d, b), _cross(a, b, c), _cross(a, b, d)
    if d1 * d2 < 0 and d3 * d4 < 0:
        return True
    return (
        (d1 == 0 and _within(c, d, a))
        or (d2 == 0 and _within(c, d, b))
        or (d3 == 0 and _within(a, b, c))
        or (d4 == 0 and _within(a, b, d))
    )


def polygon_area(points: list[NormPoint]) -> float:
    """Area enclosed by ``points`` (shoelace formula), as a fraction of the image."""
    pairs = itertools.pairwise([*points, points[0]])
    return abs(sum(x1 * y2 - x2 * y1 for (x1, y1), (x2, y2) in pairs)) / 2.0


def _simple_polygon(points: list[NormPoint]) -> list[NormPoint]:
    """Refuse polygons of (almost) no area and polygons whose edges cross or touch."""
    n = len(points)
    edges = [(points[i], points[(i + 1) % n]) for i in range(n)]
    for i, (a, b) in enumerate(edges):
        if a == b:
            raise ValueError(f"corners {i} and {(i + 1) % n} are the same point")
    for i, j in itertools.combinations(range(n), 2):
        neighbours = j == i + 1 or (i == 0 and j == n - 1)
        if neighbours:
            # adjacent edges share one corner; they must not fold back over each other
            shared = edges[i][1] if j == i + 1 else edges[i][0]
            other_i = edges[i][0] if j == i + 1 else edges[i][1]
            other_j = edges[j][1] if j == i + 1 else edges[j][0]
            if _cross(shared, other_i, other_j) == 0 and (
                _within(shared, other_i, other_j) or _within(shared, other_j, other_i)
            ):
                raise ValueError(f"edges {i} and {j} overlap")
        elif segments_touch(*edges[i], *edges[j]):
            raise ValueError(f"edges {i} and {j} cross: the polygon must not intersect itself")
    if polygon_area(points) < MIN_POLYGON_AREA:
        raise ValueError(f"area is below {MIN_POLYGON_AREA:g} of the image")
    return points


Polygon = Annotated[
    list[NormPoint],
    Field(min_length=3, max_length=MAX_POLYGON_POINTS),
    AfterValidator(_simple_polygon),
]
"""A simple polygon (no crossing edges) of positive area, corners in [0, 1]²."""


def _distinct_ends(line: tuple[NormPoint, NormPoint]) -> tuple[NormPoint, NormPoint]:
    (x1, y1), (x2, y2) = line
    if abs(x1 - x2) + abs(y1 - y2) < 1e-6:
        raise ValueError("the two points of a line must differ")
    return line


NormLine = Annotated[tuple[NormPoint, NormPoint], AfterValidator(_distinct_ends)]
"""A line between two different points in [0, 1]²."""


@functools.cache
def _time_zone_names() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def _known_zone(name: str) -> str:
    if name not in _time_zone_names():
        raise ValueError(f"unknown IANA time zone {name!r} (e.g. 'Asia/Jakarta', 'UTC')")
    return name


TimeZoneName = Annotated[str, Field(max_length=64), AfterValidator(_known_zone)]
"""An IANA time zone name from the tz database, e.g. ``Asia/Makassar``."""


def _inside(path: str) -> str:
    parts = PurePosixPath(path.replace("\\", "/")).parts
    if path.startswith(("/", "\\")) or _DRIVE.match(path) or ".." in parts:
        raise ValueError("must be a relative path inside its folder (no '..', not absolute)")
    return path


InsidePath = Annotated[PathText, AfterValidator(_inside)]
"""A relative path that stays inside the folder it is relative to."""


def env_name(value: str, what: str) -> str:
    """Return ``value`` if it can name an environment variable; ValueError saying ``what``."""
    if not _ENV_NAME.match(value):
        raise ValueError(
            f"must be the NAME of an environment variable (letters, digits, '_'), not {what}"
        )
    return value


def expand_env(text: str, environ: dict[str, str] | None = None) -> str:
    """Replace ``${NAME}`` and ``${NAME:-default}`` in ``text`` from the environment.

    A reference to an unset variable without a default is left as it is, so that the
    caller can report it.
    """
    env = dict(os.environ) if environ is None else environ

    def _sub(match: re.Match[str]) -> str:
        name = match.group("name")
        if name in env and env[name] != "":
            return env[name]
        default = match.group("default")
        return default if default is not None else match.group(0)

    return _ENV_REF.sub(_sub, text)


def unresolved_env(text: str) -> list[str]:
    """Names of ``${NAME}`` references still present in ``text``."""
    return [m.group("name") for m in _ENV_REF.finditer(text)]
