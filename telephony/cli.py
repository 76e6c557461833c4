"""`qconnect`: the command line."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

log = logging.getLogger("qconnect")


def _port_range(text: str) -> tuple[int, int]:
    try:
        first, last = (int(p) for p in text.split("-", 1))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected A-B, e.g. 20000-20999, got {text!r}") from None
    if not (1024 <= first < last <= 65535):
        raise argparse.ArgumentTypeError(f"RTP port range {text} must be within 1024-65535, A < B")
    return first, last


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qconnect", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser(
        "serve", help="run the switch (the built-in demo lab without --config)"
    )
    serve.add_argument(
        "--config", type=Path, help="instance config YAML (default: built-in demo lab)"
    )
    serve.add_argument(
        "--bind", default="127.0.0.1", help="address to listen on (default 127.0.0.1)"
    )
    serve.add_argument("--advertise", help="address put in Via/Contact/SDP (default: --bind)")
    serve.add_argument(
        "--sip-port", type=int, default=5060, help="SIP port, UDP and TCP (default 5060)"
    )
    serve.add_argument(
        "--rtp-ports",
        type=_port_range,
        default=(20000, 20999),
        metavar="A-B",
        help="RTP port range (default 20000-20999)",
    )
    serve.add_argument("--data-dir", type=Path, default=Path("data"), help="recordings and records")
    serve.add_argument(
        "--record",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="record every leg into DATA_DIR/recordings (default: on; --no-record to skip)",
    )
    serve.add_argument(
        "--rtp-timeout",
        type=float,
        default=30.0,
        help="hang up a call when no RTP arrived on it for this many seconds (default 30)",
    )

    serve.add_argument(
        "--http-port",
        type=int,
        default=8080,
        help="HTTP API, WebSocket and web CCP port (default 8080; 0 = any free port)",
    )
    serve.add_argument(
        "--mqtt",
        default="embedded",
        metavar="embedded|off|mqtt://HOST:PORT",
        help="MQTT bus: an in-process broker (default), none, or an external broker",
    )
    serve.add_argument(
        "--mqtt-port",
        type=int,
        default=1883,
        help="the embedded broker's port (default 1883; 0 = any free port)",
    )
    serve.add_argument(
        "--mqtt-prefix", default="qconnect/", help="MQTT topic prefix (default qconnect/)"
    )
    serve.add_argument(
        "--admin-token",
        default=os.environ.get("QCONNECT_ADMIN_TOKEN"),
        help="bearer token that reads every agent's state (default: $QCONNECT_ADMIN_TOKEN)",
    )

    demo = commands.add_parser(
        "demo", help="run the seed's three scenarios end to end, narrated, with a report"
    )
    demo.add_argument("--out", type=Path, default=Path("qconnect-report"), help="report folder")

    test = commands.add_parser("test", help="run scenario files; non-zero exit on any failure")
    test.add_argument("scenarios", nargs="+", type=Path, metavar="SCENARIO")
    test.add_argument("--out", type=Path, default=Path("qconnect-report"), help="report folder")
    test.add_argument("--junit", type=Path, help="JUnit XML path (default: OUT/junit.xml)")
    test.add_argument(
        "--target",
        metavar="SIP_HOST:PORT",
        help="run against a running switch (qconnect serve) instead of an embedded one",
    )
    test.add_argument(
        "--api",
        metavar="URL",
        help="with --target: its HTTP API (default http://SIP_HOST:8080)",
    )
    test.add_argument(
        "--admin-token",
        default=os.environ.get("QCONNECT_ADMIN_TOKEN"),
        help="with --target: reads the contact trace records (default: $QCONNECT_ADMIN_TOKEN)",
    )

    ctr = commands.add_parser("ctr", help="contact trace records: list them, or one as JSON")
    ctr.add_argument("contact", nargs="?", help="a contact id (default: list every contact)")
    ctr.add_argument("--data-dir", type=Path, default=Path("data"), help="the switch's --data-dir")
    ctr.add_argument("--out", type=Path, help="write the record to this JSON file")

    check = commands.add_parser("check", help="validate instance config YAML or flow JSON files")
    check.add_argument("paths", nargs="+", type=Path, metavar="CONFIG|FLOW")

    prompts = commands.add_parser("prompts", help="generated audio")
    prompt_commands = prompts.add_subparsers(dest="prompts_command", required=True)
    build = prompt_commands.add_parser(
        "build", help="synthesise every prompt (espeak-ng), the beep and the hold music"
    )
    build.add_argument(
        "--config", type=Path, help="instance config (default: the built-in demo lab)"
    )
    build.add_argument(
        "--out", type=Path, help="output folder (default: the shipped demo audio, or DATA/prompts)"
    )
    return parser


def _check(paths: list[Path]) -> int:
    from telephony.center.config import check

    failed = 0
    for path in paths:
        problems = check(path)
        for problem in problems:
            print(problem)
        if problems:
            failed += 1
        else:
            print(f"{path}: ok")
    return 1 if failed else 0


def _ctr(args: argparse.Namespace) -> int:
    import json

    from telephony.center.ctr import DB_NAME, CtrStore
    from telephony.center.events import CenterError

    if not (args.data_dir / DB_NAME).is_file():
        print(f"qconnect ctr: no contact trace records in {args.data_dir}", file=sys.stderr)
        return 2
    store = CtrStore(args.data_dir)  # WAL: reading beside a running switch is safe
    try:
        if args.contact is None:
            for row in store.list_contacts():
                ended = row["ended"] or "(live)"
                print(f"{row['contact']}  {row['started']}  {ended}  {row['reason'] or ''}")
            return 0
        try:
            if args.out is not None:
                print(store.export_json(args.contact, args.out))
            else:
                print(json.dumps(store.get(args.contact), indent=2))
        except CenterError as exc:
            print(f"qconnect ctr: {exc}", file=sys.stderr)
            return 1
        return 0
    finally:
        store.close()


def _prompts_build(args: argparse.Namespace) -> int:
    from media.prompts import DEFAULT_AUDIO_DIR, PromptError, build_default_audio, build_prompts
    from telephony.center.config import ConfigError, load_config

    try:
        if args.config is None:
            build_default_audio(args.out or DEFAULT_AUDIO_DIR)
            return 0
        config = load_config(args.config)
        texts = {name: p.text for name, p in config.prompts.items() if p.text is not None}
        out = args.out or Path("data") / "prompts"
        build_default_audio(out)
        build_prompts(texts, out, manifest=False)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    except PromptError as exc:
        print(f"qconnect prompts build: {exc}", file=sys.stderr)
        return 1
    return 0


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def _install_uvloop() -> None:
    # ~4x the datagrams/s of the default loop (measured); optional so the switch runs anywhere.
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


async def _serve(args: argparse.Namespace) -> int:
    from telephony.api.mqtt import MqttConfigError
    from telephony.api.service import AgentInterfaces, InterfaceSettings
    from telephony.center.config import ConfigError, demo_lab, load_config
    from telephony.switch.server import Switch, SwitchSettings

    try:
        config = load_config(args.config) if args.config else demo_lab()
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    settings = SwitchSettings(
        bind=args.bind,
        advertise=args.advertise,
        sip_port=args.sip_port,
        rtp_ports=args.rtp_ports,
        rtp_timeout=args.rtp_timeout,
        data_dir=args.data_dir,
        record=args.record,
    )
    args.data_dir.mkdir(parents=True, exist_ok=True)
    switch = Switch(settings, config)
    try:
        await switch.start()
    except OSError as exc:
        print(
            f"qconnect: cannot listen on {args.bind}:{args.sip_port}: {exc.strerror}",
            file=sys.stderr,
        )
        return 2
    try:
        interfaces = AgentInterfaces(
            switch.center,
            InterfaceSettings(
                bind=args.bind,
                http_port=args.http_port,
                mqtt=args.mqtt,
                mqtt_port=args.mqtt_port,
                mqtt_prefix=args.mqtt_prefix,
                admin_token=args.admin_token,
            ),
        )
        await interfaces.start()
    except MqttConfigError as exc:
        print(f"qconnect: --mqtt: {exc}", file=sys.stderr)
        await switch.stop()
        return 2
    except OSError as exc:
        print(f"qconnect: cannot start the agent interfaces: {exc}", file=sys.stderr)
        await interfaces.stop()
        await switch.stop()
        return 2
    log.info(
        "lab %r: users %s; services %s",
        config.name,
        ", ".join(sorted([*config.agents, *config.users])),
        ", ".join(f"{n} ({s.type})" for n, s in config.services.items()) or "none",
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("stopping")
    await interfaces.stop()
    await switch.stop()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    _setup_logging(args.verbose)
    if args.command == "serve":
        _install_uvloop()
        return asyncio.run(_serve(args))
    if args.command in ("demo", "test"):
        from telephony.lab.demo import SEED_SCENARIOS, Console, run

        _install_uvloop()
        logging.getLogger().setLevel(logging.DEBUG if args.verbose else logging.WARNING)
        paths = list(SEED_SCENARIOS) if args.command == "demo" else args.scenarios
        control = None
        if getattr(args, "target", None):
            from telephony.lab.remote import Target, remote_controls

            try:
                control = remote_controls(Target.parse(args.target, args.api, args.admin_token))
            except ValueError as exc:
                print(f"qconnect test: {exc}", file=sys.stderr)
                return 2
        junit = getattr(args, "junit", None)
        return asyncio.run(run(paths, args.out, Console(), junit=junit, control=control))
    if args.command == "check":
        return _check(args.paths)
    if args.command == "ctr":
        return _ctr(args)
    if args.command == "prompts":
        return _prompts_build(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
