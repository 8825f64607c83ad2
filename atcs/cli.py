"""The ``atcs`` command line: validate-config, analyze, run, watch, simulate and signing.

Each sub-command imports what it needs when it runs, so ``atcs --help`` stays fast and a
broken optional part (say, the simulator) never stops the others.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from atcs import __version__
from atcs.errors import AtcsError

log = logging.getLogger(__name__)


def _add_validate(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("validate-config", help="check a configuration file and summarise it")
    p.add_argument("path", type=Path, help="configuration file (TOML)")
    p.add_argument(
        "--strict", action="store_true", help="treat warnings (geometry clipped...) as errors"
    )


def _add_analyze(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("analyze", help="survey recorded footage frame by frame into CSV files")
    p.add_argument("--config", type=Path, required=True, help="configuration file (TOML)")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--camera", action="append", help="camera id (repeatable; default: all)")
    p.add_argument("--source", help="file or image folder replacing the camera's source")
    p.add_argument("--max-frames", type=int, default=None, help="stop after N frames a camera")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument(
        "--sample-fps",
        nargs="?",
        const="camera",
        default=None,
        metavar="FPS",
        help="analyse FPS frames per second of footage, as the live service does "
        "(no value: each camera's configured sample_fps; default: every frame)",
    )
    p.add_argument(
        "--fps",
        type=float,
        default=None,
        help="frame rate of image-folder sources, frames/s (default: the camera's sample_fps)",
    )


def _add_calibrate(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "calibrate", help="check a camera's ground calibration and draw a metre grid on a frame"
    )
    p.add_argument("--config", type=Path, required=True, help="configuration file (TOML)")
    p.add_argument("--camera", required=True, help="id of the calibrated camera")
    p.add_argument(
        "--out", type=Path, default=None, help="picture to write (default: CAMERA-calibration.png)"
    )
    p.add_argument("--source", help="file, folder or URL replacing the camera's source")
    p.add_argument("--frame", type=int, default=0, help="frame number to draw on (default 0)")


def _add_propose(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "propose-detection",
        help="observe a camera's vehicles and propose its cheapest detection geometry",
    )
    p.add_argument("--config", type=Path, required=True, help="configuration file (TOML)")
    p.add_argument("--camera", required=True, help="id of the camera")
    p.add_argument("--frames", type=int, default=12, help="frames to observe (default 12)")
    p.add_argument("--step", type=int, default=25, help="frames between them (default 25)")
    p.add_argument(
        "--recall", type=float, default=0.9, help="recall target inside the segments (0.9)"
    )


def _add_run(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("run", help="run the long-lived engine")
    p.add_argument("--config", type=Path, required=True, help="configuration file (TOML)")
    p.add_argument(
        "--duration",
        type=float,
        default=None,
        help="stop after SECONDS, counted once started (model loaded, cameras opening)",
    )
    p.add_argument(
        "--role",
        choices=["all", "edge", "control", "room"],
        default="all",
        help="what this node runs (default all: one process; see docs/nodes.md)",
    )


def _add_watch(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("watch", help="live table of segments from the MQTT bus")
    p.add_argument("--config", type=Path, help="take broker settings from this config file")
    p.add_argument("--host", help="broker host (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="broker port (default 1883)")
    p.add_argument("--prefix", help="topic prefix (default atcs/v1)")
    p.add_argument("--once", action="store_true", help="print one table after --wait s, exit")
    p.add_argument("--wait", type=float, default=3.0, help="seconds to collect with --once")


def _add_simulate(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("simulate", help="closed-loop signal control in Eclipse SUMO")
    p.add_argument(
        "--scenario",
        required=True,
        help="RESCO network name, 'ingolstadt7-restored', 'demo' or a .sumocfg path",
    )
    p.add_argument(
        "--controller",
        action="append",
        help="controller name (repeatable; default: every engine controller, peer and reference)",
    )
    p.add_argument("--seconds", type=int, default=None, help="simulated seconds")
    p.add_argument("--seed", type=int, default=1, help="first random seed")
    p.add_argument("--seeds", type=int, default=1, help="number of seeds (runs per controller)")
    p.add_argument(
        "--clearances",
        choices=("ite", "minimum"),
        default="ite",
        help="yellow/all-red per link: ITE formula (default) or 3 s / 1 s",
    )
    p.add_argument(
        "--perfect-cameras", action="store_true", help="no camera misses or double counts"
    )
    p.add_argument(
        "--camera-outages",
        type=float,
        default=0.0,
        metavar="SHARE",
        help="share (0..1) of approach cameras that go down once each",
    )
    p.add_argument("--outage-s", type=float, default=900.0, help="length of each camera outage (s)")
    p.add_argument(
        "--green-wave",
        type=float,
        default=0.0,
        metavar="SPEED",
        help="common cycle with offsets for a west-to-east green wave at SPEED m/s",
    )
    p.add_argument(
        "--phase-view",
        choices=("vehicles", "windows", "bus"),
        default="vehicles",
        help="what phase-by-phase controllers see: each detected vehicle every second "
        "(default), the live service's windows, or the vehicles as a control node gets them "
        "over the bus (late, some lost, windows where stale)",
    )
    p.add_argument(
        "--phase-window-s",
        type=float,
        default=10.0,
        help="window length (s) with --phase-view windows or bus (the service's default: 10)",
    )
    p.add_argument(
        "--zone-age-s",
        type=float,
        default=1.0,
        help="with --phase-view bus: seconds from a zone's capture to its arrival (default 1)",
    )
    p.add_argument(
        "--zone-loss",
        type=float,
        default=0.0,
        help="with --phase-view bus: share of zone messages lost, 0..1 (default 0)",
    )
    p.add_argument(
        "--ignore-junction-blocker",
        type=float,
        default=0.0,
        metavar="S",
        help="SUMO's option: a vehicle waiting S s behind one standing inside a junction "
        "drives past it (default 0: off, as RESCO)",
    )
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def _add_signing(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("sign-message", help="sign an override or ack for the MQTT bus")
    p.add_argument("--topic", required=True, help="the topic it will be published on")
    p.add_argument("--sender", required=True, help="sender id (mqtt.control_auth.senders)")
    p.add_argument("--algorithm", required=True, choices=["hmac-sha256", "ed25519"])
    p.add_argument("--key-env", required=True, help="environment variable holding the key")
    p.add_argument("--valid-s", type=float, default=60.0, help="seconds it stays valid")
    p.add_argument("payload", nargs="?", type=Path, help="JSON payload file (default: stdin)")
    k = sub.add_parser("new-signing-key", help="make a key for signing control messages")
    k.add_argument("--algorithm", required=True, choices=["hmac-sha256", "ed25519"])


def _add_signal_controller(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "signal-controller",
        help="reference phase-by-phase signal controller on MQTT (docs/phase-control.md)",
    )
    p.add_argument("--config", type=Path, required=True, help="configuration file (TOML)")
    p.add_argument("--intersection", required=True, help="intersection id (mode = 'phase')")
    p.add_argument("--controller-id", required=True, help="sender id it signs its states as")
    p.add_argument("--key-env", help="environment variable holding its signing key")
    p.add_argument(
        "--algorithm", choices=["hmac-sha256", "ed25519"], default="ed25519",
        help="signing algorithm (default ed25519)",
    )  # fmt: skip
    p.add_argument("--duration", type=float, default=None, help="stop after SECONDS")


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the ``atcs`` command."""
    parser = argparse.ArgumentParser(prog="atcs", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"atcs {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_validate(sub)
    _add_analyze(sub)
    _add_calibrate(sub)
    _add_propose(sub)
    _add_run(sub)
    _add_watch(sub)
    _add_simulate(sub)
    _add_signing(sub)
    _add_signal_controller(sub)
    return parser


def _configure_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("ultralytics", "urllib3", "PIL", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _dispatch(args: argparse.Namespace) -> int:
    command: str = args.command
    if command == "validate-config":
        from atcs.commands import validate_config

        return validate_config(args.path, strict=args.strict)
    if command == "analyze":
        from atcs.commands import analyze

        return analyze(args)
    if command == "calibrate":
        from atcs.commands import calibrate

        return calibrate(args)
    if command == "propose-detection":
        from atcs.commands import propose_detection

        return propose_detection(args)
    if command == "run":
        from atcs.commands import run

        return run(args.config, args.duration, verbose=args.verbose, role=args.role)
    if command == "watch":
        from atcs.commands import watch

        return watch(args)
    if command == "signal-controller":
        from atcs.commands import signal_controller

        return signal_controller(args)
    if command in ("sign-message", "new-signing-key"):
        from atcs.commands import new_signing_key, sign_message

        return sign_message(args) if command == "sign-message" else new_signing_key(args)
    from atcs.commands import simulate

    return simulate(args)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``atcs`` command with ``argv`` (default: ``sys.argv[1:]``); return its exit code."""
    args = build_parser().parse_args(argv)
    _configure_logging(args.verbose)
    try:
        return _dispatch(args)
    except AtcsError as exc:
        print(f"atcs {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
