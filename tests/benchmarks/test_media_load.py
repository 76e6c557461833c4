"""Smoke test of the media load benchmark: 3 bridged calls for 2 s, numbers that make sense.

The speed target (300 calls, p99 < 5 ms) is the benchmark's verdict, never asserted here;
this only proves the harness sets up real calls, moves real audio and measures the switch.
"""

from __future__ import annotations

import argparse

from benchmarks.media_load import SizeResult, _parser, run_size, table, verdict


async def test_three_calls_for_two_seconds() -> None:
    args: argparse.Namespace = _parser().parse_args(
        ["--calls", "3", "--seconds", "2", "--windows", "2", "--warmup", "1", "--no-record"]
    )
    result: SizeResult = await run_size(3, args)

    assert result.legs == 6 and len(result.windows) == 2
    # Every phone heard the other party's tone and not its own, bit-exact (both legs G.711
    # of the same law, no mixing): the audio really went through the switch's bridge.
    assert result.tones_ok == 6
    assert result.bit_exact == 1.0
    # About 50 packets per second per phone for 3+ seconds, all of them accepted.
    assert result.sent >= 6 * 50 * 3 * 0.9
    assert result.accepted == result.sent
    assert result.down_loss == 0.0 and result.dropped == 0
    for window in result.windows:
        assert 0.0 <= window.p50 <= window.p99 <= window.max < 1000.0
        assert 0.0 <= window.tick_p50 <= window.tick_p99 < 1000.0
        assert 0.0 < window.cpu_percent < 200.0
        assert window.cpu_ms_per_call_second > 0.0
    text = table([result])
    assert "| 3 | no |" in text
    assert verdict(result).startswith("3 calls (not recording): p99 lateness")
