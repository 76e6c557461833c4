"""The switch under test, in its own process, with its media clock's numbers on request.

    .venv/bin/python -m benchmarks.switch_runner --users 600 --rtp-ports 24000-26999 [--no-record]

Builds the real `Switch` (the demo lab plus `--users` plain SIP users ``u0001``.. with
password ``pw``) on uvloop, prints one ``READY {...}`` JSON line with its SIP port, then
answers line commands on stdin with one JSON line each on stdout:

- ``mark``: start a measurement window (forget clock lateness, snapshot CPU and counters);
- ``stats``: the window so far (clock lateness p50/p99/max, ticks, CPU seconds, packets,
  jitter-buffer counters summed over every leg);
- ``quit`` (or SIGTERM, or stdin closing): print the final ``stats`` and exit.

The load generator lives in another process so its CPU never counts as the switch's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import logging
import os
import resource
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from telephony.center.config import User, demo_lab
from telephony.cli import _install_uvloop, _port_range
from telephony.switch.server import Switch, SwitchSettings

PASSWORD = "pw"
JITTER_FIELDS = (
    "received",
    "duplicates",
    "late",
    "resyncs",
    "frames_played",
    "frames_concealed",
    "frames_silent",
    "frames_lost",
    "underruns",
    "frames_dropped",
)


def user_name(index: int) -> str:
    """The login of bench user `index` (1-based): u0001, u0002, ..."""
    return f"u{index:04d}"


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _kernel_seconds() -> float:
    """CPU spent in the kernel on our behalf: UDP send/receive system calls, mostly."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_stime


