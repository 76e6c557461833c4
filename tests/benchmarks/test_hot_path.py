"""The media hot path's shortcuts give exactly what the general code gives.

- `RtpSender.datagram` is byte for byte `RtpSender.packet(...).serialize()`;
- a `MediaStream` fed plain packets (header read in place) ends in the same state as one fed
  the same packets with padding (which takes the full parse);
- the optimised `JitterBuffer` plays the same frames, kinds, timestamps and counters as the
  buffer before the optimisation (`reference_jitter.py`), over realistic and arbitrary input.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import random
import sys
from pathlib import Path
from types import ModuleType

from hypothesis import given, settings
from hypothesis import strategies as st

from media.g711 import Law
from media.jitter import JitterBuffer
from media.rtp import RtpPacket, RtpSender
from media.sdp import Direction
from media.stream import MediaStream, StreamConfig

TICK = 0.020
Arrival = tuple[float, int, int, bytes]


def _reference() -> ModuleType:
    path = Path(__file__).with_name("reference_jitter.py")
    spec = importlib.util.spec_from_file_location("reference_jitter", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["reference_jitter"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


reference = _reference()


# --- RtpSender.datagram -------------------------------------------------------------------------


def test_datagram_is_the_serialised_packet_across_talkspurts_and_wraps() -> None:
    fast = RtpSender(8, ssrc=0xDEADBEEF, sequence=65534, timestamp=2**32 - 200)
    slow = RtpSender(8, ssrc=0xDEADBEEF, sequence=65534, timestamp=2**32 - 200)
    for i in range(6):
        payload = bytes([i]) * 160
        if i == 3:  # a silence gap: the next packet starts a talkspurt (marker)
            fast.skip(160)
            slow.skip(160)
        assert (
            fast.datagram(payload, now=i * TICK) == slow.packet(payload, now=i * TICK).serialize()
        )
    assert (fast.sequence, fast.timestamp, fast.packet_count, fast.octet_count) == (
        slow.sequence,
        slow.timestamp,
        slow.packet_count,
        slow.octet_count,
    )
    assert (fast.last_timestamp, fast.last_sent_at) == (slow.last_timestamp, slow.last_sent_at)


# --- MediaStream: plain packets read in place vs the full parse -------------------------------


def _stream() -> MediaStream:
    config = StreamConfig(
        payload_type=0,
        law=Law.ULAW,
        dtmf_payload_type=101,
        direction=Direction.SENDRECV,
        remote=("127.0.0.1", 4000),
    )
    return MediaStream(config, 0.0, rtp_timeout=5.0)


def test_plain_and_padded_packets_reach_the_same_state() -> None:
    plain, padded = _stream(), _stream()
    rng = random.Random(3)
    order = list(range(60))
    for i in range(0, 60, 6):  # some reordering
        rng.shuffle(order[i : i + 6])
    for n, i in enumerate(order):
        payload = bytes((i * 7 + k) % 256 for k in range(160))
        packet = RtpPacket(0, (65500 + i) % 65536, (2**32 - 4000 + 160 * i) % 2**32, 77, payload)
        wire = packet.serialize()
        assert wire[0] == 0x80
        padded_wire = RtpPacket(
            0, packet.sequence, packet.timestamp, 77, payload, padding=4
        ).serialize()
        now = 0.03 + n * TICK + rng.uniform(0, 0.01)
        plain.receive_datagram(wire, ("127.0.0.1", 4000), now)
        padded.receive_datagram(padded_wire, ("127.0.0.1", 4000), now)
    plain.receive_datagram(b"\x80\x00", ("127.0.0.1", 4000), 1.3)  # runt: malformed
    padded.receive_datagram(b"\x80\x00", ("127.0.0.1", 4000), 1.3)
    plain.receive_datagram(wire, ("10.0.0.9", 4000), 1.3)  # a stray source: refused
    padded.receive_datagram(padded_wire, ("10.0.0.9", 4000), 1.3)
    assert plain.session.counters == padded.session.counters
    assert plain.session.counters.malformed == 1 and plain.session.counters.foreign == 1
    assert plain.session.stats is not None and padded.session.stats is not None
    assert plain.session.stats.expected == padded.session.stats.expected == 60
    assert plain.session.stats.jitter_units == padded.session.stats.jitter_units
    assert plain.events(2.0) == padded.events(2.0)
    frames = [(plain.read_payload(t * TICK), padded.read_payload(t * TICK)) for t in range(110)]
    assert all(a == b for a, b in frames)
    assert sum(1 for a, _ in frames if a is not None) >= 60
    assert plain.jitter.stats == padded.jitter.stats


def test_audio_datagram_waits_for_dtmf_then_resumes() -> None:
    stream = _stream()
    stream.send_dtmf("5", 0.0)
    assert stream.audio_datagram(bytes(160), 0.0) is None  # the event goes first
    sent = [stream.packets_for(bytes(160), t * TICK) for t in range(30)]
    assert any(p and p[0].payload_type == 101 for p in sent)
    datagram = stream.audio_datagram(bytes(160), 0.7)
    assert datagram is not None and RtpPacket.parse(datagram).payload_type == 0


# --- JitterBuffer against the reference -------------------------------------------------------


def _compare(arrivals: list[Arrival], ticks: int, phase: float = 0.007) -> None:
    fast, slow = JitterBuffer(), reference.JitterBuffer()
    pending = sorted(arrivals, key=lambda a: a[0])
    for tick in range(ticks):
        now = tick * TICK + phase
        while pending and pending[0][0] <= now:
            arrival, seq, ts, payload = pending.pop(0)
            assert fast.put(seq, ts, payload, arrival) == slow.put(seq, ts, payload, arrival)
        got, want = fast.get(now), slow.get(now)
        if want is None:
            assert got is None, tick
        else:
            assert got is not None, tick
            assert (got.payload, got.timestamp, got.kind.value) == (
                want.payload,
                want.timestamp,
                want.kind.value,
            ), tick
    assert dataclasses.astuple(fast.stats) == dataclasses.astuple(slow.stats)
    assert fast.jitter == slow.jitter and fast.level == slow.level


def _talk(count: int, jitter: float, seed: int, ptime: int = 160) -> list[Arrival]:
    rng = random.Random(seed)
    out = []
    for i in range(count):
        if rng.random() < 0.03:
            continue  # lost
        payload = bytes(((i * 37 + k) % 96) + 16 for k in range(ptime))
        arrival = i * ptime / 8000 + 0.03 + rng.uniform(0, jitter)
        out.append((arrival, (65000 + i) % 65536, (2**32 - 8000 + i * ptime) % 2**32, payload))
        if rng.random() < 0.02:
            out.append((arrival + 0.005, (65000 + i) % 65536, out[-1][2], payload))  # duplicate
    return out


def test_steady_jittery_and_reframed_streams_match_the_reference() -> None:
    _compare(_talk(300, 0.0, 1), 320)
    _compare(_talk(300, 0.015, 2), 330)
    _compare(_talk(300, 0.080, 3), 340)
    _compare(_talk(400, 0.010, 4, ptime=80), 220)
    _compare(_talk(200, 0.010, 5, ptime=240), 320)


@settings(max_examples=80, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.floats(0, 3.0),
            st.integers(0, 65535),
            st.integers(0, 2**32 - 1),
            st.binary(min_size=0, max_size=400),
        ),
        max_size=80,
    ),
    st.floats(0.0, 0.0199),
)
def test_arbitrary_input_matches_the_reference(arrivals: list[Arrival], phase: float) -> None:
    _compare(arrivals, 160, phase)


@settings(max_examples=80, deadline=None)
@given(
    st.integers(0, 2**32 - 1),
    st.lists(
        st.tuples(st.floats(-0.02, 0.1), st.sampled_from([80, 160, 160, 160, 240])), max_size=120
    ),
)
def test_near_steady_input_matches_the_reference(
    start: int, steps: list[tuple[float, int]]
) -> None:
    # Mostly-ordered streams with varied packet sizes and arrival noise: the shortcut's path.
    arrivals: list[Arrival] = []
    ts, at = start, 0.0
    for seq, (noise, size) in enumerate(steps):
        at += size / 8000
        arrivals.append((max(0.0, at + noise), seq % 65536, ts % 2**32, bytes([seq % 250]) * size))
        ts += size
    _compare(arrivals, 200)
