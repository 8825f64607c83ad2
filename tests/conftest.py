"""Shared fixtures: where the shared clips and model live, and the real servers.

``ATCS_SHARED_DIR`` points at the shared folder (default: ``../shared`` beside the repo);
``ATCS_MODEL`` overrides the detector model (default: the offline OpenVINO YOLO11n there).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_DIR = Path(__file__).resolve().parents[1]
SHARED_DIR = Path(os.environ.get("ATCS_SHARED_DIR", REPO_DIR.parent / "shared")).resolve()
MEDIA_DIR = Path(os.environ.get("ATCS_MEDIA_DIR", SHARED_DIR / "media")).resolve()
MODEL_PATH = os.environ.get(
    "ATCS_MODEL", str(SHARED_DIR / "models" / "yolo11n_int8_openvino_model")
)

os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_AUTOINSTALL", "False")
os.environ.setdefault("YOLO_VERBOSE", "False")
os.environ["ATCS_MEDIA_DIR"] = str(MEDIA_DIR)
os.environ["ATCS_MODEL"] = MODEL_PATH

pytest_plugins = ["tests.support.mosquitto", "tests.support.influxdb", "tests.support.buses"]


@pytest.fixture(scope="session")
def repo_dir() -> Path:
    """The repository root."""
    return REPO_DIR


@pytest.fixture(scope="session")
def media_dir() -> Path:
    """Folder of the shared real traffic clips."""
    if not MEDIA_DIR.is_dir():
        pytest.fail(f"shared clips not found at {MEDIA_DIR}; set ATCS_SHARED_DIR")
    return MEDIA_DIR


@pytest.fixture(scope="session")
def model_path() -> str:
    """Detector model for tests: the offline OpenVINO YOLO11n unless ATCS_MODEL says else."""
    return MODEL_PATH
