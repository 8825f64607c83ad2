"""Which SUMO scenario to run: a RESCO network by name, the demo intersection, or a .sumocfg.

A :class:`Scenario` names the network, route and additional files and the simulated time
span (``begin_s`` to ``end_s``, SUMO seconds). Resolving reads only the small ``.sumocfg``
XML file; nothing is simulated here.
"""

from __future__ import annotations

import importlib.util
import tempfile
import tomllib
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from atcs.errors import SimulationError

RESCO_NAMES: tuple[str, ...] = (
    "cologne1",
    "cologne3",
    "cologne8",
    "ingolstadt1",
    "ingolstadt7",
    "ingolstadt21",
    "grid4x4",
    "arterial4x4",
)
"""The RESCO benchmark networks shipped in the ``sumo-rl`` package."""

RESTORED_NAME = "ingolstadt7-restored"
"""sumo-rl's ingolstadt7 with the green phase its ``.net.xml`` comments out put back."""

COMMENTED_PHASE = '<!-- <phase duration="25" state="rrrrrrGGGGrr"/> -->'
"""The phase of light ``cluster_306484187_...`` that sumo-rl's ingolstadt7 comments out."""

DEMO_NAME = "demo"
"""The project's own demo intersection, ``seeds/sumo/demo.sumocfg``."""

_REPO_DIR = Path(__file__).resolve().parents[2]
DEMO_SUMOCFG = _REPO_DIR / "seeds" / "sumo" / "demo.sumocfg"


@dataclass(frozen=True, slots=True)
class Scenario:
    """A SUMO scenario: its files and the simulated span in SUMO seconds.

    ``begin_s`` and ``end_s`` come from the ``.sumocfg`` ``<time>`` section (RESCO:
    one hour, for instance 25200 to 28800 s on the Cologne networks). ``overrides`` are
    :class:`~atcs.sim.specs.SpecOptions` values read from ``<name>.atcs.toml`` beside the
    ``.sumocfg`` (site calibration, such as a measured saturation flow).
    """

    name: str
    sumocfg: Path
    net_file: Path
    route_files: tuple[Path, ...]
    additional_files: tuple[Path, ...]
    begin_s: float
    end_s: float
    overrides: Mapping[str, float] = field(default_factory=dict)

    @property
    def duration_s(self) -> float:
        """Simulated seconds from begin to end."""
        return self.end_s - self.begin_s


def known_scenarios() -> tuple[str, ...]:
    """Scenario names accepted besides a path to a ``.sumocfg`` file."""
    return (DEMO_NAME, *RESCO_NAMES, RESTORED_NAME)


