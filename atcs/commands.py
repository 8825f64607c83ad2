"""What each ``atcs`` sub-command does, once its arguments are parsed."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Literal

from atcs.config import AtcsConfig, geometry_warnings, load_config
from atcs.errors import ConfigError


def _redact(url: str) -> str:
    from atcs.sources.redact import redact_url

    return redact_url(url)


def describe_detection(cfg: AtcsConfig, camera_id: str) -> str:
    """One line saying how a camera's frames are put to the model (and which tiles)."""
    from atcs.camera_tiles import far_field_of

    d = cfg.camera(camera_id).detection
    if d.mode == "whole":
        return f"whole frame at {cfg.detector.image_size_px} px"
    if d.mode == "crop":
        how = "cropped to its segments and lines once its crop check agrees"
        return how if cfg.detector.crop else "whole frame ([detector] crop is off)"
    f = far_field_of(cfg, camera_id)
    return (
        f"whole frame plus {d.tile_px} px tiles at scale {d.tile_scale:g} over "
        f"[{f.x0:.3f}, {f.y0:.3f}, {f.x1:.3f}, {f.y1:.3f}] (the tiles are drawn by atcs calibrate)"
    )


def summarise(cfg: AtcsConfig) -> list[str]:
    """One screen describing a valid configuration: cameras, segments, lines, intersections."""
    lines = [
        f"site {cfg.site.id} ({cfg.site.name or 'unnamed'}), time zone {cfg.site.timezone}",
        f"detector {cfg.detector.model} at {cfg.detector.image_size_px} px, "
        f"confidence {cfg.detector.confidence}, classes {', '.join(cfg.detector.classes)}",
        f"windows of {cfg.analysis.window_s:g} s",
        f"cameras: {len(cfg.cameras)}",
    ]
    for cam in cfg.cameras:
        state = "" if cam.enabled else " (disabled)"
        lines.append(
            f"  {cam.id:<24} {cam.kind:<8} {cam.sample_fps:g} fps  {_redact(cam.source)}{state}"
        )
        lines.append(f"  {'':<24} detection: {describe_detection(cfg, cam.id)}")
    lines.append(f"segments: {len(cfg.segments)}")
    for seg in cfg.segments:
        stop = ", stop line" if seg.stop_line else ""
        lines.append(
            f"  {seg.id:<24} camera {seg.camera}, {seg.length_m:g} m x {seg.lanes} lanes, "
            f"{seg.movement}{stop}"
        )
    lines.append(f"counting lines: {len(cfg.lines)}")
    for ln in cfg.lines:
        lines.append(f"  {ln.id:<24} segment {ln.segment}")
    ixs = sorted({z.intersection_id for z in cfg.zones})
    lines.append(f"turning-movement zones: {len(cfg.zones)} ({', '.join(ixs) or 'none'})")
    lines.append(f"ground calibrations: {', '.join(c.camera for c in cfg.calibrations) or 'none'}")
    lines.append(f"intersections: {len(cfg.intersections)}")
    for ix in cfg.intersections:
        lines.append(f"  {ix.id}")
    lines.append(f"mqtt: {'configured' if cfg.mqtt else 'off'}")
    lines.append(f"influxdb: {'configured' if cfg.influx else 'off'}")
    dash = cfg.dashboard
    lines.append(f"dashboard: http://{dash.host}:{dash.port}/" if dash else "dashboard: off")
    return lines


