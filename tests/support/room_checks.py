"""What the multi-node test checks in the room: edge snapshots, signed operator actions, acks.

The city's keys (:func:`city_keys`): the room signs its operators' overrides with an
Ed25519 key (``room-1``), a test signal controller acks plans with another (``tsc-1``);
every node gets the public keys, the room alone the private one.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from playwright.sync_api import Page

from atcs.bus.keys import Algorithm, Signer, new_key, sign_payload
from atcs.bus.messages import AckResult, Override, OverrideAction, PlanAck
from atcs.bus.payloads import decode_timing_plan, encode_override, encode_plan_ack
from atcs.bus.topics import Topics
from atcs.types import IntersectionId, PlanMode, TimingPlan
from tests.support.mosquitto import Collector
from tests.support.wait import wait_for

TOPICS = Topics()
IX = IntersectionId("simpang")
OPERATOR = ("polantas", "room-operator-pw")
ROOM_SENDER = "room-1"
CONTROLLER = "tsc-1"


@dataclass(frozen=True)
class CityKeys:
    """The room's and the signal controller's keys, and the nodes' environment."""

    room: Signer
    controller: Signer
    public_env: dict[str, str]
    room_env: dict[str, str]


def city_keys() -> CityKeys:
    """Fresh Ed25519 keys for the room and the test signal controller."""
    room_private, room_public = new_key(Algorithm.ED25519)
    tsc_private, tsc_public = new_key(Algorithm.ED25519)
    public = {"ATCS_E2E_ROOM_PUBLIC": room_public, "ATCS_E2E_TSC_PUBLIC": tsc_public}
    return CityKeys(
        room=Signer.from_key(ROOM_SENDER, Algorithm.ED25519, room_private),
        controller=Signer.from_key(CONTROLLER, Algorithm.ED25519, tsc_private),
        public_env=public,
        room_env={**public, "ATCS_E2E_ROOM_KEY": room_private, "ATCS_E2E_OPERATOR_PW": OPERATOR[1]},
    )


CONTROL_AUTH = f"""
[mqtt.control_auth]
senders = [
  {{ id = "{ROOM_SENDER}", role = "operator_console", algorithm = "ed25519", key_env = "ATCS_E2E_ROOM_PUBLIC" }},
  {{ id = "{CONTROLLER}", role = "signal_controller", algorithm = "ed25519", key_env = "ATCS_E2E_TSC_PUBLIC" }},
]
room_signer = {{ id = "{ROOM_SENDER}", key_env = "ATCS_E2E_ROOM_KEY" }}
"""  # noqa: E501
"""Every node's ``[mqtt.control_auth]``: only signed overrides and acks are taken."""

ROOM_USERS = f"""users = [
  {{ name = "{OPERATOR[0]}", role = "operator", password_env = "ATCS_E2E_OPERATOR_PW" }},
]
"""


def http(url: str, body: Any = None, token: str = "") -> tuple[int, bytes]:
    """GET (or POST ``body`` as JSON) ``url``; return the status and body, errors included."""
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"} if data is not None else {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=data, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def room_cameras(room_url: str) -> dict[str, dict[str, Any]]:
    """The room's ``/api/cameras`` by camera id (empty while it does not answer)."""
    try:
        status, body = http(f"{room_url}/api/cameras")
    except OSError:
        return {}
    return {c["camera_id"]: c for c in json.loads(body)} if status == 200 else {}


def check_snapshots_from_both_edges(room_url: str, page: Page, cameras: tuple[str, ...]) -> None:
    """The room's API and page show an image of each camera, fetched from its edge node."""

    def images() -> bool:
        return all(room_cameras(room_url).get(c, {}).get("snapshot_url") for c in cameras)

    wait_for(images, 30, "a snapshot of each camera in the room", interval_s=0.5)
    for camera in cameras:
        status, jpeg = http(f"{room_url}/api/cameras/{camera}/snapshot.jpg")
        assert status == 200, (camera, jpeg[:200])
        assert jpeg.startswith(b"\xff\xd8"), camera
    for camera in cameras:  # the browser loads and draws each image
        page.wait_for_function(
            """cam => { const img = document.querySelector(
                 `figure.camera[data-camera="${cam}"] img.snapshot`);
               return img && !img.hidden && img.complete && img.naturalWidth > 0; }""",
            arg=camera,
            timeout=30_000,
        )


def check_no_snapshot_of_offline_node(room_url: str, camera: str, node: str) -> None:
    """A dead edge node's camera says why it has no image, at once (no hang)."""
    why = f"no snapshot: node {node} offline"
    wait_for(
        lambda: room_cameras(room_url).get(camera, {}).get("snapshot_problem") == why,
        10, "the room naming the offline node of the camera's image", interval_s=0.2,
    )  # fmt: skip
    started = time.monotonic()
    status, body = http(f"{room_url}/api/cameras/{camera}/snapshot.jpg")
    assert time.monotonic() - started < 2.0
    assert status == 503
    assert why in json.loads(body)["message"]


def plans(bus: Collector) -> list[TimingPlan]:
    """Every plan of ``simpang`` the test's subscriber got."""
    return [
        decode_timing_plan(m.payload, IX).record
        for m in bus.snapshot()
        if m.topic == TOPICS.plan(IX)
    ]


