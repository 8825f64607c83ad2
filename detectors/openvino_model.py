"""An OpenVINO YOLO export compiled per input shape for pipelined inference.

Why not ultralytics' own OpenVINO path: it compiles the dynamic-shape model in LATENCY mode
and runs one synchronous request at a time, so on a small CPU the cores wait while Python
pre- and post-processes, and dynamic shapes cost extra (shape-generic Concat, Split and
Reorder kernels). Here the model is compiled for each static input shape it meets, in
THROUGHPUT mode (several streams, each on its own cores), with the colour conversion and
scaling built into the graph (a request takes the letterboxed uint8 BGR frame as is), and
the caller keeps several requests in flight.

Exactness: on the CPU, a static shape lets OpenVINO fuse element-wise INT8 operations into
"snippets" kernels whose outputs differ slightly from the dynamic-shape model ultralytics
runs (measured on the shared clips: box counts changed on about half of the frames of a busy
scene). With snippets disabled (``SNIPPETS_MODE=DISABLE``) the static model's outputs are
bit-identical to ultralytics' and it is still about 13 % cheaper per frame than the dynamic
model (measured: 53 vs 47 frames per CPU-second, yolo11n INT8 at 640x384).

On CPUs with Intel AMX (Sapphire Rapids and newer), ultralytics does not run an INT8 export
with dynamic shapes at all (an OpenVINO CPU plugin fault, openvinotoolkit/openvino#37577):
it reshapes the model to the full square input (640x640, no minimum rectangle) and compiles
it as a static model with default options. :func:`ultralytics_runs_static` tells when, and
the runner then does the same, so detections stay equal to the plain loop on every machine.
"""

from __future__ import annotations

import importlib
import logging
import sys
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from atcs.errors import DetectorError

from .model_files import MODEL_HINT, short_error

logger = logging.getLogger(__name__)

DEFAULT_STRIDE = 32
MAX_IDLE_REQUESTS = 8
"""Most finished inference requests kept for reuse per compiled shape."""
MAX_COMPILED_SHAPES = 8
"""Most compiled input shapes kept; the least recently used idle one goes first."""
CPUINFO = Path("/proc/cpuinfo")
"""Where Linux lists the CPU's features (``amx_int8`` among them)."""


