"""Ground calibration: the homography on a known camera and grid, exact values."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from atcs.config import AtcsConfig
from atcs.errors import DataError
from atcs.homography import GroundHomography, fit_homography

# A pinhole camera 8 m above the road, looking along the road (+y) tilted 45 degrees down,
# focal length 800 px, principal point at the centre of a 960 x 540 image. Its optical
# axis meets the road 8 m ahead (8 / tan 45°), at the image centre.
F, CX, CY, HEIGHT_M, TILT = 800.0, 480.0, 270.0, 8.0, math.radians(45.0)


def project(ground: np.ndarray) -> np.ndarray:
    """Image points (N, 2) of ground points (N, 2) [across, along] seen by the camera."""
    x, y = ground[:, 0], ground[:, 1]
    # camera frame: x right, y down, z forward; ground point relative to the camera
    depth = y * math.cos(TILT) + HEIGHT_M * math.sin(TILT)
    down = -y * math.sin(TILT) + HEIGHT_M * math.cos(TILT)
    return np.stack([CX + F * x / depth, CY + F * down / depth], axis=1)


GRID = np.array([[x, y] for x in (-4.0, 0.0, 4.0) for y in (4.0, 8.0, 16.0, 32.0)])


def test_four_grid_corners_fix_the_whole_grid() -> None:
    corners = np.array([[-4.0, 4.0], [4.0, 4.0], [4.0, 32.0], [-4.0, 32.0]])
    h = GroundHomography(project(corners), corners)
    assert h.to_ground(project(GRID)) == pytest.approx(GRID, abs=1e-9)
    assert h.to_image(GRID) == pytest.approx(project(GRID), abs=1e-7)
    # the optical axis: the image centre is the road point 8 m straight ahead
    assert h.to_ground(np.array([[CX, CY]]))[0] == pytest.approx([0.0, 8.0], abs=1e-9)
    # 1 m across the road at 8 m ahead: f / distance along the axis = 800 / (8 * sqrt 2) px
    assert h.metres_per_px((CX, CY)) == pytest.approx(
        (8.0 * math.sqrt(2) / F + 2.0 * 8.0 / F) / 2.0, rel=1e-3
    )
    err = h.errors()
    assert err.points == 4
    assert err.image_rms_px == pytest.approx(0.0, abs=1e-9)
    assert err.ground_max_m == pytest.approx(0.0, abs=1e-9)


def test_more_points_are_fitted_and_their_error_reported() -> None:
    image = project(GRID)
    exact = GroundHomography(image, GRID).errors()
    assert exact.image_max_px == pytest.approx(0.0, abs=1e-7)
    shifted = image.copy()
    shifted[5] += (3.0, 4.0)  # one point clicked 5 px off
    err = GroundHomography(shifted, GRID).errors()
    assert 0.5 < err.image_rms_px < 5.0
    assert err.image_max_px > err.image_rms_px
    assert err.ground_max_m > 0.01


def test_points_above_the_horizon_are_not_on_the_ground() -> None:
    h = GroundHomography(project(GRID), GRID)
    # the horizon of a camera tilted 45° lies f * tan 45° = 800 px above the centre
    assert h.on_ground_side(np.array([[CX, CY], [CX, CY - 700.0], [CX, CY - 900.0]])).tolist() == [
        True,
        True,
        False,
    ]
    assert h.ground_visible(np.array([[0.0, 10.0], [0.0, -20.0]])).tolist() == [True, False]


@pytest.mark.parametrize(
    ("image", "ground", "match"),
    [
        ([[0, 0], [1, 1], [2, 2], [3, 0]], [[0, 0], [1, 0], [2, 0], [0, 1]], "degenerate"),
        ([[0, 0], [1, 0], [0, 1]], [[0, 0], [1, 0], [0, 1]], "at least 4"),
        ([[0, 0], [1, 0], [0, 1], [1, 1]], [[0, 0], [1, 0], [0, 1]], r"\(N, 2\)"),
        ([[0, 0], [1, 0], [0, 1], [1, math.nan]], [[0, 0], [1, 0], [0, 1], [1, 1]], "finite"),
    ],
)
def test_bad_points_are_refused(image: Any, ground: Any, match: str) -> None:
    with pytest.raises(DataError, match=match):
        fit_homography(image, ground)


def _config(calibration: dict[str, Any]) -> dict[str, Any]:
    return {
        "site": {"id": "s"},
        "cameras": [{"id": "cam", "source": "clip.mp4"}],
        "calibrations": [calibration],
    }


def test_config_refuses_a_calibration_that_cannot_be_fitted() -> None:
    good = {
        "camera": "cam",
        "image_points": [[0.1, 0.9], [0.9, 0.9], [0.6, 0.4], [0.4, 0.4]],
        "ground_points_m": [[0, 0], [7, 0], [7, 30], [0, 30]],
    }
    assert AtcsConfig.model_validate(_config(good)).calibration_of("cam") is not None
    mismatched = {**good, "ground_points_m": [[0, 0], [7, 0], [7, 30], [0, 30], [1, 1]]}
    collinear = {**good, "image_points": [[0.1, 0.1], [0.2, 0.2], [0.3, 0.3], [0.9, 0.1]]}
    unknown = {**good, "camera": "nope"}
    for bad, text in (
        (mismatched, "give each image point its ground position"),
        (collinear, "degenerate"),
        (unknown, "unknown camera 'nope'"),
    ):
        with pytest.raises(ValueError, match=text):
            AtcsConfig.model_validate(_config(bad))
