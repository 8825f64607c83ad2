"""Ground calibration of a camera: a plane-to-plane homography from image pixels to metres.

A camera looking at a flat road maps every point of the road plane to one image point by a
3 x 3 homography. Four image points with known ground positions (no three of them on one
line) fix it; more points are fitted by least squares (the normalised direct linear
transform of Hartley and Zisserman, *Multiple View Geometry*, algorithm 4.2), and then the
residuals say how well the points agree (:meth:`GroundHomography.errors`).

Pure numpy, no I/O. Image points are in pixels (x right, y down); ground points in metres
in any right- or left-handed plane frame the user chose (for a road: across and along).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from atcs.errors import DataError

F64 = npt.NDArray[np.float64]

MIN_POINTS = 4
"""Fewest point pairs that fix a homography."""
_CONDITION_LIMIT = 1e-9  # smallest singular value ratio of a well-posed fit


@dataclass(frozen=True, slots=True)
class CalibrationErrors:
    """How well the point pairs agree with the fitted homography.

    ``image_rms_px`` and ``image_max_px``: distance in pixels between each image point and
    its ground point mapped back into the image (the reprojection error); ``ground_rms_m``
    and ``ground_max_m``: distance in metres between each ground point and its image point
    mapped onto the ground. With exactly four pairs the fit is exact and both are zero.
    """

    image_rms_px: float
    image_max_px: float
    ground_rms_m: float
    ground_max_m: float
    points: int


def _normaliser(points: F64) -> F64:
    """Similarity moving ``points`` (N, 2) to centroid 0 and mean distance sqrt(2)."""
    centre = points.mean(axis=0)
    spread = float(np.mean(np.hypot(*(points - centre).T)))
    if spread <= 0.0:
        raise DataError("calibration points all coincide")
    s = np.sqrt(2.0) / spread
    return np.array([[s, 0.0, -s * centre[0]], [0.0, s, -s * centre[1]], [0.0, 0.0, 1.0]])


def _apply(matrix: F64, points: F64) -> F64:
    """Map points (N, 2) through a 3 x 3 homography; raise for points sent to infinity."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    hom = pts @ matrix[:, :2].T + matrix[:, 2]
    w = hom[:, 2:3]
    if np.any(np.abs(w) < 1e-12):
        raise DataError("a point maps to infinity (it lies on the horizon of the ground plane)")
    out: F64 = hom[:, :2] / w
    return out


def fit_homography(source: npt.ArrayLike, target: npt.ArrayLike) -> F64:
    """Fit the homography (3, 3) mapping ``source`` points (N, 2) onto ``target`` points.

    Normalised DLT: exact for four pairs, least squares (algebraic) for more. Raises
    :class:`DataError` for fewer than four pairs, mismatched shapes, non-finite values or
    a degenerate layout (three or more of four points on one line, all points on a line).
    """
    src = np.asarray(source, dtype=np.float64)
    dst = np.asarray(target, dtype=np.float64)
    if src.ndim != 2 or src.shape[1] != 2 or src.shape != dst.shape:
        raise DataError(f"point sets must both be (N, 2), got {src.shape} and {dst.shape}")
    if len(src) < MIN_POINTS:
        raise DataError(f"a homography needs at least {MIN_POINTS} point pairs, got {len(src)}")
    if not (np.isfinite(src).all() and np.isfinite(dst).all()):
        raise DataError("calibration points must be finite numbers")
    ts, td = _normaliser(src), _normaliser(dst)
    s = _apply(ts, src)
    d = _apply(td, dst)
    rows = []
    for (x, y), (u, v) in zip(s, d, strict=True):
        rows.append([-x, -y, -1.0, 0.0, 0.0, 0.0, u * x, u * y, u])
        rows.append([0.0, 0.0, 0.0, -x, -y, -1.0, v * x, v * y, v])
    a = np.asarray(rows)
    _, sing, vt = np.linalg.svd(a)
    # A well-posed fit leaves exactly one direction of the nine free: the eighth singular
    # value must be clearly above zero, or several homographies fit (degenerate layout).
    if sing[7] <= _CONDITION_LIMIT * sing[0]:
        raise DataError(
            "calibration points are degenerate: three of four on one line, or all on a line"
        )
    h = vt[-1].reshape(3, 3)
    matrix: F64 = np.linalg.inv(td) @ h @ ts
    if abs(matrix[2, 2]) > 1e-12:
        matrix = matrix / matrix[2, 2]
    if abs(np.linalg.det(matrix)) < 1e-15:
        raise DataError("calibration points are degenerate: the fitted mapping is singular")
    return matrix


