"""Map a model's own class names to :class:`atcs.types.VehicleClass`.

COCO models call them 1 bicycle, 2 car, 3 motorcycle, 5 bus, 7 truck. The mapping goes by
name, not by index, so a model trained on other data with the same vehicle names (or the
common synonyms below) works too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from atcs.errors import DetectorError
from atcs.types import IntArray, VehicleClass

MODEL_NAMES: Mapping[str, VehicleClass] = {
    "car": VehicleClass.CAR,
    "motorcycle": VehicleClass.MOTORCYCLE,
    "motorbike": VehicleClass.MOTORCYCLE,
    "bus": VehicleClass.BUS,
    "truck": VehicleClass.TRUCK,
    "bicycle": VehicleClass.BICYCLE,
}
"""Model class names (lower case, spaces or underscores) that mean a vehicle class."""

NOT_A_VEHICLE = -1


def _normalise(name: str) -> str:
    return name.strip().lower().replace("_", " ")


class ClassMap:
    """Which model classes to keep and the :class:`VehicleClass` each one stands for.

    ``lookup[i]`` is the VehicleClass value of model class ``i`` or ``-1`` when that class
    is not wanted; ``model_ids`` lists the wanted model class indices in ascending order.
    """

    __slots__ = ("lookup", "model_ids")

    def __init__(self, names: Mapping[int, str], wanted: Sequence[VehicleClass]) -> None:
        if not names:
            raise DetectorError("the model has no class names; cannot tell which are vehicles")
        size = max(names) + 1
        lookup = np.full(size, NOT_A_VEHICLE, dtype=np.int64)
        keep = set(wanted)
        for index, name in names.items():
            vehicle = MODEL_NAMES.get(_normalise(name))
            if vehicle is not None and vehicle in keep:
                lookup[index] = int(vehicle)
        if not (lookup >= 0).any():
            wanted_labels = ", ".join(v.label for v in wanted) or "none"
            raise DetectorError(
                f"the model knows none of the wanted vehicle classes ({wanted_labels}); "
                f"its classes start with {', '.join(list(names.values())[:8])}"
            )
        self.lookup: IntArray = lookup
        self.model_ids: tuple[int, ...] = tuple(int(i) for i in np.flatnonzero(lookup >= 0))

    def to_vehicle(self, model_class: IntArray) -> IntArray:
        """VehicleClass values of model class indices (all of which must be wanted)."""
        return self.lookup[model_class]
