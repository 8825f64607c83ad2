"""Starting Eclipse SUMO: the binary, the command line, and libsumo or TraCI.

libsumo (SUMO in-process, PyPI ``libsumo``) is used when installed, being several times
faster than TraCI over a socket; set ``ATCS_SUMO_TRACI=1`` to force TraCI. Both expose the
same API, so the runner talks to whichever module :func:`start_sumo` returns.
"""

from __future__ import annotations

import importlib
import logging
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from atcs.errors import SimulationError

log = logging.getLogger(__name__)

FORCE_TRACI_ENV = "ATCS_SUMO_TRACI"


def sumo_binary() -> str:
    """Path of the ``sumo`` command-line binary (the ``eclipse-sumo`` wheel's, or PATH's)."""
    try:
        sumo = importlib.import_module("sumo")
        home = Path(str(sumo.SUMO_HOME))
        os.environ.setdefault("SUMO_HOME", str(home))
        candidate = home / "bin" / "sumo"
        if candidate.is_file():
            return str(candidate)
    except ImportError:
        pass
    found = shutil.which("sumo")
    if found is None:
        raise SimulationError(
            "Eclipse SUMO is not installed: pip install 'atcs[sim]' (eclipse-sumo)"
        )
    return found


def _backend() -> ModuleType:
    if os.environ.get(FORCE_TRACI_ENV, "") not in ("", "0"):
        return importlib.import_module("traci")
    try:
        return importlib.import_module("libsumo")
    except ImportError:
        try:
            return importlib.import_module("traci")
        except ImportError as exc:
            raise SimulationError("neither libsumo nor traci is installed") from exc


def in_process_backend() -> bool:
    """Tell whether simulations run inside this process (libsumo) rather than over TraCI."""
    return _backend().__name__ == "libsumo"


def start_sumo(args: Sequence[str]) -> ModuleType:
    """Start SUMO with ``args`` (without the binary); return the libsumo/traci module.

    Only one simulation runs at a time (a libsumo restriction); call ``close()`` on the
    returned module when done.
    """
    module = _backend()
    cmd = [sumo_binary(), *args]
    log.debug("starting SUMO with %s: %s", module.__name__, " ".join(cmd))
    try:
        if module.__name__ == "traci":
            module.start(cmd, label=f"atcs-{os.getpid()}")
        else:
            module.start(cmd)
    except Exception as exc:  # libsumo and traci raise their own exception types
        raise SimulationError(f"SUMO did not start: {exc}") from exc
    return module


def constants() -> ModuleType:
    """Return the TraCI constants module (variable ids for subscriptions)."""
    try:
        return importlib.import_module("traci.constants")
    except ImportError as exc:  # pragma: no cover - traci comes with eclipse-sumo
        raise SimulationError("traci is missing; install 'atcs[sim]'") from exc