class GroundHomography:
    """Image pixels to ground metres and back, fitted from point pairs (see the module)."""

    __slots__ = ("_ground", "_image", "ground_to_image", "image_to_ground")

    def __init__(self, image_px: npt.ArrayLike, ground_m: npt.ArrayLike) -> None:
        self._image = np.asarray(image_px, dtype=np.float64).reshape(-1, 2)
        self._ground = np.asarray(ground_m, dtype=np.float64).reshape(-1, 2)
        self.image_to_ground: F64 = fit_homography(self._image, self._ground)
        self.ground_to_image: F64 = np.asarray(np.linalg.inv(self.image_to_ground), np.float64)
        self._check_one_side()

    def _check_one_side(self) -> None:
        """Every calibration point must lie on the visible side of the ground's horizon."""
        w = self._image @ self.image_to_ground[2, :2] + self.image_to_ground[2, 2]
        if not (np.all(w > 0) or np.all(w < 0)):
            raise DataError(
                "calibration points do not fit one ground plane seen by one camera: the "
                "image points lie on both sides of its horizon (check their order)"
            )

    def to_ground(self, points_px: npt.ArrayLike) -> F64:
        """Ground positions (N, 2) in metres of image points (N, 2) in pixels."""
        return _apply(self.image_to_ground, np.asarray(points_px, dtype=np.float64))

    def to_image(self, points_m: npt.ArrayLike) -> F64:
        """Image positions (N, 2) in pixels of ground points (N, 2) in metres."""
        return _apply(self.ground_to_image, np.asarray(points_m, dtype=np.float64))

    def on_ground_side(self, points_px: npt.ArrayLike) -> npt.NDArray[np.bool_]:
        """Which image points (N, 2) lie below the horizon, on the calibrated side."""
        pts = np.asarray(points_px, dtype=np.float64).reshape(-1, 2)
        w = pts @ self.image_to_ground[2, :2] + self.image_to_ground[2, 2]
        ref = self._image @ self.image_to_ground[2, :2] + self.image_to_ground[2, 2]
        out: npt.NDArray[np.bool_] = np.sign(w) == np.sign(ref[0])
        return out

    def ground_visible(self, points_m: npt.ArrayLike) -> npt.NDArray[np.bool_]:
        """Which ground points (N, 2) lie in front of the camera (they map into the image)."""
        pts = np.asarray(points_m, dtype=np.float64).reshape(-1, 2)
        w = pts @ self.ground_to_image[2, :2] + self.ground_to_image[2, 2]
        ref = self._ground @ self.ground_to_image[2, :2] + self.ground_to_image[2, 2]
        out: npt.NDArray[np.bool_] = (np.sign(w) == np.sign(ref[0])) & (np.abs(w) > 1e-9)
        return out

    def errors(self) -> CalibrationErrors:
        """Residuals of the calibration points (see :class:`CalibrationErrors`)."""
        img = np.hypot(*(self.to_image(self._ground) - self._image).T)
        gnd = np.hypot(*(self.to_ground(self._image) - self._ground).T)
        return CalibrationErrors(
            image_rms_px=float(np.sqrt(np.mean(img**2))),
            image_max_px=float(img.max()),
            ground_rms_m=float(np.sqrt(np.mean(gnd**2))),
            ground_max_m=float(gnd.max()),
            points=len(self._image),
        )

    def metres_per_px(self, point_px: tuple[float, float]) -> float:
        """Ground metres per image pixel around ``point_px`` (mean of the two axes)."""
        x, y = point_px
        pts = self.to_ground(np.array([[x, y], [x + 1.0, y], [x, y + 1.0]]))
        return float((np.hypot(*(pts[1] - pts[0])) + np.hypot(*(pts[2] - pts[0]))) / 2.0)
