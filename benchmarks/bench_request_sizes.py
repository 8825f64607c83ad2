"""CPU per image of the compiled model alone, per input size and images per request.

The model is compiled exactly as the live detector compiles it (:mod:`detectors.openvino_model`:
static shape, colour conversion in the graph, THROUGHPUT hint), and three requests are kept
in flight, as the detector does on a 2-core machine. Printed per shape: process CPU time and
wall time per image (ms). No letterboxing, no decoding of boxes: what is left is what the
model itself costs, the floor under the live engine's inference stage.

    python -m benchmarks.bench_request_sizes
    python -m benchmarks.bench_request_sizes --shapes 1x352x640,4x352x640 --images 240
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np

from benchmarks.common import DEFAULT_MODEL
from detectors.model_files import resolve_model
from detectors.openvino_model import OpenVinoModel

DEFAULT_SHAPES = "1x352x640,2x352x640,4x352x640,1x384x640,4x384x640,1x640x640,2x640x640,4x640x640"
IN_FLIGHT = 3


def cpu_s() -> float:
    """CPU seconds of this process so far, all threads."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(model: OpenVinoModel, shape: tuple[int, int, int], images: int) -> tuple[float, float]:
    """Return (CPU ms, wall ms) per image for ``images`` images in requests of ``shape``."""
    batch, height, width = shape
    variant = model.variant(batch, height, width)
    requests = [model.acquire(variant) for _ in range(IN_FLIGHT)]
    pixels = np.random.default_rng(0).integers(0, 256, (batch, height, width, 3), dtype=np.uint8)
    for request in requests:
        request.get_input_tensor(0).data[...] = pixels
    for request in requests:  # warm-up
        request.start_async()
    for request in requests:
        request.wait()
    runs = max(2 * IN_FLIGHT, images // batch)
    cpu0, wall0 = cpu_s(), time.perf_counter()
    for k in range(runs):
        request = requests[k % IN_FLIGHT]
        request.wait()
        request.start_async()
    for request in requests:
        request.wait()
    cpu1, wall1 = cpu_s(), time.perf_counter()
    for request in requests:
        model.release(variant, request)
    done = runs * batch
    return 1000 * (cpu1 - cpu0) / done, 1000 * (wall1 - wall0) / done


def main(argv: list[str] | None = None) -> None:
    """Parse the options and print one line per shape."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--model", default=DEFAULT_MODEL, help="OpenVINO export (folder or .xml)")
    parser.add_argument("--shapes", default=DEFAULT_SHAPES, help="IMAGESxHEIGHTxWIDTH, ...")
    parser.add_argument("--images", type=int, default=120, help="images per shape")
    args = parser.parse_args(argv)
    source = resolve_model(args.model)
    if source.path is None:
        raise SystemExit(f"{args.model} is not an OpenVINO export")
    model = OpenVinoModel(source.path, "CPU", max_shapes=64)
    print("shape (images x h x w)   CPU ms/image   wall ms/image", flush=True)
    for text in args.shapes.split(","):
        b, h, w = (int(v) for v in text.lower().split("x"))
        cpu_ms, wall_ms = measure(model, (b, h, w), args.images)
        print(f"{text:24s} {cpu_ms:13.2f} {wall_ms:15.2f}", flush=True)
    model.close()


if __name__ == "__main__":
    main()
