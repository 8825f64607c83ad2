"""Generate the demo intersection's SUMO scenario in ``seeds/sumo/`` (run once; output is kept).

"Simpang Demo" is a four-arm signalised junction laid out like many Indonesian ones:
left-hand traffic, two lanes each way, split phasing (each approach gets its own phase,
25 s green, 3 s yellow, 2 s all-red) and motorcycle-dominated demand that shifts from the
north-south axis to the east-west axis during the hour. Usage::

    .venv/bin/python scripts/make_demo_sumo.py
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "seeds" / "sumo"
ARM_M = 300.0
BEGIN_S = 25200  # 07:00
PERIOD_S = 1200  # three 20-minute periods

# Approach flows (vehicles/hour) per 20-minute period: the peak moves from N-S to E-W.
FLOWS_VEH_H = {
    "N": (950, 650, 400),
    "S": (850, 600, 400),
    "E": (400, 650, 950),
    "W": (350, 550, 850),
}
# Left-hand traffic: the left turn is the short, easy one.
TURNS = {"left": 0.20, "through": 0.65, "right": 0.15}
MIX = {"motorcycle": 0.60, "car": 0.30, "bus": 0.04, "truck": 0.06}
# Exit arm reached from each approach by each turn (driving on the left).
DEST = {
    "N": {"left": "E", "through": "S", "right": "W"},
    "S": {"left": "W", "through": "N", "right": "E"},
    "E": {"left": "S", "through": "W", "right": "N"},
    "W": {"left": "N", "through": "E", "right": "S"},
}
POS = {"N": (0.0, ARM_M), "S": (0.0, -ARM_M), "E": (ARM_M, 0.0), "W": (-ARM_M, 0.0)}

VTYPES = """    <vType id="motorcycle" vClass="motorcycle" length="2.0" width="0.8" minGap="1.0"
           minGapLat="0.3" latAlignment="arbitrary" maxSpeed="16.7" accel="3.0" decel="5.0"
           sigma="0.5" speedDev="0.15" guiShape="motorcycle"/>
    <vType id="car" vClass="passenger" length="4.5" minGap="2.0" speedDev="0.1"/>
    <vType id="bus" vClass="bus" length="11.0" minGap="2.5" accel="1.2" speedDev="0.05"/>
    <vType id="truck" vClass="truck" length="8.0" minGap="2.5" accel="1.0" speedDev="0.05"/>
"""


def _nodes() -> str:
    rows = ['    <node id="C" x="0" y="0" type="traffic_light"/>']
    rows += [
        f'    <node id="{a}" x="{x:g}" y="{y:g}" type="priority"/>' for a, (x, y) in POS.items()
    ]
    return "<nodes>\n" + "\n".join(rows) + "\n</nodes>\n"


def _edges() -> str:
    rows = []
    for arm in POS:
        rows.append(f'    <edge id="{arm}_in" from="{arm}" to="C" numLanes="2" speed="13.89"/>')
        rows.append(f'    <edge id="{arm}_out" from="C" to="{arm}" numLanes="2" speed="13.89"/>')
    return "<edges>\n" + "\n".join(rows) + "\n</edges>\n"


def _routes() -> str:
    rows = ["<routes>", VTYPES.rstrip("\n")]
    for k in range(3):
        begin, end = BEGIN_S + k * PERIOD_S, BEGIN_S + (k + 1) * PERIOD_S
        for arm, flows in FLOWS_VEH_H.items():
            for turn, share in TURNS.items():
                for vtype, mix in MIX.items():
                    rate = flows[k] * share * mix
                    if rate < 1:
                        continue
                    to = DEST[arm][turn]
                    rows.append(
                        f'    <flow id="{arm}{to}_{vtype}_{k}" type="{vtype}" begin="{begin}" '
                        f'end="{end}" from="{arm}_in" to="{to}_out" '
                        f'vehsPerHour="{rate:.1f}" departLane="best" departSpeed="max"/>'
                    )
    rows.append("</routes>")
    return "\n".join(rows) + "\n"


SUMOCFG = f"""<configuration>
    <input>
        <net-file value="demo.net.xml"/>
        <route-files value="demo.rou.xml"/>
    </input>
    <time>
        <begin value="{BEGIN_S}"/>
        <end value="{BEGIN_S + 3 * PERIOD_S}"/>
    </time>
    <processing>
        <lateral-resolution value="0.8"/>
    </processing>
</configuration>
"""


def _strip_paths(net: Path) -> None:
    """Keep only file names in netconvert's header comment (no machine paths in the repo)."""
    text = net.read_text(encoding="utf-8")
    text = re.sub(r'value="[^"]*/([^"/]+)"', r'value="\1"', text)
    net.write_text(text, encoding="utf-8")


def main() -> int:
    """Write the nodes, edges, network, routes and configuration of the demo."""
    import sumolib

    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        nod, edg = Path(tmp) / "demo.nod.xml", Path(tmp) / "demo.edg.xml"
        nod.write_text(_nodes(), encoding="utf-8")
        edg.write_text(_edges(), encoding="utf-8")
        subprocess.run(
            [
                sumolib.checkBinary("netconvert"),
                "--node-files",
                str(nod),
                "--edge-files",
                str(edg),
                "--lefthand",
                "true",
                "--no-turnarounds",
                "true",
                "--default.lanewidth",
                "3.5",
                "--tls.layout",
                "incoming",
                "--tls.green.time",
                "25",
                "--tls.yellow.time",
                "3",
                "--tls.allred.time",
                "2",
                "--tls.left-green.time",
                "0",
                "--output-file",
                str(OUT / "demo.net.xml"),
                "--no-warnings",
                "true",
            ],
            check=True,
        )
    _strip_paths(OUT / "demo.net.xml")
    (OUT / "demo.rou.xml").write_text(_routes(), encoding="utf-8")
    (OUT / "demo.sumocfg").write_text(SUMOCFG, encoding="utf-8")
    print(f"wrote {OUT}/demo.net.xml, demo.rou.xml, demo.sumocfg")
    return 0


if __name__ == "__main__":
    sys.exit(main())
