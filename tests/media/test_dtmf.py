"""RFC 4733 payloads, the per-press receiver, the sender and SIP INFO bodies."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from media.dtmf import (
    DIGITS,
    DtmfDigit,
    DtmfError,
    DtmfReceiver,
    DtmfSender,
    TelephoneEvent,
    event_code,
    event_digit,
    info_body,
    parse_info_body,
    plan_digit,
)
from media.rtp import RtpPacket, RtpSender

PT = 101


def _pkt(
    ts: int, event: int, duration: int, *, end: bool = False, marker: bool = False, seq: int = 0
) -> RtpPacket:
    payload = TelephoneEvent(event, end, 10, duration).serialize()
    return RtpPacket(PT, seq % 65536, ts, 1, payload, marker)


def _press(ts: int, event: int, seq0: int = 0, duration: int = 800) -> list[RtpPacket]:
    """A typical press on the wire: marked start, updates, three end packets."""
    packets = [_pkt(ts, event, 160, marker=True, seq=seq0)]
    packets += [
        _pkt(ts, event, d, seq=seq0 + i + 1) for i, d in enumerate(range(560, duration, 400))
    ]
    n = len(packets)
    packets += [_pkt(ts, event, duration, end=True, seq=seq0 + n + i) for i in range(3)]
    return packets


def _feed(receiver: DtmfReceiver, packets: list[RtpPacket], start: float = 0.0) -> list[DtmfDigit]:
    out: list[DtmfDigit] = []
    for i, packet in enumerate(packets):
        out += receiver.receive(packet, start + i * 0.02)
    return out


# -- payload --------------------------------------------------------------------------------


@given(st.integers(0, 255), st.booleans(), st.integers(0, 63), st.integers(0, 0xFFFF))
def test_payload_round_trip(event: int, end: bool, volume: int, duration: int) -> None:
    value = TelephoneEvent(event, end, volume, duration)
    assert TelephoneEvent.parse(value.serialize()) == value


def test_payload_wire_layout() -> None:
    assert TelephoneEvent(11, True, 10, 800).serialize() == bytes([11, 0x8A, 0x03, 0x20])
    # The reserved R bit is ignored.
    assert TelephoneEvent.parse(bytes([5, 0xCA, 0, 160])) == TelephoneEvent(5, True, 10, 160)


@given(st.binary(max_size=8))
def test_payload_garbage(data: bytes) -> None:
    try:
        TelephoneEvent.parse(data)
    except DtmfError:
        assert len(data) < 4


@pytest.mark.parametrize("kwargs", [{"event": 256}, {"volume": 64}, {"duration": 65536}])
def test_payload_field_ranges(kwargs: dict[str, int]) -> None:
    fields = {"event": 1, "volume": 10, "duration": 0} | kwargs
    with pytest.raises(DtmfError):
        TelephoneEvent(**fields)  # type: ignore[arg-type]


def test_digit_codes() -> None:
    assert [event_code(d) for d in DIGITS] == list(range(16))
    assert event_code("a") == 12 and event_code("!") == 16
    assert event_digit(11) == "#" and event_digit(16) == "!" and event_digit(40) is None
    for bad in ("", "E", "12", "x"):
        with pytest.raises(DtmfError):
            event_code(bad)


# -- receiver -------------------------------------------------------------------------------


def test_one_digit_per_press_despite_redundant_ends() -> None:
    receiver = DtmfReceiver()
    digits = _feed(receiver, _press(1000, 5))
    assert digits == [DtmfDigit("5", 0.1)]
    assert receiver.get_timer() is None


def test_same_digit_twice_is_two_presses() -> None:
    receiver = DtmfReceiver()
    packets = _press(1000, 1) + _press(3000, 1, seq0=10)
    assert [d.digit for d in _feed(receiver, packets)] == ["1", "1"]


def test_lost_start_packet_still_reports() -> None:
    receiver = DtmfReceiver()
    assert _feed(receiver, _press(1000, 9)[1:]) == [DtmfDigit("9", 0.1)]


def test_reordered_and_duplicated_packets() -> None:
    receiver = DtmfReceiver()
    packets = _press(1000, 10)
    shuffled = [packets[0], packets[2], packets[1], packets[3], packets[3], packets[4], packets[2]]
    assert _feed(receiver, shuffled) == [DtmfDigit("*", 0.1)]


def test_all_ends_lost_reported_when_next_press_starts() -> None:
    receiver = DtmfReceiver()
    first = [p for p in _press(1000, 2) if not TelephoneEvent.parse(p.payload).end]
    digits = _feed(receiver, first + _press(5000, 3, seq0=20))
    assert [d.digit for d in digits] == ["2", "3"]
    assert digits[0].duration == pytest.approx(560 / 8000)


def test_all_ends_lost_reported_after_timeout() -> None:
    receiver = DtmfReceiver(timeout=0.5)
    receiver.receive(_pkt(1000, 11, 160, marker=True), now=10.0)
    receiver.receive(_pkt(1000, 11, 560), now=10.05)
    assert receiver.get_timer() == pytest.approx(10.55)
    assert receiver.handle_timer(10.5) == []
    assert receiver.handle_timer(10.55) == [DtmfDigit("#", 0.07)]
    assert receiver.get_timer() is None
    # A straggling end packet of that press is not a second press.
    assert receiver.receive(_pkt(1000, 11, 800, end=True), now=10.6) == []


def test_non_dtmf_events_and_malformed_payloads_are_ignored() -> None:
    receiver = DtmfReceiver()
    assert _feed(receiver, _press(1000, 70)) == []
    assert receiver.receive(RtpPacket(PT, 1, 2000, 1, b"\x01"), 1.0) == []
    assert receiver.malformed == 1


@given(st.lists(st.tuples(st.integers(0, 4), st.integers(0, 20), st.booleans()), max_size=60))
def test_receiver_never_reports_a_timestamp_twice(events: list[tuple[int, int, bool]]) -> None:
    receiver = DtmfReceiver()
    reported = 0
    starts = set()
    for i, (ts_index, code, end) in enumerate(events):
        starts.add(ts_index)
        reported += len(receiver.receive(_pkt(ts_index * 1000, code, 160, end=end), i * 0.02))
    reported += len(receiver.handle_timer(1e9))
    assert reported <= len(starts)


# -- sender ---------------------------------------------------------------------------------


def test_plan_shape() -> None:
    plan = plan_digit("7", 0.12)
    starts = [p for p in plan if not p.event.end]
    ends = [p for p in plan if p.event.end]
    assert [p.at for p in starts] == pytest.approx([0.0, 0.05, 0.10])
    assert [p.marker for p in plan] == [True] + [False] * (len(plan) - 1)
    assert [p.event.duration for p in starts] == [160, 560, 960]
    assert len(ends) == 3 and all(p.event.duration == 960 for p in ends)
    assert [p.at for p in ends] == pytest.approx([0.12, 0.14, 0.16])
    assert {p.event.event for p in plan} == {7}
    with pytest.raises(DtmfError):
        plan_digit("7", 0)


def test_sender_receiver_loopback_with_packet_loss() -> None:
    rtp = RtpSender(0, ssrc=9, sequence=0, timestamp=0, rng=random.Random(0))
    sender = DtmfSender(rtp, PT)
    receiver = DtmfReceiver()
    sender.send("12#", now=0.0)
    heard: list[DtmfDigit] = []
    rng = random.Random(4)
    audio = 0
    for tick in range(100):
        now = tick * 0.02
        packets = sender.packets_due(now)
        if not sender.busy and not packets:
            rtp.packet(b"\xff" * 160, now=now)
            audio += 1
        for packet in packets:
            assert packet.payload_type == PT and packet.ssrc == 9
            if rng.random() < 0.2:  # 20 % loss
                continue
            heard += receiver.receive(packet, now)
    heard += receiver.handle_timer(10.0)
    assert [d.digit for d in heard] == ["1", "2", "#"]
    assert not sender.pending and audio > 0


def test_sender_packets_carry_event_timestamp_and_timestamp_moves_on() -> None:
    rtp = RtpSender(0, ssrc=9, sequence=100, timestamp=8000)
    sender = DtmfSender(rtp, PT, duration=0.1)
    sender.send("5", now=1.0)
    packets: list[RtpPacket] = []
    tick = 0
    while True:
        now = 1.0 + tick * 0.02
        packets += sender.packets_due(now)
        tick += 1
        if not sender.busy:
            break
    assert {p.timestamp for p in packets} == {8000}
    assert [p.sequence for p in packets] == list(range(100, 100 + len(packets)))
    assert packets[0].marker and not any(p.marker for p in packets[1:])
    assert sum(TelephoneEvent.parse(p.payload).end for p in packets) == 3
    elapsed = round((1.0 + (tick - 1) * 0.02 - 1.0) * 8000)
    after = rtp.packet(b"\xff" * 160)
    assert after.timestamp == 8000 + elapsed and after.marker


def test_sender_rejects_bad_digits_without_queueing() -> None:
    sender = DtmfSender(RtpSender(0, ssrc=1), PT)
    with pytest.raises(DtmfError):
        sender.send("1x", now=0.0)
    assert not sender.pending


def test_sender_leaves_a_gap_between_digits() -> None:
    rtp = RtpSender(0, ssrc=1, sequence=0, timestamp=0)
    sender = DtmfSender(rtp, PT, duration=0.1, gap=0.1)
    sender.send("12", now=0.0)
    timestamps: list[tuple[float, int]] = []
    for tick in range(40):
        now = tick * 0.02
        for packet in sender.packets_due(now):
            if packet.marker:
                timestamps.append((now, packet.timestamp))
    (t1, ts1), (t2, ts2) = timestamps
    assert t2 - t1 >= 0.1 + 0.1 + 0.04 - 1e-9
    assert ts2 > ts1


# -- SIP INFO -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type, body, expected",
    [
        ("application/dtmf-relay", "Signal=5\r\nDuration=160\r\n", DtmfDigit("5", 0.16)),
        ("Application/DTMF-Relay; charset=x", "signal= #\nduration = 250", DtmfDigit("#", 0.25)),
        ("application/dtmf-relay", "Signal=10\r\nDuration=100", DtmfDigit("*", 0.1)),
        ("application/dtmf-relay", "Signal=11", DtmfDigit("#", 0.1)),
        ("application/dtmf-relay", "Signal=d\r\n", DtmfDigit("D", 0.1)),
        ("application/dtmf", "7\r\n", DtmfDigit("7", 0.1)),
    ],
)
def test_info_bodies(content_type: str, body: str, expected: DtmfDigit) -> None:
    assert parse_info_body(content_type, body.encode()) == expected


@pytest.mark.parametrize(
    "content_type, body",
    [
        ("text/plain", "Signal=5"),
        ("application/dtmf-relay", "Duration=160"),
        ("application/dtmf-relay", "Signal=55"),
        ("application/dtmf-relay", "Signal=5\r\nDuration=long"),
        ("application/dtmf", ""),
    ],
)
def test_bad_info_bodies(content_type: str, body: str) -> None:
    with pytest.raises(DtmfError):
        parse_info_body(content_type, body)


def test_info_body_round_trip() -> None:
    assert parse_info_body("application/dtmf-relay", info_body("9", 0.2)) == DtmfDigit("9", 0.2)
