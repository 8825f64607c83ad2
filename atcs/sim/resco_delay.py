"""The mean delay as RESCO's published code computes it (for comparison with its figures).

RESCO (``resco_benchmark/utils/readXML.py``) sums time loss plus departure delay over the
``tripinfo`` entries (unfinished trips included), as the engine does, but does not ask
SUMO which vehicles never entered: it takes the entry with the latest actual departure
(the first such entry), and charges every top-level ``<vehicle>`` of the route file
scheduled strictly after that vehicle's scheduled departure with the end of the run minus
its scheduled departure. Where an entry is blocked and its vehicles enter late, that
charges vehicles that did enter a second time; ``<trip>`` elements are never charged.
The engine's own ``mean_delay_s`` charges the vehicles SUMO still holds, once each.
Times in seconds.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path


def never_entered_charge(
    route_files: Sequence[Path], after_s: float, end_s: float
) -> tuple[int, float] | None:
    """Return RESCO's count and total delay (s) of vehicles "never departed".

    ``after_s`` is the scheduled departure of the vehicle that entered last, ``end_s`` the
    end of the run. None when a route file cannot be read or a ``<vehicle>`` has no
    numeric departure (RESCO's code fails there too).
    """
    count, total = 0, 0.0
    try:
        for path in route_files:
            root = ET.parse(path).getroot()  # noqa: S314 - the scenario's own route file
            for child in root:
                if child.tag != "vehicle":
                    continue
                depart = float(child.attrib["depart"])
                if depart > after_s:
                    count += 1
                    total += end_s - depart
    except (OSError, ET.ParseError, KeyError, ValueError):
        return None
    return count, total
