"""The drift-free media clock: pure schedule tests plus a short real-loop run of the driver."""

from __future__ import annotations

import asyncio

import pytest

from media.clock import ClockStats, DueTicks, MediaClock, TickSchedule


def test_ticks_fall_on_the_grid_from_start() -> None:
    schedule = TickSchedule(100.0)
    assert schedule.due(100.0) == DueTicks(0, 1, 0)
    assert schedule.next_deadline == pytest.approx(100.02)
    assert schedule.due(100.019) == DueTicks(1, 0, 0)
    assert schedule.due(100.020) == DueTicks(1, 1, 0)
    assert schedule.due(100.045) == DueTicks(2, 1, 0)
    # The late wake-up does not push later ticks back: tick 3 is still due at 100.06.
    assert schedule.next_deadline == pytest.approx(100.06)


def test_no_drift_over_a_long_run_with_jittery_wakeups() -> None:
    schedule = TickSchedule(0.0)
    ran = 0
    now = 0.0
    for i in range(50_000):
        deadline = schedule.next_deadline
        now = deadline + (0.004 if i % 7 == 0 else 0.0003)
        ran += schedule.due(now).count
    # 1000 s of ticks: exactly one per 20 ms, and the last deadline sits on the grid.
    assert ran == 50_000
    assert schedule.next_deadline == pytest.approx(50_000 * 0.020)
    assert schedule.skipped == 0


def test_catch_up_runs_all_overdue_ticks_when_a_little_late() -> None:
    schedule = TickSchedule(0.0, max_catch_up=5)
    schedule.due(0.0)
    due = schedule.due(0.081)  # ticks 1..4 overdue
    assert due == DueTicks(1, 4, 0) and list(due.indices) == [1, 2, 3, 4]
    assert schedule.next_deadline == pytest.approx(0.1)


def test_hopelessly_late_skips_and_counts() -> None:
    schedule = TickSchedule(0.0, max_catch_up=3)
    schedule.due(0.0)
    due = schedule.due(1.0)  # ticks 1..50 overdue
    assert due.skipped == 47 and due.count == 3 and list(due.indices) == [48, 49, 50]
    assert schedule.skipped == 47 and schedule.ticks == 4
    assert schedule.due(1.02) == DueTicks(51, 1, 0)


def test_before_start_nothing_is_due() -> None:
    schedule = TickSchedule(10.0)
    assert schedule.due(9.0) == DueTicks(0, 0, 0)
    assert schedule.next_deadline == 10.0


def test_a_hair_early_counts_as_on_time() -> None:
    schedule = TickSchedule(0.0)
    schedule.due(0.0)
    assert schedule.due(0.02 - 1e-9).count == 1


def test_lateness_percentiles() -> None:
    schedule = TickSchedule(0.0)
    for index in range(1000):
        late = 0.010 if index % 100 == 99 else 0.001  # 1 % of ticks are 10 ms late
        schedule.due(index * 0.020 + late)
    stats = schedule.stats()
    assert stats.ticks == 1000 and stats.skipped == 0
    assert stats.p50 == pytest.approx(0.001)
    assert 0.001 <= stats.p99 <= 0.010 and stats.max == pytest.approx(0.010)
    assert schedule.lateness_percentile(50) == pytest.approx(0.001)
    assert len(schedule.lateness()) == 1000


def test_catch_up_records_each_ticks_own_lateness() -> None:
    schedule = TickSchedule(0.0)
    schedule.due(0.0)
    schedule.due(0.065)  # ticks 1, 2, 3 late by 45, 25, 5 ms
    assert sorted(schedule.lateness().round(6).tolist()) == [0.0, 0.005, 0.025, 0.045]


def test_history_is_bounded_and_resettable() -> None:
    schedule = TickSchedule(0.0, history=10)
    for index in range(100):
        schedule.due(index * 0.02)
    assert len(schedule.lateness()) == 10
    schedule.reset_stats()
    assert schedule.stats() == ClockStats(100, 0, 0.0, 0.0, 0.0)


def test_invalid_parameters() -> None:
    with pytest.raises(ValueError):
        TickSchedule(0.0, period=0)
    with pytest.raises(ValueError):
        TickSchedule(0.0, max_catch_up=0)


async def test_media_clock_drives_callback_on_the_real_loop() -> None:
    loop = asyncio.get_running_loop()
    seen: list[tuple[int, float]] = []
    done = loop.create_future()

    def on_tick(index: int, now: float) -> None:
        seen.append((index, now))
        if index == 10:
            clock.stop()
            done.set_result(None)

    clock = MediaClock(loop, on_tick, period=0.01)
    assert clock.stats() == ClockStats(0, 0, 0.0, 0.0, 0.0)
    clock.start()
    with pytest.raises(RuntimeError):
        clock.start()
    await asyncio.wait_for(done, 2.0)
    assert not clock.running
    indices = [i for i, _ in seen]
    # On a loaded machine the loop may stall past the catch-up bound: the clock then skips
    # ticks (counted) rather than drift, so every tick is either delivered or skipped.
    assert indices == sorted(set(indices)) and indices[-1] == 10
    assert clock.schedule is not None
    assert len(indices) + clock.stats().skipped == 11 - indices[0]
    start = clock.schedule.start
    for index, now in seen:
        assert now >= start + index * 0.01 - 1e-6  # never early
    assert clock.stats().ticks == len(seen)


async def test_failing_tick_is_reported_and_the_clock_keeps_going() -> None:
    loop = asyncio.get_running_loop()
    errors: list[dict[str, object]] = []
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    done = loop.create_future()

    def on_tick(index: int, now: float) -> None:
        if index == 1:
            raise ZeroDivisionError("bad mix")
        if index == 3:
            clock.stop()
            done.set_result(None)

    clock = MediaClock(loop, on_tick, period=0.005)
    clock.start()
    await asyncio.wait_for(done, 2.0)
    loop.set_exception_handler(None)
    assert len(errors) == 1 and isinstance(errors[0]["exception"], ZeroDivisionError)
