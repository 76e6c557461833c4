"""The adaptive jitter buffer, driven by simulated arrivals and 20 ms ticks."""

from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from media.g711 import Law
from media.jitter import FrameKind, JitterBuffer, JitterFrame

TICK = 0.020
Arrival = tuple[float, int, int, bytes]  # arrival time, sequence, timestamp, payload


def frame_payload(index: int) -> bytes:
    # Distinct, loud-ish µ-law content per frame, so frames are identifiable and attenuable.
    return bytes(((index * 37 + k) % 96) + 16 for k in range(160))


def stream(
    count: int,
    *,
    start_ts: int = 1000,
    start_seq: int = 0,
    ptime_samples: int = 160,
    delay: float = 0.030,
    jitter: float = 0.0,
    seed: int = 0,
) -> list[Arrival]:
    rng = random.Random(seed)
    total = b"".join(frame_payload(i) for i in range(count * ptime_samples // 160 + 1))
    out = []
    for i in range(count):
        payload = total[i * ptime_samples : (i + 1) * ptime_samples]
        sent = i * ptime_samples / 8000
        arrival = sent + delay + (rng.uniform(0, jitter) if jitter else 0.0)
        out.append(
            (arrival, (start_seq + i) % 65536, (start_ts + i * ptime_samples) % 2**32, payload)
        )
    return out


def run(
    buffer: JitterBuffer, arrivals: list[Arrival], ticks: int, phase: float = 0.007
) -> list[JitterFrame | None]:
    pending = sorted(arrivals, key=lambda a: a[0])
    out: list[JitterFrame | None] = []
    for tick in range(ticks):
        now = tick * TICK + phase
        while pending and pending[0][0] <= now:
            arrival, seq, ts, payload = pending.pop(0)
            buffer.put(seq, ts, payload, arrival)
        out.append(buffer.get(now))
    return out


def audio(frames: list[JitterFrame | None]) -> list[bytes]:
    return [f.payload for f in frames if f is not None and f.kind is FrameKind.AUDIO]


def test_steady_stream_plays_bit_exact_in_order_after_prefetch() -> None:
    buffer = JitterBuffer()
    frames = run(buffer, stream(50), 60)
    assert frames[0] is None  # prefetching
    played = [f for f in frames if f is not None]
    assert [f.payload for f in played[:50]] == [frame_payload(i) for i in range(50)]
    assert all(f.kind is FrameKind.AUDIO for f in played[:50])
    assert [f.timestamp for f in played[:3]] == [1000, 1160, 1320]
    assert buffer.stats.frames_lost == 0 and buffer.stats.late == 0
    assert buffer.target_delay == pytest.approx(0.04)


def test_reordered_packets_play_in_order() -> None:
    arrivals = stream(40)
    for i in range(0, 40, 2):  # swap each pair: the even packet arrives 5 ms after the odd one
        a, b = arrivals[i], arrivals[i + 1]
        arrivals[i], arrivals[i + 1] = (b[0] + 0.005, *a[1:]), b
    frames = run(JitterBuffer(), arrivals, 50)
    assert audio(frames)[:40] == [frame_payload(i) for i in range(40)]


def test_duplicates_are_dropped() -> None:
    arrivals = stream(30)
    arrivals += [(a[0] + 0.001, *a[1:]) for a in arrivals[::3]]
    buffer = JitterBuffer()
    frames = run(buffer, arrivals, 40)
    assert audio(frames)[:30] == [frame_payload(i) for i in range(30)]
    assert buffer.stats.duplicates == 10


def test_single_loss_is_concealed_by_attenuated_repeat() -> None:
    arrivals = [a for a in stream(30) if a[1] != 10]
    buffer = JitterBuffer()
    played = [f for f in run(buffer, arrivals, 40) if f is not None]
    assert played[10].kind is FrameKind.CONCEALED
    expected = Law.ULAW.gain_table(0.8)[np.frombuffer(frame_payload(9), np.uint8)].tobytes()
    assert played[10].payload == expected and played[10].timestamp == 1000 + 10 * 160
    assert played[11].kind is FrameKind.AUDIO and played[11].payload == frame_payload(11)
    assert buffer.stats.frames_lost == 1


def test_burst_loss_fades_then_goes_silent() -> None:
    arrivals = [a for a in stream(40) if not 10 <= a[1] < 16]
    buffer = JitterBuffer(min_delay=0.16)  # deep enough that packet 16 is already waiting
    played = [f for f in run(buffer, arrivals, 60) if f is not None]
    kinds = [f.kind for f in played[10:17]]
    assert kinds == [FrameKind.CONCEALED] * 3 + [FrameKind.SILENCE] * 3 + [FrameKind.AUDIO]
    assert played[13].payload == bytes([Law.ULAW.silence]) * 160
    decoded = [np.abs(Law.ULAW.decode(f.payload).astype(int)).mean() for f in played[9:13]]
    assert decoded[0] > decoded[1] > decoded[2] > decoded[3]
    assert played[16].payload == frame_payload(16)
    assert buffer.stats.frames_lost == 6


def test_burst_loss_on_a_shallow_buffer_fades_then_idles_then_resumes() -> None:
    arrivals = [a for a in stream(40) if not 10 <= a[1] < 16]
    buffer = JitterBuffer()
    frames = run(buffer, arrivals, 60)
    start = next(i for i, f in enumerate(frames) if f is not None)
    gap = frames[start + 10 : start + 14]
    assert [f.kind if f else None for f in gap] == [FrameKind.CONCEALED] * 3 + [None]
    assert audio(frames)[10:][:24] == [frame_payload(i) for i in range(16, 40)]


def test_late_packet_is_dropped() -> None:
    arrivals = stream(30)
    arrival, seq, ts, payload = arrivals[10]
    arrivals[10] = (arrival + 0.2, seq, ts, payload)  # far behind its playout time
    buffer = JitterBuffer()
    played = [f for f in run(buffer, arrivals, 40) if f is not None]
    assert buffer.stats.late == 1
    assert played[10].kind is FrameKind.CONCEALED and played[11].payload == frame_payload(11)


def test_underrun_holds_the_cursor_and_loses_nothing() -> None:
    arrivals = stream(40)
    # Packets 10-14 are stuck for 70 ms and then arrive together.
    arrivals = [
        (a[0] + (0.07 - (a[1] - 10) * TICK) if 10 <= a[1] < 14 else a[0], *a[1:]) for a in arrivals
    ]
    buffer = JitterBuffer()
    frames = run(buffer, arrivals, 60)
    assert audio(frames)[:40] == [frame_payload(i) for i in range(40)]
    assert buffer.stats.underruns >= 1 and buffer.stats.frames_lost == 0
    assert any(f is not None and f.kind is FrameKind.CONCEALED for f in frames)


def test_target_adapts_to_jitter_within_bounds() -> None:
    calm = JitterBuffer()
    run(calm, stream(200), 210)
    assert calm.target_delay == pytest.approx(0.04)
    noisy = JitterBuffer()
    run(noisy, stream(500, jitter=0.060, seed=3), 510)
    assert 0.06 <= noisy.target_delay <= 0.2
    wild = JitterBuffer(max_delay=0.1)
    run(wild, stream(300, jitter=0.5, seed=4), 330)
    assert wild.target_delay == pytest.approx(0.1)


def test_adapted_buffer_loses_little_under_jitter() -> None:
    buffer = JitterBuffer()
    run(buffer, stream(1500, jitter=0.050, seed=9), 1520)
    # After adapting, most packets are in time: under 5 % late.
    assert buffer.stats.late < 1500 * 0.05
    assert buffer.stats.frames_played > 1400


def test_delay_shrinks_after_a_burst() -> None:
    arrivals = stream(200)
    # A 200 ms stall releases 10 packets at once; afterwards the network is calm again.
    arrivals = [(max(a[0], 0.5) if 15 <= a[1] < 25 else a[0], *a[1:]) for a in arrivals]
    buffer = JitterBuffer(shrink_after=10)
    levels = []
    pending = sorted(arrivals)
    for tick in range(220):
        now = tick * TICK + 0.007
        while pending and pending[0][0] <= now:
            arrival, seq, ts, payload = pending.pop(0)
            buffer.put(seq, ts, payload, arrival)
        buffer.get(now)
        levels.append(buffer.level)
    assert max(levels) >= 0.1
    assert buffer.stats.frames_dropped >= 1
    assert levels[-20] <= buffer.target_delay + buffer.frame_duration + 1e-9


def test_end_of_talkspurt_goes_idle_and_next_talkspurt_restarts() -> None:
    first = stream(20)
    second = stream(20, start_ts=1000 + 20 * 160 + 8000 * 3, start_seq=20, delay=2.0)
    buffer = JitterBuffer()
    frames = run(buffer, first + second, 160)
    start = next(i for i, f in enumerate(frames) if f is not None)
    tail = frames[start + 20 : start + 24]
    assert [f.kind if f else None for f in tail] == [FrameKind.CONCEALED] * 3 + [None]
    assert frames[start + 30] is None and buffer.stats.resyncs == 0
    assert audio(frames) == [frame_payload(i) for i in range(20)] * 2
    assert not buffer.playing


def test_ptime_30_is_reframed_into_20ms_frames() -> None:
    arrivals = stream(40, ptime_samples=240)
    frames = run(JitterBuffer(), arrivals, 70)
    played = b"".join(audio(frames))
    expected = b"".join(frame_payload(i) for i in range(60))
    assert played[: 59 * 160] == expected[: 59 * 160]


def test_ptime_10_is_reframed_into_20ms_frames() -> None:
    arrivals = stream(80, ptime_samples=80)
    frames = run(JitterBuffer(), arrivals, 60)
    assert audio(frames)[:39] == [frame_payload(i) for i in range(39)]


def test_timestamp_and_sequence_wrap() -> None:
    arrivals = stream(40, start_ts=2**32 - 160 * 5, start_seq=65530)
    buffer = JitterBuffer()
    frames = run(buffer, arrivals, 50)
    assert audio(frames)[:40] == [frame_payload(i) for i in range(40)]
    played = [f for f in frames if f is not None]
    assert played[5].timestamp == 0 and played[6].timestamp == 160
    assert buffer.stats.resyncs == 0 and buffer.stats.duplicates == 0


def test_sender_restart_resyncs() -> None:
    first = stream(25)
    second = [
        (a[0], a[1], a[2], a[3][::-1])
        for a in stream(25, start_ts=3_000_000, start_seq=500, delay=0.03 + 25 * TICK)
    ]
    buffer = JitterBuffer()
    frames = run(buffer, first + second, 70)
    assert buffer.stats.resyncs == 1
    played = audio(frames)
    restarted = played.index(second[0][3])
    assert played[restarted:] == [a[3] for a in second][: len(played) - restarted]
    assert played[:restarted] == [frame_payload(i) for i in range(restarted)]


def test_alaw_silence_and_empty_payload() -> None:
    buffer = JitterBuffer(Law.ALAW)
    assert not buffer.put(1, 0, b"", 0.0)
    arrivals = [a for a in stream(30) if not 10 <= a[1] < 15]
    played = [f for f in run(buffer, arrivals, 40) if f is not None]
    assert played[13].payload == bytes([0xD5]) * 160


def test_invalid_bounds() -> None:
    with pytest.raises(ValueError):
        JitterBuffer(min_delay=0.3, max_delay=0.2)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.floats(0, 3.0),
            st.integers(0, 65535),
            st.integers(0, 2**32 - 1),
            st.binary(min_size=0, max_size=400),
        ),
        max_size=80,
    )
)
def test_arbitrary_input_never_crashes_and_frames_are_whole(arrivals: list[Arrival]) -> None:
    buffer = JitterBuffer()
    for frame in run(buffer, arrivals, 160):
        if frame is not None:
            assert len(frame.payload) == 160 and 0 <= frame.timestamp < 2**32
    assert buffer.level >= 0