def control_audit(control_state_dir: Path) -> list[dict[str, Any]]:
    """The control node's audit trail of control messages."""
    path = control_state_dir / "dashboard" / "operator-actions.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def check_forged_overrides_refused(bus: Collector, keys: CityKeys, control_state_dir: Path) -> None:
    """Control refuses an unsigned override and one signed with the wrong key, and says why."""
    topic = TOPICS.override(IX)
    forged = Override(IX, OverrideAction.HOLD, "intruder", "forged", None)
    unsigned = encode_override(forged)
    wrong_key, _ = new_key(Algorithm.ED25519)
    impostor = Signer.from_key(ROOM_SENDER, Algorithm.ED25519, wrong_key)
    bad = sign_payload(unsigned, topic, impostor)
    before = len(plans(bus))
    for payload in (unsigned, bad):
        bus.client.publish(topic, payload, qos=1).wait_for_publish(5)

    def refusals() -> list[str]:
        return [
            r["detail"].split(":", 1)[0].removeprefix(f"sender {ROOM_SENDER}; ")
            for r in control_audit(control_state_dir)
            if r["outcome"] == "refused" and r["user"] in ("intruder", ROOM_SENDER)
        ]

    wait_for(
        lambda: len(refusals()) >= 2, 15, "control refusing both forged overrides", interval_s=0.2
    )
    assert sorted(refusals()) == ["bad_signature", "unsigned"]
    time.sleep(1.0)
    assert all("intruder" not in p.reason for p in plans(bus)[before:])


def login(room_url: str) -> str:
    """Log the room's operator in; return the bearer token."""
    status, body = http(f"{room_url}/api/login", {"username": OPERATOR[0], "password": OPERATOR[1]})
    assert status == 200, body
    return str(json.loads(body)["token"])


def check_room_hold_reaches_control(
    room_url: str, bus: Collector, keys: CityKeys, control_state_dir: Path
) -> None:
    """An operator's hold in the room is signed, applied by control, acked, shown in the room."""
    token = login(room_url)
    before = len(plans(bus))
    status, body = http(
        f"{room_url}/api/intersections/{IX}/override",
        {"action": "hold", "reason": "ambulance convoy"},
        token,
    )
    assert status == 202, body
    assert json.loads(body)["accepted"] is True

    def manual() -> TimingPlan | None:
        return next(
            (
                p
                for p in plans(bus)[before:]
                if p.mode is PlanMode.MANUAL and OPERATOR[0] in p.reason
            ),
            None,
        )

    wait_for(lambda: manual() is not None, 15, "control's manual plan for the room's hold")
    plan = manual()
    assert plan is not None
    accepted = [
        r for r in control_audit(control_state_dir)
        if r["outcome"] == "accepted" and r["user"] == OPERATOR[0] and r["action"] == "hold"
    ]  # fmt: skip
    assert accepted
    assert accepted[-1]["detail"].startswith(f"sender {ROOM_SENDER}; ")
    ack = PlanAck(IX, plan.plan_id, AckResult.APPLIED, "", CONTROLLER)  # the signal controller
    signed = sign_payload(encode_plan_ack(ack), TOPICS.plan_ack(IX), keys.controller)
    bus.client.publish(TOPICS.plan_ack(IX), signed, qos=1).wait_for_publish(5)

    def room_shows_applied() -> bool:
        _, body = http(f"{room_url}/api/intersections/{IX}/plans")
        return any(
            p["plan_id"] == plan.plan_id and p["state"] == "applied" and p["mode"] == "manual"
            for p in json.loads(body)
        )

    wait_for(room_shows_applied, 15, "the room showing the manual plan applied", interval_s=0.3)
    # the control node's override state reaches the room: the same alarm as in role all
    wait_for(lambda: manual_alarm(room_url) == [OPERATOR[0]], 15, "intersection_manual alarm")
    status, body = http(
        f"{room_url}/api/intersections/{IX}/override",
        {"action": "release", "reason": "convoy passed"},
        token,
    )
    assert status == 202, body
    wait_for(
        lambda: any(p.mode is not PlanMode.MANUAL for p in plans(bus)[len(plans(bus)) - 1 :]),
        15, "control releasing the hold",
    )  # fmt: skip
    wait_for(lambda: manual_alarm(room_url) == [], 15, "intersection_manual alarm ended")


def manual_alarm(room_url: str) -> list[str]:
    """Who holds the intersection, by the room's active ``intersection_manual`` alarms."""
    _, body = http(f"{room_url}/api/alarms")
    return [
        str(a["params"]["who"])
        for a in json.loads(body)["current"]
        if a["kind"] == "intersection_manual" and a["subject"] == IX and a["active"]
    ]


def check_fallback_alarm(room_url: str) -> None:
    """The room raises the intersection's fallback alarm from the plans on the bus."""

    def alarm() -> bool:
        _, body = http(f"{room_url}/api/alarms")
        alarms = json.loads(body)["current"]
        return any(a["kind"] == "intersection_fallback" and a["subject"] == IX for a in alarms)

    wait_for(alarm, 15, "the intersection_fallback alarm in the room", interval_s=0.3)
