"""A constant-velocity Kalman filter for one box, with time steps of any length.

State ``[ax, ay, w, h, vx, vy, vw, vh]``: the box's anchor (bottom centre: where the
vehicle meets the road, steadier than the box top, which a rider's head or an occlusion
moves) and its size in pixels, and their rates in pixels per second. Time steps come from
frame times, so the filter works the same at 30 frames per second and at 2. Noise scales
with the box size (its geometric mean side, ``sqrt(w * h)``): a near motorcycle and a far
lorry of the same pixel size move alike, and a box twice as big moves twice as many pixels.

- Process noise: white acceleration of ``accel_sizes_s2`` box sizes per second squared on
  the centre (a tenth of it on the size), the discrete model
  ``Q = a^2 [[dt^4/4, dt^3/2], [dt^3/2, dt^2]]`` per coordinate.
- Measurement noise: ``measure_sizes`` box sizes (standard deviation) on every coordinate.
- A new track's velocity is ``prior_velocity_px_s`` (default 0) with a standard deviation
  of ``unknown_speed_sizes_s`` box sizes per second: before its second observation a
  track may have gone anywhere within a few box lengths per second.
- ``miss_speed_sizes_s``: how far (box sizes per second of absence) a track with a
  velocity may be found from where the filter predicts it, whatever the filter's own
  uncertainty after a long miss says (the tracker's hard limit on a match).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

F64Array = npt.NDArray[np.float64]

_H = np.hstack([np.eye(4), np.zeros((4, 4))])


@dataclass(frozen=True, slots=True)
class MotionNoise:
    """Noise levels of the filter, in box sizes (see the module docstring)."""

    accel_sizes_s2: float = 10.0
    measure_sizes: float = 0.15
    unknown_speed_sizes_s: float = 6.0
    miss_speed_sizes_s: float = 1.0


def box_size_px(xyxy: F64Array) -> float:
    """Geometric mean side of a box, pixels (at least 1)."""
    w = max(float(xyxy[2] - xyxy[0]), 1.0)
    h = max(float(xyxy[3] - xyxy[1]), 1.0)
    return float(np.sqrt(w * h))


def to_anchor_size(xyxy: F64Array) -> F64Array:
    """Box corners (4,) to anchor (bottom centre) and size (4,)."""
    out: F64Array = np.array(
        [(xyxy[0] + xyxy[2]) / 2, xyxy[3], xyxy[2] - xyxy[0], xyxy[3] - xyxy[1]],
        dtype=np.float64,
    )
    return out


def to_xyxy(anchor_size: F64Array) -> F64Array:
    """Anchor (bottom centre) and size (4,) to box corners (4,)."""
    ax, ay = anchor_size[0], anchor_size[1]
    w, h = max(float(anchor_size[2]), 1.0), max(float(anchor_size[3]), 1.0)
    out: F64Array = np.array([ax - w / 2, ay - h, ax + w / 2, ay], dtype=np.float64)
    return out


class BoxFilter:
    """Kalman filter of one track's box (see the module docstring); times in seconds."""

    __slots__ = ("cov", "noise", "state")

    def __init__(
        self,
        xyxy: F64Array,
        noise: MotionNoise,
        prior_velocity_px_s: F64Array | None = None,
    ) -> None:
        self.noise = noise
        size = box_size_px(xyxy)
        velocity = np.zeros(4) if prior_velocity_px_s is None else prior_velocity_px_s
        self.state: F64Array = np.concatenate([to_anchor_size(xyxy), velocity]).astype(np.float64)
        pos_var = (noise.measure_sizes * size) ** 2
        vel_var = (noise.unknown_speed_sizes_s * size) ** 2
        self.cov: F64Array = np.diag([pos_var] * 4 + [vel_var, vel_var, vel_var / 4, vel_var / 4])

    def _transition(self, dt_s: float) -> tuple[F64Array, F64Array]:
        f = np.eye(8)
        f[:4, 4:] = np.eye(4) * dt_s
        size = max(float(np.sqrt(max(self.state[2], 1.0) * max(self.state[3], 1.0))), 1.0)
        accel = np.array([1.0, 1.0, 0.1, 0.1]) * self.noise.accel_sizes_s2 * size
        var = accel**2
        q = np.zeros((8, 8))
        idx = np.arange(4)
        q[idx, idx] = var * dt_s**4 / 4
        q[idx, idx + 4] = q[idx + 4, idx] = var * dt_s**3 / 2
        q[idx + 4, idx + 4] = var * dt_s**2
        return f, q

    def predicted(self, dt_s: float) -> tuple[F64Array, F64Array]:
        """Predicted anchor-and-size (4,) and its covariance (4, 4) ``dt_s`` seconds ahead.

        The filter itself is not changed.
        """
        f, q = self._transition(dt_s)
        state = f @ self.state
        cov = f @ self.cov @ f.T + q
        return state[:4], cov[:4, :4]

    def measurement_var(self) -> F64Array:
        """Measurement noise variance (4,) at the box's current size."""
        size = max(float(np.sqrt(max(self.state[2], 1.0) * max(self.state[3], 1.0))), 1.0)
        return np.full(4, (self.noise.measure_sizes * size) ** 2)

    def update(self, dt_s: float, xyxy: F64Array) -> None:
        """Move the filter ``dt_s`` seconds ahead and correct it with the box ``xyxy``."""
        f, q = self._transition(dt_s)
        state = f @ self.state
        cov = f @ self.cov @ f.T + q
        innovation = to_anchor_size(xyxy) - _H @ state
        s = _H @ cov @ _H.T + np.diag(self.measurement_var())
        gain = cov @ _H.T @ np.linalg.inv(s)
        self.state = state + gain @ innovation
        self.cov = (np.eye(8) - gain @ _H) @ cov

    @property
    def velocity_px_s(self) -> F64Array:
        """Estimated rates (4,) of anchor x, anchor y, width and height, pixels per second."""
        out: F64Array = self.state[4:].copy()
        return out