def resco_dir() -> Path:
    """Folder of the RESCO networks inside the installed ``sumo-rl`` package."""
    spec = importlib.util.find_spec("sumo_rl")
    if spec is None or not spec.submodule_search_locations:
        raise SimulationError(
            "the RESCO networks come with the 'sumo-rl' package; install it "
            "(pip install 'atcs[sim]')"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "nets" / "RESCO"


def restored_ingolstadt7(work_dir: Path) -> Scenario:
    """sumo-rl's ingolstadt7 with its commented-out phase restored, in a copy under ``work_dir``.

    The package's files are never changed: the network is copied to
    ``work_dir/ingolstadt7-restored/ingolstadt7.net.xml`` with the phase uncommented.
    """
    original = resolve_scenario("ingolstadt7")
    text = original.net_file.read_text(encoding="utf-8")
    if COMMENTED_PHASE not in text:
        raise SimulationError(
            f"{original.net_file} no longer has the commented-out phase; nothing to restore"
        )
    folder = work_dir / RESTORED_NAME
    folder.mkdir(parents=True, exist_ok=True)
    net = folder / original.net_file.name
    restored = COMMENTED_PHASE.removeprefix("<!-- ").removesuffix(" -->")
    net.write_text(text.replace(COMMENTED_PHASE, restored), encoding="utf-8")
    return replace(original, name=RESTORED_NAME, net_file=net)


def resolve_scenario(name_or_path: str, work_dir: Path | None = None) -> Scenario:
    """Return the scenario called ``name_or_path`` or stored at that ``.sumocfg`` path.

    ``work_dir`` receives generated files (the restored ingolstadt7; default: a folder
    in the system's temporary directory). Raises :class:`SimulationError` naming the
    known scenarios when neither matches.
    """
    if name_or_path == RESTORED_NAME:
        base = work_dir if work_dir is not None else Path(tempfile.gettempdir()) / "atcs-sim"
        return restored_ingolstadt7(base)
    if name_or_path == DEMO_NAME:
        return read_sumocfg(DEMO_SUMOCFG, name=DEMO_NAME)
    if name_or_path in RESCO_NAMES:
        path = resco_dir() / name_or_path / f"{name_or_path}.sumocfg"
        return read_sumocfg(path, name=name_or_path)
    path = Path(name_or_path)
    if path.suffix == ".sumocfg" and path.is_file():
        return read_sumocfg(path, name=path.stem)
    known = ", ".join(known_scenarios())
    raise SimulationError(
        f"unknown scenario {name_or_path!r}: give one of {known} or the path to a .sumocfg file"
    )


def _option(root: ET.Element, section: str, key: str) -> str | None:
    node = root.find(f"{section}/{key}")
    if node is None:
        node = root.find(f".//{key}")
    return None if node is None else node.get("value")


def _files(base: Path, value: str | None) -> tuple[Path, ...]:
    if not value:
        return ()
    parts = value.replace(",", " ").split()
    return tuple((base / p).resolve() for p in parts)


def _overrides(sumocfg: Path, name: str) -> dict[str, float]:
    """Numbers from ``<stem>.atcs.toml`` beside ``sumocfg`` (empty when there is none)."""
    side = sumocfg.with_name(f"{sumocfg.stem}.atcs.toml")
    if not side.is_file():
        return {}
    try:
        doc = tomllib.loads(side.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise SimulationError(f"scenario {name!r}: {side} is not valid TOML: {exc}") from exc
    bad = [k for k, v in doc.items() if not isinstance(v, int | float) or isinstance(v, bool)]
    if bad:
        raise SimulationError(f"scenario {name!r}: {side}: {', '.join(bad)} must be numbers")
    return {k: float(v) for k, v in doc.items()}


def read_sumocfg(path: Path, name: str) -> Scenario:
    """Read the files and the time span named in the SUMO configuration at ``path``."""
    if not path.is_file():
        raise SimulationError(f"scenario {name!r}: no SUMO configuration at {path}")
    try:
        root = ET.parse(path).getroot()  # noqa: S314 - a local, trusted SUMO file
    except ET.ParseError as exc:
        raise SimulationError(f"scenario {name!r}: {path} is not valid XML: {exc}") from exc
    base = path.parent
    nets = _files(base, _option(root, "input", "net-file"))
    if len(nets) != 1:
        raise SimulationError(f"scenario {name!r}: {path} must name exactly one net-file")
    begin = _option(root, "time", "begin")
    end = _option(root, "time", "end")
    try:
        begin_s = float(begin) if begin is not None else 0.0
        end_s = float(end) if end is not None else begin_s + 3600.0
    except ValueError as exc:
        raise SimulationError(f"scenario {name!r}: bad <time> in {path}: {exc}") from exc
    if end_s <= begin_s:
        raise SimulationError(f"scenario {name!r}: end {end_s:g} s is not after begin {begin_s:g}")
    missing = [
        p for p in (*nets, *_files(base, _option(root, "input", "route-files"))) if not p.is_file()
    ]
    if missing:
        raise SimulationError(f"scenario {name!r}: missing file(s) {', '.join(map(str, missing))}")
    return Scenario(
        overrides=_overrides(path, name),
        name=name,
        sumocfg=path.resolve(),
        net_file=nets[0],
        route_files=_files(base, _option(root, "input", "route-files")),
        additional_files=_files(base, _option(root, "input", "additional-files")),
        begin_s=begin_s,
        end_s=end_s,
    )
