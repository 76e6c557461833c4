"""Micro benchmark of one conference-bridge tick (no test; run by hand).

    .venv/bin/python benchmarks/bridge_tick.py

Prints the median wall time of ``Bridge.write`` for every source plus one
``Bridge.tick()`` at 20, 200 and 600 ports, for three routings: two-party
calls (ports/2 bridged calls), 3-party conferences, and one all-hear-all
conference of every port (the worst case, mixed by a dense matrix product).
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from media.bridge import FRAME_SAMPLES, Bridge  # noqa: E402

PORT_COUNTS = (20, 200, 600)
TICKS = 400


def pairs(bridge: Bridge, slots: list[int]) -> None:
    for a, b in zip(slots[0::2], slots[1::2], strict=True):
        bridge.connect(a, b)
        bridge.connect(b, a)


def threes(bridge: Bridge, slots: list[int]) -> None:
    for i in range(0, len(slots) - 2, 3):
        bridge.conference(slots[i : i + 3])


def everyone(bridge: Bridge, slots: list[int]) -> None:
    bridge.conference(slots)


def bench(n_ports: int, route: Callable[[Bridge, list[int]], None]) -> float:
    bridge = Bridge()
    slots = [bridge.add_port(f"leg{i}") for i in range(n_ports)]
    route(bridge, slots)
    rng = np.random.default_rng(7)
    frames = rng.integers(-8000, 8000, size=(n_ports, FRAME_SAMPLES), dtype=np.int16)
    samples = []
    for _ in range(TICKS):
        t0 = time.perf_counter()
        for slot, frame in zip(slots, frames, strict=True):
            bridge.write(slot, frame)
        bridge.tick()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples[TICKS // 10 :]) * 1e3


def main() -> None:
    routings = (("2-party calls", pairs), ("3-party confs", threes), ("one conference", everyone))
    print(f"{'ports':>6} | " + " | ".join(f"{name:>15}" for name, _ in routings))
    print("-" * 7 + "+" + "+".join("-" * 17 for _ in routings))
    for n in PORT_COUNTS:
        cells = [f"{bench(n, route):>12.3f} ms" for _, route in routings]
        print(f"{n:>6} | " + " | ".join(cells))
    print("\nmedian of write() for every port + one tick(), in milliseconds")


if __name__ == "__main__":
    main()
