"""Crop only where it keeps the counts: a per-camera check on the camera's own frames.

Cropping a frame to its segments keeps every pixel inside the window as it was, but the
model (YOLO11's attention block sees the whole input) still finds a little more or a little
less in a smaller input: on the shared clips, confident boxes inside the segments match
one to one, while small far-away vehicles near the confidence threshold can be lost (the
Beijing overpass junction: about 20 % fewer boxes per frame in a 640x352 window than in
the 640x640 whole-frame input this machine uses). So before a camera is cropped, its first
``frames`` analysed frames are detected both ways and the mean number of vehicles per frame
inside its segments compared: the crop is used only when the two agree within
``max(share x whole, per_frame)``. Until then, and when they do not agree, the camera is
detected on whole frames.

Where the whole frame is letterboxed into a square input (INT8 models on CPUs with AMX),
even a window holding the whole image is smaller than the input: it drops the padding. So a
camera whose segments span the image is checked with that window, and a camera whose crop
was refused gets a second check with it (the T-junction truck clip: refused at 512x288,
equal at 640x512, against 640x640 whole).

A verdict is taken on a camera's first frames, whose scene may not be the later one's (the
T-junction truck clip's crop agreed on its first 20 frames and found 18.5 % fewer vehicles
over the whole clip: the lorry came later). So every ``[detector] crop_recheck_s`` seconds
of a camera's footage its verdict is dropped and taken again the same way, from its
segments' window (the camera detected whole meanwhile).

A survey knows how many frames each recording gives. There a check is started only when
the frames after it can repay it (:data:`CHECK_PAYBACK`): a 60-frame clip checked 20
frames both ways at a 640x512 input costs more than the crop saves on the other 40, and a
second check after a refused crop is held to the same rule. A live camera runs on
indefinitely and is always checked.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from atcs.config import AtcsConfig
from atcs.measured_region import MeasuredRegion, camera_regions
from atcs.metrics.geometry import PreparedPolygon, to_pixels
from atcs.types import Detections, Frame, Image
from detectors.base import CroppingDetector, Detector
from detectors.crop import CropWindow, PixelBox

log = logging.getLogger(__name__)

CHECK_FRAMES = 20
"""Frames of a camera detected both ways before its crop is accepted or refused."""
CHECK_SHARE = 0.05
"""Largest difference in mean vehicles per frame inside the segments, share of the whole."""
CHECK_PER_FRAME = 0.2
"""... or this many vehicles per frame, whichever is larger."""
CHECK_PAYBACK = 2.0
"""A check is started only where the crop would save this many times its cost on the frames
after it (a refused check saves nothing); both counted in model-input pixels."""
WHOLE_IMAGE = MeasuredRegion(0.0, 0.0, 1.0, 1.0)
"""The region of the second check after a refused crop: the whole image."""


@dataclass(frozen=True, slots=True)
class CropVerdict:
    """Whether a camera is cropped, and why.

    ``whole_per_frame`` and ``crop_per_frame``: mean vehicles per frame inside the
    segments over the ``frames`` checked, whole frame and cropped; ``input_shape``: the
    crop's model input (height, width) in pixels.
    """

    camera_id: str
    use_crop: bool
    frames: int
    whole_per_frame: float
    crop_per_frame: float
    input_shape: tuple[int, int]

    def describe(self) -> str:
        """One line for the log and the benchmark."""
        h, w = self.input_shape
        shown = f"{self.crop_per_frame:.2f} vs {self.whole_per_frame:.2f} vehicles/frame"
        if self.use_crop:
            return f"cropped to a {w}x{h} input ({shown} in the segments, {self.frames} frames)"
        return f"whole frames: the {w}x{h} crop would change the counts ({shown})"


class CropCheck:
    """Compares whole-frame and cropped detections of one camera inside its segments."""

    def __init__(
        self,
        cfg: AtcsConfig,
        camera_id: str,
        input_shape: tuple[int, int],
        *,
        frames: int = CHECK_FRAMES,
        share: float = CHECK_SHARE,
        per_frame: float = CHECK_PER_FRAME,
    ) -> None:
        self.camera_id = camera_id
        self.input_shape = input_shape
        self.frames_needed = max(1, frames)
        self._share = share
        self._per_frame = per_frame
        self._polygons = [s.polygon for s in cfg.segments_of(camera_id)]
        self._prepared: tuple[tuple[int, int], list[PreparedPolygon]] | None = None
        self._whole = 0
        self._crop = 0
        self._frames = 0

    def _inside(self, found: Detections, width_px: int, height_px: int) -> int:
        if self._prepared is None or self._prepared[0] != (width_px, height_px):
            polys = [PreparedPolygon(to_pixels(p, width_px, height_px)) for p in self._polygons]
            self._prepared = ((width_px, height_px), polys)
        if not len(found):
            return 0
        xyxy = found.xyxy
        anchors = np.stack([(xyxy[:, 0] + xyxy[:, 2]) / 2.0, xyxy[:, 3]], axis=1)
        keep = np.zeros(len(found), dtype=np.bool_)
        for polygon in self._prepared[1]:
            keep |= polygon.contains(anchors)
        return int(np.count_nonzero(keep))

    def add(
        self, whole: Detections, crop: Detections, width_px: int, height_px: int
    ) -> CropVerdict | None:
        """Add one frame detected both ways; the verdict once enough frames were seen."""
        self._whole += self._inside(whole, width_px, height_px)
        self._crop += self._inside(crop, width_px, height_px)
        self._frames += 1
        if self._frames < self.frames_needed:
            return None
        whole_mean = self._whole / self._frames
        crop_mean = self._crop / self._frames
        allowed = max(self._share * whole_mean, self._per_frame)
        verdict = CropVerdict(
            camera_id=self.camera_id,
            use_crop=abs(crop_mean - whole_mean) <= allowed,
            frames=self._frames,
            whole_per_frame=whole_mean,
            crop_per_frame=crop_mean,
            input_shape=self.input_shape,
        )
        log.info("camera=%s %s", self.camera_id, verdict.describe())
        return verdict


class CameraCrops:
    """Which frames are cropped: each camera's region, its check and its verdict.

    Built from ``[detector] crop`` and the cameras' segments and lines; a camera whose
    ``[cameras.detection] mode`` is not ``crop``, a camera without a region, or whose window
    would not be clearly smaller than the whole-frame input, is never cropped and needs no
    check. ``frames_expected``: how many frames each camera will be detected in all (a
    survey of a recording), so that a check that cannot repay itself is not started; None
    (live, or not known) checks every camera. Bounded: one entry per configured camera.
    """

    def __init__(
        self,
        cfg: AtcsConfig,
        detector: Detector,
        *,
        frames: int = CHECK_FRAMES,
        frames_expected: int | None = None,
    ) -> None:
        self._cfg = cfg
        self._detector = detector if isinstance(detector, CroppingDetector) else None
        enabled = cfg.detector.crop and self._detector is not None
        regions = camera_regions(cfg) if enabled else {}
        self._regions: dict[str, MeasuredRegion] = {
            camera: region
            for camera, region in regions.items()
            if cfg.camera(camera).detection.mode == "crop"
        }
        self._first_regions = dict(self._regions)
        self._recheck_s = cfg.detector.crop_recheck_s
        self._frames = frames
        self._expected = frames_expected
        self._seen: dict[str, int] = {}
        self._checks: dict[str, CropCheck] = {}
        self._decided_s: dict[str, float] = {}
        self.verdicts: dict[str, CropVerdict] = {}

    @property
    def checking(self) -> bool:
        """True while some camera's crop check is still running."""
        return bool(self._checks)

    def region(self, frame: Frame) -> PixelBox | None:
        """Return the region ``frame`` is detected in: its camera's, once its crop is accepted."""
        verdict = self.verdicts.get(frame.camera_id)
        if verdict is None or not verdict.use_crop:
            return None
        return self._regions[frame.camera_id].of_frame(frame)

    def to_check(self, frame: Frame) -> PixelBox | None:
        """Return the region to detect ``frame`` in again for its camera's check, or None."""
        if frame.camera_id in self._first_regions:
            self._seen[frame.camera_id] = self._seen.get(frame.camera_id, 0) + 1
        self._recheck_when_due(frame)
        region = self._regions.get(frame.camera_id)
        if region is None or frame.camera_id in self.verdicts or self._detector is None:
            return None
        box = region.of_frame(frame)
        placement = self._detector.placement(frame.height_px, frame.width_px, box)
        if not isinstance(placement, CropWindow) or not (
            frame.camera_id in self._checks or self._repays(frame.camera_id, placement)
        ):
            del self._regions[frame.camera_id]  # nothing to cut, or too few frames: no check
            return None
        if frame.camera_id not in self._checks:
            self._checks[frame.camera_id] = CropCheck(
                self._cfg, frame.camera_id, placement.input_shape, frames=self._frames
            )
        return box

    def jobs(self, frame: Frame) -> Iterator[CropJob]:
        """Yield the detections to run for ``frame``.

        The frame itself (in its accepted crop, or whole), then, while its camera's check
        runs, the frame again in the crop. Streamed through the detector with the other
        frames (see :func:`checked`), the check's second detection keeps the requests in
        flight instead of stopping the stream for a separate call.
        """
        yield CropJob(frame, self.region(frame), False)
        box = self.to_check(frame)
        if box is not None:
            yield CropJob(frame, box, True)

    def check(self, frame: Frame, whole: Detections, crop: Detections, region: PixelBox) -> None:
        """Add a frame detected whole and cropped (in ``region``) to its camera's check.

        A refused crop is followed by a check of the whole image's window when that is a
        different, still smaller input (see the module docstring). A late result detected
        in a window the camera no longer checks (the one before that switch) is ignored.
        """
        check = self._checks.get(frame.camera_id)
        region_now = self._regions.get(frame.camera_id)
        if check is None or region_now is None or region_now.of_frame(frame) != region:
            return
        verdict = check.add(whole, crop, frame.width_px, frame.height_px)
        if verdict is None:
            return
        del self._checks[frame.camera_id]
        if not verdict.use_crop and self._whole_image_next(frame, verdict):
            log.info("camera=%s next: the whole image, without padding", frame.camera_id)
            self._regions[frame.camera_id] = WHOLE_IMAGE
            return
        self.verdicts[frame.camera_id] = verdict
        # capture time, not the offset in a file: a looped file starts again at 0
        self._decided_s[frame.camera_id] = frame.captured_at.timestamp()

    def _recheck_when_due(self, frame: Frame) -> None:
        """Drop the camera's verdict ``crop_recheck_s`` after it was taken: checked anew."""
        camera = frame.camera_id
        decided = self._decided_s.get(camera)
        if self._recheck_s <= 0 or decided is None:
            return
        age_s = frame.captured_at.timestamp() - decided
        if age_s < self._recheck_s or self._detector is None:
            return
        first = self._first_regions[camera]
        window = self._detector.placement(frame.height_px, frame.width_px, first.of_frame(frame))
        if not isinstance(window, CropWindow) or not self._repays(camera, window, quiet=True):
            del self._decided_s[camera]  # too few frames left to repay it: the verdict stays
            return
        del self.verdicts[camera], self._decided_s[camera]
        self._regions[camera] = first
        log.info("camera=%s crop checked again (verdict %.0f s old)", camera, age_s)

    def _whole_image_next(self, frame: Frame, refused: CropVerdict) -> bool:
        """Tell whether the whole image's window is a new candidate after ``refused``."""
        if self._detector is None or self._regions.get(frame.camera_id) == WHOLE_IMAGE:
            return False
        box = WHOLE_IMAGE.of_frame(frame)
        placement = self._detector.placement(frame.height_px, frame.width_px, box)
        return (
            isinstance(placement, CropWindow)
            and placement.input_shape != refused.input_shape
            and self._repays(frame.camera_id, placement, after=1)
        )

    def _repays(
        self, camera_id: str, window: CropWindow, *, after: int = 0, quiet: bool = False
    ) -> bool:
        """Tell whether a check of ``window`` can repay itself (:data:`CHECK_PAYBACK`).

        The check detects ``frames`` frames again in the window (its cost, in whole-frame
        inputs: frames x the window's area share); the frames after it save 1 - share each
        if the crop is accepted. ``after``: frames already seen before the check would
        start (1 when it starts with the next frame). ``quiet``: no log line when it cannot.
        """
        if self._expected is None:
            return True
        left = self._expected - self._seen.get(camera_id, 0) + 1 - after
        saving = (left - self._frames) * (1.0 - window.area_share)
        cost = self._frames * window.area_share
        repays = saving >= CHECK_PAYBACK * cost
        if not repays and not quiet:
            log.info(
                "camera=%s whole frames: %d frames left cannot repay a %d-frame check at %dx%d",
                camera_id, left, self._frames, window.width_px, window.height_px,
            )  # fmt: skip
        return repays


@dataclass(frozen=True, slots=True)
class CropJob:
    """One detection to run.

    A frame, the region it is detected in (None: whole), and whether it is the cropped
    second detection of its camera's crop check.
    """

    frame: Frame
    region: PixelBox | None
    check: bool


def job_image(job: CropJob) -> Image:
    """Return the image of ``job`` (for ``Detector.detect_stream``)."""
    return job.frame.image


def job_region(job: CropJob) -> PixelBox | None:
    """Return the region of ``job`` (for ``Detector.detect_stream``)."""
    return job.region


def checked(
    results: Iterable[tuple[CropJob, Detections]], crops: CameraCrops
) -> Iterator[tuple[Frame, Detections]]:
    """Yield each frame's own detections from streamed :meth:`CameraCrops.jobs`.

    Each check's second detection goes to ``crops`` with the frame's own, just before it.
    """
    whole: Detections | None = None
    for job, found in results:
        if job.check:
            if whole is not None and job.region is not None:
                crops.check(job.frame, whole, found, job.region)
            continue
        whole = found
        yield job.frame, found
