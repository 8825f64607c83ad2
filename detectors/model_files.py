"""Find out what a model setting names: an OpenVINO export, another weights file, or a name.

``detector.model`` in config (or ``ATCS_MODEL``) is either a path to weights / an exported
model folder, or a bare model name such as ``yolo11n.pt`` that ultralytics downloads when
online. Paths are checked here, before any library is imported, so that a typo or an empty
folder gives one clear :class:`DetectorError` instead of a library traceback.
"""

from __future__ import annotations

import enum
import os
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from atcs.errors import DetectorError

MODEL_HINT = (
    "set ATCS_MODEL (or detector.model in the config) to a local model: a .pt weights file "
    "or an exported folder such as yolo11n_int8_openvino_model/"
)
"""How to point the engine at a local model; ends every model error message."""

_OTHER_EXPORT_MARKERS = (
    "*.param",  # NCNN
    "saved_model.pb",  # TensorFlow SavedModel
    "*.mnn",
    "*.rknn",
    "*.pdmodel",
    "*.json",  # PaddlePaddle inference
    "*.onnx",
    "*.engine",
    "*.mlpackage",
    "*.tflite",
)


class ModelKind(enum.Enum):
    """What a model setting refers to."""

    OPENVINO = "openvino"
    """An OpenVINO IR (``.xml`` + ``.bin``), given as the file or its folder."""
    FILE = "file"
    """Another local weights file or export folder that ultralytics loads."""
    NAME = "name"
    """A bare model name ultralytics resolves (its weights folder, or a download)."""


@dataclass(frozen=True, slots=True)
class ModelSource:
    """A checked model setting: the text as given, its kind, and its path when local.

    For :attr:`ModelKind.OPENVINO` ``path`` is the ``.xml`` file.
    """

    spec: str
    kind: ModelKind
    path: Path | None

    @property
    def display_name(self) -> str:
        """Short name for logs: the folder or file name, or the model name."""
        if self.path is None:
            return self.spec
        if self.kind is ModelKind.OPENVINO:
            return self.path.parent.name
        return self.path.name


def short_error(exc: BaseException) -> str:
    """One readable line from a library exception (no emoji, no C++ source locations)."""
    text = "".join(
        ch for ch in str(exc) if unicodedata.category(ch)[0] not in {"S", "M"} or ch in "'-"
    )
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    useful = [line for line in lines if not line.startswith(("Exception from", "Check '"))]
    line = (useful or lines or [type(exc).__name__])[0]
    line = line.removeprefix("ERROR").strip().rstrip(".")
    return line or type(exc).__name__


def _looks_like_path(spec: str) -> bool:
    return (
        os.sep in spec
        or "/" in spec
        or spec.startswith(("~", "."))
        or (os.altsep is not None and os.altsep in spec)
    )


def _openvino_xml(folder: Path) -> Path | None:
    xmls = sorted(p for p in folder.glob("*.xml") if p.is_file())
    with_weights = [p for p in xmls if p.with_suffix(".bin").is_file()]
    if with_weights:
        return with_weights[0]
    if xmls:
        raise DetectorError(
            f"model folder {folder} holds {xmls[0].name} but not its weights "
            f"{xmls[0].with_suffix('.bin').name}; {MODEL_HINT}"
        )
    return None


def _check_readable(path: Path) -> None:
    if not os.access(path, os.R_OK):
        raise DetectorError(f"model {path} cannot be read (permission denied); {MODEL_HINT}")
    if path.is_file() and path.stat().st_size == 0:
        raise DetectorError(f"model file {path} is empty; {MODEL_HINT}")


def resolve_model(spec: str) -> ModelSource:
    """Check a model setting and say what it is; raise :class:`DetectorError` if unusable.

    A path that does not exist, an unreadable or empty file and a folder without a model
    are errors here; whether a file really holds a model is found out when it is loaded.
    """
    text = spec.strip()
    if not text:
        raise DetectorError(f"no detector model is set; {MODEL_HINT}")
    path = Path(text).expanduser()
    if path.is_dir():
        _check_readable(path)
        xml = _openvino_xml(path)
        if xml is not None:
            _check_readable(xml)
            _check_readable(xml.with_suffix(".bin"))
            return ModelSource(text, ModelKind.OPENVINO, xml.resolve())
        if any(any(path.glob(marker)) for marker in _OTHER_EXPORT_MARKERS):
            return ModelSource(text, ModelKind.FILE, path.resolve())
        raise DetectorError(
            f"model folder {path} holds no model (expected an OpenVINO export: "
            f"a .xml file with its .bin weights); {MODEL_HINT}"
        )
    if path.is_file():
        _check_readable(path)
        if path.suffix.lower() == ".xml":
            if not path.with_suffix(".bin").is_file():
                raise DetectorError(
                    f"OpenVINO model {path} has no weights file {path.with_suffix('.bin').name} "
                    f"beside it; {MODEL_HINT}"
                )
            return ModelSource(text, ModelKind.OPENVINO, path.resolve())
        return ModelSource(text, ModelKind.FILE, path.resolve())
    if path.exists():
        raise DetectorError(f"model {path} is neither a file nor a folder; {MODEL_HINT}")
    if _looks_like_path(text):
        raise DetectorError(f"model {path} not found; {MODEL_HINT}")
    return ModelSource(text, ModelKind.NAME, None)