def validate_config(path: Path, strict: bool = False) -> int:
    """Print every problem of the file at ``path`` with its field path, or a summary.

    Exit code 0 for a valid file, 1 for an invalid one (or warnings with ``strict``).
    """
    try:
        cfg = load_config(path)
    except ConfigError as exc:
        problems = str(exc).splitlines()
        print(f"{path}: {len(problems)} problem(s)", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    warnings = geometry_warnings(cfg)
    print(f"{path}: valid")
    for line in summarise(cfg):
        print(line)
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return 1 if strict and warnings else 0


def analyze(args: argparse.Namespace) -> int:
    """Run the survey over recorded footage (``atcs analyze``)."""
    from atcs.survey import run_survey

    cfg = load_config(args.config)
    sample_fps: float | Literal["camera"] | None = None
    if args.sample_fps == "camera":
        sample_fps = "camera"
    elif args.sample_fps is not None:
        try:
            sample_fps = float(args.sample_fps)
        except ValueError:
            raise ConfigError(f"--sample-fps: not a number: {args.sample_fps!r}") from None
    report = run_survey(
        cfg,
        out_dir=args.out,
        camera_ids=args.camera,
        source=args.source,
        max_frames=args.max_frames,
        progress=not args.no_progress,
        sample_fps=sample_fps,
        folder_fps=args.fps,
    )
    for line in report.summary_lines():
        print(line)
    return 0


def calibrate(args: argparse.Namespace) -> int:
    """Check a camera's ground calibration and draw its metre grid (``atcs calibrate``)."""
    from atcs.calibrate import calibrate as run_calibration

    cfg = load_config(args.config)
    if args.frame < 0:
        raise ConfigError(f"--frame must be 0 or more, got {args.frame}")
    out = args.out if args.out is not None else Path(f"{args.camera}-calibration.png")
    report = run_calibration(cfg, args.camera, out=out, source=args.source, frame=args.frame)
    for line in report.lines:
        print(line)
    return 0


def propose_detection(args: argparse.Namespace) -> int:
    """Observe a camera and propose its detection geometry (``atcs propose-detection``)."""
    from atcs.detection import build_detector
    from atcs.propose_detection import propose_detection as propose

    cfg = load_config(args.config)
    cfg.camera(args.camera)  # an unknown camera is a clear ConfigError before the model loads
    detector = build_detector(cfg.detector)
    try:
        proposal = propose(
            cfg, args.camera, detector, frames=args.frames, step=args.step, target=args.recall
        )
    finally:
        detector.close()
    for line in proposal.lines():
        print(line)
    return 0


def run(
    config_path: Path, duration_s: float | None, verbose: bool = False, role: str = "all"
) -> int:
    """Run the node (``atcs run --role``) until a signal or ``duration_s`` seconds.

    Logging follows ``service.log_level`` unless ``verbose`` asked for DEBUG.
    """
    from atcs.bus.nodes import NodeRole
    from atcs.service import run_service

    cfg = load_config(config_path)
    if not verbose:
        logging.getLogger().setLevel(cfg.service.log_level)
    return run_service(cfg, duration_s=duration_s, role=NodeRole(role))


def signal_controller(args: argparse.Namespace) -> int:
    """Run the reference phase-by-phase signal controller (``atcs signal-controller``)."""
    import signal as signals

    from atcs.signal_adapter import adapter_from_config

    cfg = load_config(args.config)
    adapter = adapter_from_config(
        cfg,
        args.intersection,
        controller_id=args.controller_id,
        key_env=args.key_env,
        algorithm=args.algorithm,
    )
    for signum in (signals.SIGINT, signals.SIGTERM):
        signals.signal(signum, lambda *_: adapter.stop())
    adapter.run(args.duration)
    return 0


def watch(args: argparse.Namespace) -> int:
    """Show the live segment table from the MQTT bus (``atcs watch``)."""
    from atcs.watch import run_watch

    return run_watch(args)


def simulate(args: argparse.Namespace) -> int:
    """Run the closed-loop SUMO evaluation (``atcs simulate``)."""
    from atcs.sim import RunSettings, run_simulation

    run_simulation(
        scenario=args.scenario,
        controllers=list(args.controller or []),
        seconds=args.seconds,
        seed=args.seed,
        out_dir=args.out,
        progress=not args.no_progress,
        settings=RunSettings(
            seeds=args.seeds,
            clearances=args.clearances,
            camera_errors=not args.perfect_cameras,
            outage_share=args.camera_outages,
            outage_s=args.outage_s,
            green_wave_m_s=args.green_wave,
            phase_view=args.phase_view,
            phase_window_s=args.phase_window_s,
            zone_age_s=args.zone_age_s,
            zone_loss=args.zone_loss,
            junction_blocker_s=args.ignore_junction_blocker,
        ),
    )
    return 0


def sign_message(args: argparse.Namespace) -> int:
    """Print the JSON payload (file or stdin) signed for its topic (``atcs sign-message``).

    The key is read from the environment variable ``args.key_env``: the base64 HMAC secret
    or Ed25519 private key of the sender. Exit 2 with a message when it cannot be signed.
    """
    from atcs.bus.keys import Algorithm, Signer, sign_payload

    try:
        raw = args.payload.read_bytes() if args.payload is not None else sys.stdin.buffer.read()
    except OSError as exc:
        print(f"atcs sign-message: cannot read {args.payload}: {exc.strerror}", file=sys.stderr)
        return 2
    signer = Signer.from_env(args.sender, Algorithm(args.algorithm), args.key_env)
    signed = sign_payload(raw, args.topic, signer, valid_s=args.valid_s)
    sys.stdout.write(signed.decode("utf-8") + "\n")
    return 0


def new_signing_key(args: argparse.Namespace) -> int:
    """Print a fresh key for signing control messages (``atcs new-signing-key``)."""
    from atcs.bus.keys import Algorithm, new_key

    algorithm = Algorithm(args.algorithm)
    sender_key, engine_key = new_key(algorithm)
    if algorithm is Algorithm.HMAC_SHA256:
        print("# shared secret: the same value on the sender and in the engine's environment")
    else:
        print("# Ed25519: the private key stays on the sender; the engine gets the public key")
    print(f"sender: {sender_key}")
    print(f"engine: {engine_key}")
    return 0