def cpu_has_amx_int8(cpuinfo: Path = CPUINFO) -> bool:
    """Tell whether the CPU lists the ``amx_int8`` feature (Linux only)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        return "amx_int8" in cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False


def ultralytics_runs_static(model: Any, device: str, amx_int8: bool) -> bool:
    """Tell whether ultralytics runs this export as a static full-square model (see above).

    True for a dynamic-shape INT8 (FakeQuantize) model on the CPU of a machine with AMX.
    """
    return (
        device == "CPU"
        and amx_int8
        and model.input().get_partial_shape().is_dynamic
        and any(op.get_type_name() == "FakeQuantize" for op in model.get_ops())
    )


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """What the export says about itself.

    ``names``: class index to name. ``stride``: the model stride in pixels.
    ``fixed_input``: (height, width) when the export only takes one size, else None.
    ``fixed_batch``: the batch size when the export only takes one, else None.
    ``end_to_end``: True when the output is already (batch, boxes, 6) with NMS done.
    ``task``: the ultralytics task the export was made for.
    ``square_static``: True when ultralytics would run this dynamic export as a static
    full-square model on this machine (:func:`ultralytics_runs_static`).
    """

    names: dict[int, str]
    stride: int
    fixed_input: tuple[int, int] | None
    fixed_batch: int | None
    end_to_end: bool
    task: str
    square_static: bool = False


@dataclass(slots=True, eq=False)
class Variant:
    """The model compiled for one static input shape, and its inference requests.

    ``shape`` is (batch, height, width) in images and pixels; ``busy`` counts requests
    handed out and not yet given back.
    """

    shape: tuple[int, int, int]
    compiled: Any
    idle: list[Any] = field(default_factory=list)
    busy: int = 0


def _read_metadata(xml: Path) -> dict[str, Any]:
    meta_file = xml.parent / "metadata.yaml"
    if not meta_file.is_file():
        return {}
    yaml = importlib.import_module("yaml")
    try:
        data = yaml.safe_load(meta_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise DetectorError(f"cannot read model metadata {meta_file}: {exc}") from exc
    return data if isinstance(data, dict) else {}


def _names_from(meta: dict[str, Any], model: Any) -> dict[int, str]:
    names = meta.get("names")
    if isinstance(names, dict) and names:
        return {int(k): str(v) for k, v in names.items()}
    if isinstance(names, list) and names:
        return dict(enumerate(str(v) for v in names))
    if model.has_rt_info(["model_info", "labels"]):
        labels = model.get_rt_info(["model_info", "labels"]).astype(str).split()
        return {i: label.replace("_", " ") for i, label in enumerate(labels)}
    return {}


class OpenVinoModel:
    """An OpenVINO IR read once and compiled per input shape on demand (thread-safe)."""

    def __init__(self, xml: Path, device: str, *, max_shapes: int = MAX_COMPILED_SHAPES) -> None:
        try:
            ov = importlib.import_module("openvino")
        except ImportError as exc:
            raise DetectorError(
                f"model {xml.parent.name} is an OpenVINO export but the openvino package "
                f"is not installed (pip install openvino); {MODEL_HINT}"
            ) from exc
        self._ov = ov
        self._core = ov.Core()
        self.xml = xml
        self.device = device
        try:
            self._model = self._core.read_model(
                model=str(xml), weights=str(xml.with_suffix(".bin"))
            )
        except Exception as exc:
            raise DetectorError(
                f"model {xml} could not be read by OpenVINO ({short_error(exc)}); {MODEL_HINT}"
            ) from exc
        self.info = self._inspect()
        self._variants: OrderedDict[tuple[int, int, int], Variant] = OrderedDict()
        self.max_shapes = max(1, max_shapes)
        self._lock = threading.Lock()

    def _inspect(self) -> ModelInfo:
        model = self._model
        if len(model.inputs) != 1 or len(model.outputs) < 1:
            raise DetectorError(
                f"model {self.xml} has {len(model.inputs)} inputs and {len(model.outputs)} "
                "outputs; a YOLO detection export has one input"
            )
        meta = _read_metadata(self.xml)
        task = str(meta.get("task", "detect"))
        if task != "detect":
            raise DetectorError(f"model {self.xml} is a {task!r} model, not a detection model")
        shape = model.input().get_partial_shape()
        channels_ok = len(shape) == 4 and (shape[1].is_dynamic or shape[1].get_length() == 3)
        if shape.rank.is_dynamic or not channels_ok:
            raise DetectorError(f"model {self.xml} input {shape} is not an image batch (N,3,H,W)")
        fixed_input = None
        if shape[2].is_static and shape[3].is_static:
            fixed_input = (shape[2].get_length(), shape[3].get_length())
        fixed_batch = shape[0].get_length() if shape[0].is_static else None
        out = model.output(0).get_partial_shape()
        end_to_end = bool(meta.get("end2end")) or (
            len(out) == 3 and out[2].is_static and out[2].get_length() == 6
        )
        names = _names_from(meta, model)
        stride = meta.get("stride", DEFAULT_STRIDE)
        return ModelInfo(
            names=names,
            stride=int(stride) if isinstance(stride, int | float) else DEFAULT_STRIDE,
            fixed_input=fixed_input,
            fixed_batch=fixed_batch,
            end_to_end=end_to_end,
            task=task,
            square_static=ultralytics_runs_static(model, self.device, cpu_has_amx_int8()),
        )

    def _compile(self, shape: tuple[int, int, int]) -> Any:
        ov = self._ov
        ppp_module = importlib.import_module("openvino.preprocess")
        model = self._model.clone()
        batch, height, width = shape
        reshaped = model.input().get_partial_shape().is_dynamic
        if reshaped:
            model.reshape([batch, 3, height, width])
        ppp = ppp_module.PrePostProcessor(model)
        ppp.input().tensor().set_element_type(ov.Type.u8).set_layout(ov.Layout("NHWC"))
        ppp.input().tensor().set_color_format(ppp_module.ColorFormat.BGR)
        ppp.input().model().set_layout(ov.Layout("NCHW"))
        steps = ppp.input().preprocess()
        steps.convert_element_type(ov.Type.f32)
        steps.convert_color(ppp_module.ColorFormat.RGB)
        steps.scale(255.0)
        ppp.output(0).tensor().set_element_type(ov.Type.f32)
        config: dict[str, Any] = {"PERFORMANCE_HINT": "THROUGHPUT"}
        if reshaped and self.device == "CPU" and not self.info.square_static:
            # ultralytics runs this export with dynamic shapes: match it bit for bit (above);
            # a static export (or one it makes static) it runs with snippets, and so do we
            config["SNIPPETS_MODE"] = "DISABLE"
        try:
            return self._core.compile_model(ppp.build(), self.device, config)
        except Exception as exc:
            raise DetectorError(
                f"OpenVINO could not compile {self.xml.parent.name} for input "
                f"{batch}x{height}x{width} on {self.device}: {short_error(exc)}; {MODEL_HINT}"
            ) from exc

    def variant(self, batch: int, height_px: int, width_px: int) -> Variant:
        """Return the model compiled for this input shape, compiling it on first use."""
        key = (batch, height_px, width_px)
        with self._lock:
            found = self._variants.get(key)
            if found is not None:
                self._variants.move_to_end(key)
                return found
            created = Variant(key, self._compile(key))
            self._variants[key] = created
            for old_key, old in list(self._variants.items()):
                if len(self._variants) <= self.max_shapes:
                    break
                if old.busy == 0 and old is not created:
                    del self._variants[old_key]
        logger.info(
            "compiled %s for %d image(s) of %dx%d px on %s",
            self.xml.parent.name, batch, width_px, height_px, self.device,
        )  # fmt: skip
        return created

    @staticmethod
    def optimal_requests(variant: Variant) -> int:
        """Return how many requests OpenVINO recommends keeping in flight on this device."""
        try:
            value = variant.compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")
            return max(1, int(value))
        except Exception:  # a plugin without the property: one per core is a safe guess
            return 2

    def acquire(self, variant: Variant) -> Any:
        """Take an idle inference request of ``variant`` (a new one when none is idle)."""
        with self._lock:
            variant.busy += 1
            if variant.idle:
                return variant.idle.pop()
        try:
            return variant.compiled.create_infer_request()
        except Exception as exc:
            with self._lock:
                variant.busy -= 1
            raise DetectorError(
                f"OpenVINO could not create an inference request: {short_error(exc)}"
            ) from exc

    def release(self, variant: Variant, request: Any) -> None:
        """Give a finished request back to its variant's idle pool (bounded)."""
        with self._lock:
            variant.busy -= 1
            if len(variant.idle) < MAX_IDLE_REQUESTS:
                variant.idle.append(request)

    def close(self) -> None:
        """Drop every compiled shape and idle request (running ones must be finished)."""
        with self._lock:
            self._variants.clear()
