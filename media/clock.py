"""The process's one media clock: a 20 ms tick that never drifts.

Tick *k* is due at ``start + k * period``, computed from the start every time, never by
adding periods to "now": a late wake-up makes the next tick come sooner instead of shifting
every later one (the drift a ``sleep(0.02)`` loop accumulates). When the loop was so busy that
many ticks are overdue the clock catches up at most `max_catch_up` of them at once and skips
(and counts) the rest, because a burst of stale mixes helps nobody.

`TickSchedule` is the sans-I/O part (give it `now`, it says which ticks are due and records
their lateness); `MediaClock` drives it with ``loop.call_at`` and calls a plain function per
tick. That callback must not await: one tick of every mix happens inside it.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

PERIOD = 0.020
# A timer may fire a hair before its deadline (asyncio runs handles due within the clock
# resolution); such a tick counts as due, with zero lateness.
_EARLY_TOLERANCE = 1e-6


@dataclass(frozen=True, slots=True)
class DueTicks:
    """Ticks to run now: indices ``first .. first + count - 1``; `skipped` were abandoned."""

    first: int
    count: int
    skipped: int

    @property
    def indices(self) -> range:
        return range(self.first, self.first + self.count)


@dataclass(frozen=True, slots=True)
class ClockStats:
    """Lateness of executed ticks in seconds (over the recent `history` window)."""

    ticks: int
    skipped: int
    p50: float
    p99: float
    max: float


class TickSchedule:
    """Which ticks are due at `now`, from a fixed start; lateness is recorded per tick run."""

    def __init__(
        self,
        start: float,
        period: float = PERIOD,
        *,
        max_catch_up: int = 5,
        history: int = 60_000,
    ) -> None:
        if period <= 0 or max_catch_up < 1 or history < 1:
            raise ValueError("period, max_catch_up and history must be positive")
        self.start = start
        self.period = period
        self.max_catch_up = max_catch_up
        self.next_index = 0
        self.ticks = 0
        self.skipped = 0
        self._lateness = np.zeros(history, dtype=np.float64)
        self._recorded = 0

    def deadline(self, index: int) -> float:
        return self.start + index * self.period

    @property
    def next_deadline(self) -> float:
        return self.deadline(self.next_index)

    def due(self, now: float) -> DueTicks:
        """Claim every tick due by `now` (bounded catch-up) and record their lateness."""
        elapsed = now - self.start + _EARLY_TOLERANCE
        last_due = math.floor(elapsed / self.period) if elapsed >= 0 else -1
        count = last_due - self.next_index + 1
        if count <= 0:
            return DueTicks(self.next_index, 0, 0)
        skipped = max(0, count - self.max_catch_up)
        first = self.next_index + skipped
        count -= skipped
        for index in range(first, first + count):
            self._record(max(0.0, now - self.deadline(index)))
        self.next_index = last_due + 1
        self.ticks += count
        self.skipped += skipped
        return DueTicks(first, count, skipped)

    def _record(self, lateness: float) -> None:
        self._lateness[self._recorded % len(self._lateness)] = lateness
        self._recorded += 1

    def lateness(self) -> npt.NDArray[np.float64]:
        """The recorded lateness samples: the most recent `history` of them, in ring order."""
        return self._lateness[: min(self._recorded, len(self._lateness))].copy()

    def lateness_percentile(self, percent: float) -> float:
        samples = self._lateness[: min(self._recorded, len(self._lateness))]
        return float(np.percentile(samples, percent)) if samples.size else 0.0

    def stats(self) -> ClockStats:
        samples = self._lateness[: min(self._recorded, len(self._lateness))]
        if not samples.size:
            return ClockStats(self.ticks, self.skipped, 0.0, 0.0, 0.0)
        p50, p99 = np.percentile(samples, [50, 99])
        return ClockStats(self.ticks, self.skipped, float(p50), float(p99), float(samples.max()))

    def reset_stats(self) -> None:
        """Forget lateness so far (e.g. after warm-up in a benchmark)."""
        self._recorded = 0


TickCallback = Callable[[int, float], None]


class MediaClock:
    """Runs `callback(tick_index, now)` every `period` on `loop`, from a monotonic start."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        callback: TickCallback,
        *,
        period: float = PERIOD,
        max_catch_up: int = 5,
    ) -> None:
        self._loop = loop
        self._callback = callback
        self._period = period
        self._max_catch_up = max_catch_up
        self._handle: asyncio.TimerHandle | None = None
        self.schedule: TickSchedule | None = None

    @property
    def running(self) -> bool:
        return self._handle is not None

    def start(self) -> None:
        if self._handle is not None:
            raise RuntimeError("media clock already running")
        start = self._loop.time()
        self.schedule = TickSchedule(start, self._period, max_catch_up=self._max_catch_up)
        self._handle = self._loop.call_at(start, self._on_timer)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def stats(self) -> ClockStats:
        if self.schedule is None:
            return ClockStats(0, 0, 0.0, 0.0, 0.0)
        return self.schedule.stats()

    def _on_timer(self) -> None:
        schedule = self.schedule
        if schedule is None or self._handle is None:
            return
        now = self._loop.time()
        for index in schedule.due(now).indices:
            try:
                self._callback(index, now)
            except Exception as exc:  # one bad tick must not stop every call's audio
                self._loop.call_exception_handler(
                    {"message": f"media clock tick {index} failed", "exception": exc}
                )
            if self._handle is None:  # the callback stopped the clock
                return
        self._handle = self._loop.call_at(schedule.next_deadline, self._on_timer)


__all__ = ["PERIOD", "ClockStats", "DueTicks", "MediaClock", "TickCallback", "TickSchedule"]
