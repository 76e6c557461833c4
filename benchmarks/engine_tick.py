"""Micro benchmark of the media engine's per-tick work, in one process, on synthetic time.

    .venv/bin/python -m benchmarks.engine_tick [--calls 10 100 300] [--ticks 500] [--profile]

Builds a real `MediaEngine` with 2N legs bridged in pairs (real RTP sockets, SDP answered for
phones at one loopback sink), then for each tick feeds every leg one plain G.711 packet
through `MediaStream.receive_datagram` and runs `MediaEngine._tick` by hand with a synthetic
20 ms clock. Prints the median cost of the receive side (all legs) and of one tick, with and
without recording, per leg. The clock is not running, so nothing else competes: this is the
engine's own CPU cost, the part `benchmarks.media_load` cannot separate from the kernel's
and other processes'. `--profile` prints cProfile's top functions for the largest size.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import statistics
import struct
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from media.g711 import Law
from media.sdp import PCMU, make_offer
from telephony.cli import _install_uvloop
from telephony.switch.media_engine import EngineLeg, MediaEngine
from telephony.switch.rtp_ports import PortRange

HOST = "127.0.0.1"
FRAME = 160
PERIOD = 0.020
_HEADER = struct.Struct("!BBHII")


class _Sink(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.received = 0

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.received += 1


async def _engine(
    calls: int, record: bool, ports: tuple[int, int]
) -> tuple[MediaEngine, list[EngineLeg], asyncio.DatagramTransport, int]:
    loop = asyncio.get_running_loop()
    sink, _ = await loop.create_datagram_endpoint(_Sink, local_addr=(HOST, 0))
    sink_port = sink.get_extra_info("sockname")[1]
    record_dir = Path(tempfile.mkdtemp(prefix="qconnect-tick-")) if record else None
    engine = MediaEngine(
        bind=HOST, advertise=HOST, ports=PortRange(*ports), record_dir=record_dir, rtp_timeout=None
    )
    engine.start()
    assert engine.clock is not None
    engine.clock.stop()  # ticks are driven by hand on a synthetic clock
    legs = []
    for i in range(2 * calls):
        leg = await engine.open_leg(f"bench{i}")
        leg.answer(make_offer(address=HOST, port=sink_port, codecs=(PCMU,)).serialize())
        legs.append(leg)
    for a, b in zip(legs[::2], legs[1::2], strict=True):
        engine.connect(a, b)
    return engine, legs, sink, sink_port


async def measure(calls: int, ticks: int, record: bool, profile: bool) -> tuple[float, float]:
    base = 40000 + (calls % 7) * 1000
    engine, legs, sink, sink_port = await _engine(calls, record, (base, base + 4 * calls + 100))
    tone = Law.ULAW.encode(
        np.round(8000 * np.sin(2 * np.pi * 440 * np.arange(8000) / 8000)).astype(np.int16)
    ).tobytes()
    frames = [tone[i : i + FRAME] for i in range(0, 8000, FRAME)]
    source = (HOST, sink_port)
    receive_times: list[float] = []
    tick_times: list[float] = []
    profiler = cProfile.Profile() if profile else None
    for tick in range(ticks):
        now = 1000.0 + tick * PERIOD
        packets = [
            _HEADER.pack(0x80, 0, (tick + i) & 0xFFFF, (tick * FRAME) & 0xFFFFFFFF, 1000 + i)
            + frames[tick % 50]
            for i in range(len(legs))
        ]
        if profiler is not None and tick >= ticks // 5:
            profiler.enable()
        started = time.perf_counter()
        for leg, packet in zip(legs, packets, strict=True):
            stream = leg.stream
            assert stream is not None
            stream.receive_datagram(packet, source, now - 0.005)
        received = time.perf_counter()
        engine._tick(tick, now)
        done = time.perf_counter()
        if profiler is not None:
            profiler.disable()
        receive_times.append(received - started)
        tick_times.append(done - received)
        await asyncio.sleep(0)  # let the sink drain the socket buffers
    engine.stop()
    sink.close()
    if profiler is not None:
        pstats.Stats(profiler, stream=sys.stdout).sort_stats("tottime").print_stats(25)
    skip = ticks // 5  # warm-up: jitter buffers filling, caches
    return statistics.median(receive_times[skip:]), statistics.median(tick_times[skip:])


async def _main(args: argparse.Namespace) -> None:
    print("| calls | legs | rec | receive all legs ms | tick ms | µs per leg (receive + tick) |")
    print("|---:|---:|---:|---:|---:|---:|")
    for calls in args.calls:
        for record in (False, True):
            profile = args.profile and calls == max(args.calls) and record == args.record_profile
            receive, tick = await measure(calls, args.ticks, record, profile)
            legs = 2 * calls
            print(
                f"| {calls} | {legs} | {'yes' if record else 'no'} | {1e3 * receive:.2f} | "
                f"{1e3 * tick:.2f} | {1e6 * (receive + tick) / legs:.1f} |",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, nargs="+", default=[10, 100, 300])
    parser.add_argument("--ticks", type=int, default=500)
    parser.add_argument("--profile", action="store_true", help="cProfile the largest size")
    parser.add_argument(
        "--record-profile", action="store_true", help="profile the recording run instead"
    )
    args = parser.parse_args()
    _install_uvloop()  # as the switch runs
    asyncio.run(_main(args))


if __name__ == "__main__":
    main()