def _preempted() -> int:
    """Involuntary context switches so far: times the kernel took the CPU away from us."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_nivcsw


class Runner:
    def __init__(self, switch: Switch) -> None:
        self.switch = switch
        self._mark_wall = time.monotonic()
        self._mark_cpu = _cpu_seconds()
        self._mark_kernel = _kernel_seconds()
        self._mark_preempted = _preempted()
        self._mark_ticks = 0
        self._mark_skipped = 0
        # Instrumentation next to the clock's own numbers: the loop's clock is uvloop's
        # millisecond `uv_now`, so lateness is also taken from time.monotonic() (the same
        # CLOCK_MONOTONIC, at full resolution), and each tick's own run time is measured.
        self._lateness: list[float] = []
        self._durations: list[float] = []
        engine = switch.engine
        tick = engine._tick

        def timed_tick(index: int, now: float) -> None:
            started = time.monotonic()
            tick(index, now)
            clock = engine.clock
            if clock is not None and clock.schedule is not None:
                self._lateness.append(started - clock.schedule.deadline(index))
            self._durations.append(time.monotonic() - started)

        engine._tick = timed_tick  # type: ignore[method-assign,assignment]
        # Garbage collections (a full one walks every object of every call) and their pauses.
        self._gc_started = 0.0
        self._gc_pauses: list[tuple[int, float]] = []
        gc.callbacks.append(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_started = time.monotonic()
        else:
            self._gc_pauses.append((info["generation"], time.monotonic() - self._gc_started))

    def mark(self) -> dict[str, Any]:
        clock = self.switch.engine.clock
        assert clock is not None and clock.schedule is not None
        clock.schedule.reset_stats()
        self._mark_ticks = clock.schedule.ticks
        self._mark_skipped = clock.schedule.skipped
        self._mark_wall = time.monotonic()
        self._mark_cpu = _cpu_seconds()
        self._mark_kernel = _kernel_seconds()
        self._mark_preempted = _preempted()
        self._lateness.clear()
        self._durations.clear()
        self._gc_pauses.clear()
        return {"marked": True}

    def stats(self) -> dict[str, Any]:
        engine = self.switch.engine
        clock = engine.clock
        assert clock is not None and clock.schedule is not None
        schedule = clock.schedule
        lateness = schedule.stats()
        jitter = dict.fromkeys(JITTER_FIELDS, 0)
        rx_accepted = rx_malformed = rx_foreign = tx_packets = streams = 0
        for leg in list(engine.legs.values()):
            stream = leg.stream
            if stream is None:
                continue
            streams += 1
            counters = stream.session.counters
            rx_accepted += counters.accepted
            rx_malformed += counters.malformed
            rx_foreign += counters.foreign
            tx_packets += stream.sender.packet_count
            for name in JITTER_FIELDS:
                jitter[name] += getattr(stream.jitter.stats, name)
        return {
            "wall": time.monotonic() - self._mark_wall,
            "cpu": _cpu_seconds() - self._mark_cpu,
            "kernel_cpu": _kernel_seconds() - self._mark_kernel,
            "preempted": _preempted() - self._mark_preempted,
            "ticks": schedule.ticks - self._mark_ticks,
            "skipped": schedule.skipped - self._mark_skipped,
            "lateness_ms": {
                "p50": lateness.p50 * 1e3,
                "p99": lateness.p99 * 1e3,
                "max": lateness.max * 1e3,
            },
            "precise_lateness_ms": _percentiles(self._lateness),
            "tick_ms": _percentiles(self._durations),
            "gc": {
                f"gen{generation}": {
                    "count": sum(1 for g, _ in self._gc_pauses if g == generation),
                    "max_ms": 1e3
                    * max((p for g, p in self._gc_pauses if g == generation), default=0),
                }
                for generation in (0, 1, 2)
            },
            "legs": len(engine.legs),
            "streams": streams,
            "calls": len(self.switch.b2bua.calls),
            "rx_accepted": rx_accepted,
            "rx_malformed": rx_malformed,
            "rx_foreign": rx_foreign,
            "tx_packets": tx_packets,
            "jitter": jitter,
        }


def realtime_priority() -> str:
    """Ask for SCHED_RR, as media servers are deployed (Asterisk -p, FreeSWITCH -rp), so
    other processes on the machine cannot delay the media clock; else a lower nice value.
    Returns what was granted, for the report."""
    try:
        os.sched_setscheduler(0, os.SCHED_RR, os.sched_param(10))
        return "SCHED_RR 10"
    except (AttributeError, PermissionError, OSError):
        pass
    try:
        os.setpriority(os.PRIO_PROCESS, 0, -10)
        return "nice -10"
    except (AttributeError, PermissionError, OSError):
        return "normal (not permitted)"


def _percentiles(samples: list[float]) -> dict[str, float]:
    if not samples:
        return {"p50": 0.0, "p99": 0.0, "max": 0.0}
    ordered = sorted(samples)
    n = len(ordered)
    return {
        "p50": 1e3 * ordered[n // 2],
        "p99": 1e3 * ordered[min(n - 1, (99 * n) // 100)],
        "max": 1e3 * ordered[-1],
    }


def _emit(kind: str, payload: dict[str, Any]) -> None:
    sys.stdout.write(f"{kind} {json.dumps(payload)}\n")
    sys.stdout.flush()


async def _run(args: argparse.Namespace) -> int:
    users = {user_name(i): User(password=PASSWORD) for i in range(1, args.users + 1)}
    config = demo_lab()
    config = config.model_copy(update={"users": {**config.users, **users}})
    data_dir = Path(args.data_dir or tempfile.mkdtemp(prefix="qconnect-bench-"))
    settings = SwitchSettings(
        sip_port=0,
        rtp_ports=args.rtp_ports,
        transports=("udp",),
        rtp_timeout=args.rtp_timeout,
        data_dir=data_dir,
        record=args.record,
    )
    switch = Switch(settings, config)
    runner = Runner(switch)  # before start(): the clock binds the (timed) tick when it starts
    await switch.start()
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, done.set)

    def command() -> None:
        line = sys.stdin.readline()
        word = line.strip()
        if word == "mark":
            _emit("MARK", runner.mark())
        elif word == "stats":
            _emit("STATS", runner.stats())
        elif word in ("quit", "") or not line:
            done.set()
        else:
            _emit("ERROR", {"unknown command": word})

    loop.add_reader(sys.stdin.fileno(), command)
    _emit(
        "READY",
        {
            "sip_port": switch.endpoint.port,
            "uvloop": type(loop).__module__.startswith("uvloop"),
            "priority": args.priority,
            "cpus": sorted(os.sched_getaffinity(0)),
            "record_dir": str(data_dir / "recordings") if args.record else None,
        },
    )
    await done.wait()
    loop.remove_reader(sys.stdin.fileno())
    _emit("FINAL", runner.stats())
    with contextlib.suppress(Exception):
        await asyncio.wait_for(switch.stop(), 10)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, required=True, help="bench users u0001..uNNNN")
    parser.add_argument("--rtp-ports", type=_port_range, required=True, metavar="A-B")
    parser.add_argument("--data-dir", type=Path, help="recordings go to DATA_DIR/recordings")
    parser.add_argument("--record", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--rtp-timeout", type=float, default=30.0)
    parser.add_argument("--no-uvloop", dest="uvloop", action="store_false")
    parser.add_argument("--realtime", action="store_true", help="run at SCHED_RR priority")
    parser.add_argument("--cpu", type=int, help="run on this CPU only")
    args = parser.parse_args(argv)
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    args.priority = realtime_priority() if args.realtime else "normal"
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    if args.uvloop:
        _install_uvloop()
    return asyncio.run(_run(args))


if __name__ == "__main__":
    sys.exit(main())
