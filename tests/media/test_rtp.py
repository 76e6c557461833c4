"""RTP packets, the sender's numbering and the receiving session (latching, stats, timeout)."""

from __future__ import annotations

import random
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from media.rtp import (
    ReceptionStats,
    RemoteLatched,
    RtpError,
    RtpHeaderExtension,
    RtpPacket,
    RtpSender,
    RtpSession,
    RtpTimeout,
    SourceChanged,
    seq_distance,
    ts_distance,
)

PHONE = ("192.0.2.10", 4000)
NAT = ("198.51.100.7", 31000)
STRAY = ("203.0.113.9", 5004)

u32 = st.integers(0, 2**32 - 1)
packets = st.builds(
    RtpPacket,
    payload_type=st.integers(0, 127),
    sequence=st.integers(0, 65535),
    timestamp=u32,
    ssrc=u32,
    payload=st.binary(max_size=300),
    marker=st.booleans(),
    csrc=st.lists(u32, max_size=15).map(tuple),
    extension=st.none()
    | st.builds(
        RtpHeaderExtension,
        profile=st.integers(0, 0xFFFF),
        data=st.integers(0, 8).flatmap(lambda n: st.binary(min_size=4 * n, max_size=4 * n)),
    ),
    padding=st.integers(0, 255),
)


@given(packets)
def test_round_trip(packet: RtpPacket) -> None:
    assert RtpPacket.parse(packet.serialize()) == packet


@given(st.binary(max_size=400))
def test_garbage_either_parses_or_raises_rtp_error(data: bytes) -> None:
    try:
        packet = RtpPacket.parse(data)
    except RtpError:
        return
    assert packet.version == 2
    # Anything that parses serialises back to the same bytes (padding content aside).
    again = packet.serialize()
    assert len(again) == len(data)
    assert RtpPacket.parse(again) == packet


def test_known_wire_bytes() -> None:
    wire = bytes.fromhex("80e0 1234 0000a0a0 deadbeef".replace(" ", "")) + b"\xff" * 160
    packet = RtpPacket.parse(wire)
    assert (packet.payload_type, packet.marker, packet.sequence) == (96, True, 0x1234)
    assert packet.timestamp == 0xA0A0 and packet.ssrc == 0xDEADBEEF
    assert packet.payload == b"\xff" * 160 and packet.csrc == () and packet.padding == 0
    assert packet.serialize() == wire


def test_csrc_extension_and_padding_parse() -> None:
    header = struct.pack("!BBHII", 0x80 | 0x20 | 0x10 | 2, 8, 7, 99, 1)
    body = struct.pack("!II", 11, 22) + struct.pack("!HH", 0xBEDE, 1) + b"abcd"
    wire = header + body + b"PAYLOAD" + b"\x00\x00\x03"
    packet = RtpPacket.parse(wire)
    assert packet.csrc == (11, 22)
    assert packet.extension == RtpHeaderExtension(0xBEDE, b"abcd")
    assert packet.payload == b"PAYLOAD" and packet.padding == 3


@pytest.mark.parametrize(
    "wire, why",
    [
        (b"", "too short"),
        (b"\x80\x00" + bytes(9), "too short"),
        (b"\x40\x00" + bytes(10), "version"),
        (b"\x82\x00" + bytes(10) + bytes(4), "csrc"),
        (b"\x90\x00" + bytes(10) + b"\x00\x00", "extension"),
        (b"\x90\x00" + bytes(10) + b"\x00\x00\x00\x02abcd", "extension"),
        (b"\xa0\x00" + bytes(10) + b"\x00", "padding 0"),
        (b"\xa0\x00" + bytes(10) + b"ab\x05", "padding longer than payload"),
    ],
)
def test_malformed_packets_raise(wire: bytes, why: str) -> None:
    with pytest.raises(RtpError):
        RtpPacket.parse(wire)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"payload_type": 128},
        {"sequence": 65536},
        {"timestamp": -1},
        {"ssrc": 2**32},
        {"csrc": tuple(range(16))},
        {"padding": 256},
    ],
)
def test_invalid_fields_are_refused(kwargs: dict[str, object]) -> None:
    fields: dict[str, object] = {"payload_type": 0, "sequence": 0, "timestamp": 0, "ssrc": 0}
    fields.update(kwargs)
    with pytest.raises(RtpError):
        RtpPacket(**fields)  # type: ignore[arg-type]


def test_extension_must_be_word_aligned() -> None:
    with pytest.raises(RtpError):
        RtpHeaderExtension(1, b"abc")


def test_packet_is_frozen() -> None:
    packet = RtpPacket(0, 1, 2, 3)
    with pytest.raises(AttributeError):
        packet.sequence = 5  # type: ignore[misc]


def test_serial_distances_wrap() -> None:
    assert seq_distance(2, 65534) == 4
    assert seq_distance(65534, 2) == -4
    assert ts_distance(10, 2**32 - 150) == 160
    assert ts_distance(2**32 - 150, 10) == -160


# -- sender --------------------------------------------------------------------------------


def test_sender_numbers_packets_and_marks_first_of_talkspurt() -> None:
    sender = RtpSender(0, ssrc=42, sequence=100, timestamp=1000)
    first = sender.packet(b"\xff" * 160)
    second = sender.packet(b"\xff" * 160)
    assert (first.sequence, first.timestamp, first.marker, first.ssrc) == (100, 1000, True, 42)
    assert (second.sequence, second.timestamp, second.marker) == (101, 1160, False)
    sender.skip(480)  # 60 ms not sent: a new talkspurt starts
    third = sender.packet(b"\xff" * 160)
    assert (third.sequence, third.timestamp, third.marker) == (102, 1800, True)
    assert sender.packet_count == 3 and sender.octet_count == 480


def test_sender_wraps_sequence_and_timestamp() -> None:
    sender = RtpSender(8, ssrc=1, sequence=65535, timestamp=2**32 - 80)
    a = sender.packet(b"\xd5" * 160)
    b = sender.packet(b"\xd5" * 160)
    assert (a.sequence, b.sequence) == (65535, 0)
    assert (a.timestamp, b.timestamp) == (2**32 - 80, 80)


def test_timestamp_continuity_across_sources_and_events() -> None:
    sender = RtpSender(0, ssrc=1, sequence=0, timestamp=0)
    for _ in range(3):  # a prompt
        sender.packet(b"\x10" * 160)
    event_start = sender.timestamp
    for _ in range(3):  # an RFC 4733 event: same timestamp, no advance
        pkt = sender.packet(b"\x05\x0a\x00\xa0", payload_type=101, timestamp=event_start, samples=0)
        assert pkt.timestamp == event_start and pkt.payload_type == 101 and not pkt.marker
    sender.skip(480)
    resumed = sender.packet(b"\x20" * 160)  # the bridge takes over
    assert resumed.timestamp == 480 + 480 and resumed.sequence == 6 and resumed.marker


def test_sender_random_initial_values_are_seedable() -> None:
    a = RtpSender(0, rng=random.Random(1))
    b = RtpSender(0, rng=random.Random(1))
    assert (a.ssrc, a.sequence, a.timestamp) == (b.ssrc, b.sequence, b.timestamp)


def test_start_talkspurt_marks_next_packet() -> None:
    sender = RtpSender(0, ssrc=1, sequence=0, timestamp=0)
    sender.packet(b"x")
    sender.start_talkspurt()
    assert sender.packet(b"x").marker
    assert not sender.packet(b"x").marker


# -- reception statistics (RFC 3550 A.1 / A.3 / A.8) ---------------------------------------


def test_stats_count_loss_and_wrap() -> None:
    stats = ReceptionStats(ssrc=1)
    for seq in [65530, 65531, 65533, 65534, 65535, 0, 2, 3]:
        stats.update_seq(seq)
    assert stats.extended_max_seq == 65536 + 3
    assert stats.expected == 10 and stats.received == 8 and stats.lost == 2
    assert stats.take_fraction_lost() == (2 << 8) // 10
    for seq in [4, 5, 6, 7]:
        stats.update_seq(seq)
    assert stats.take_fraction_lost() == 0


def test_stats_large_jump_needs_two_packets_to_resync() -> None:
    stats = ReceptionStats(ssrc=1)
    for seq in range(10, 20):
        stats.update_seq(seq)
    assert not stats.update_seq(40000)
    assert stats.update_seq(40001)  # two in a row: the sender restarted
    assert stats.base_seq == 40001 and stats.received == 1 and stats.lost == 0


def test_jitter_is_zero_for_perfect_timing_and_grows_with_variation() -> None:
    steady = ReceptionStats(ssrc=1)
    for i in range(50):
        steady.update_jitter(i * 160, 10.0 + i * 0.020)
    assert steady.jitter == 0
    noisy = ReceptionStats(ssrc=1)
    for i in range(200):
        noisy.update_jitter(i * 160, 10.0 + i * 0.020 + (0.010 if i % 2 else 0.0))
    # |D| is 80 units every packet: J converges to 80 (A.8).
    assert 75 <= noisy.jitter <= 80
    assert noisy.jitter_seconds == pytest.approx(noisy.jitter_units / 8000)


def test_jitter_survives_timestamp_wrap() -> None:
    stats = ReceptionStats(ssrc=1)
    for i in range(100):
        stats.update_jitter((2**32 - 800 + i * 160) % 2**32, 5.0 + i * 0.020)
    assert stats.jitter == 0


# -- session: latching ---------------------------------------------------------------------


def _wire(seq: int, ssrc: int = 7, ts: int | None = None, pt: int = 0) -> bytes:
    return RtpPacket(pt, seq % 65536, (seq * 160 if ts is None else ts) % 2**32, ssrc).serialize()


def test_latches_to_first_source_and_ignores_strays() -> None:
    session = RtpSession(now=0.0, remote=PHONE)
    assert session.remote == PHONE
    assert session.receive_datagram(_wire(1), NAT, 0.02) is not None
    assert session.events() == [RemoteLatched(NAT, 7, None)]
    assert session.remote == NAT
    assert session.receive_datagram(_wire(2), STRAY, 0.04) is None
    assert session.counters.foreign == 1 and session.remote == NAT


def test_sdp_address_always_wins_the_latch() -> None:
    session = RtpSession(now=0.0, remote=PHONE)
    session.receive_datagram(_wire(1), NAT, 0.02)
    assert session.receive_datagram(_wire(2), PHONE, 0.04) is not None
    assert session.events()[-1] == RemoteLatched(PHONE, 7, NAT)
    assert session.remote == PHONE


def test_relatch_only_after_latched_source_falls_silent() -> None:
    session = RtpSession(now=0.0, remote=None, relatch_after=0.5)
    session.receive_datagram(_wire(1), NAT, 0.0)
    assert session.receive_datagram(_wire(2), STRAY, 0.3) is None
    assert session.receive_datagram(_wire(3), STRAY, 0.6) is not None
    assert session.remote == STRAY and session.latched == STRAY


def test_without_latching_only_sdp_address_is_accepted() -> None:
    session = RtpSession(now=0.0, remote=PHONE, latching=False)
    assert session.receive_datagram(_wire(1), NAT, 0.0) is None
    assert session.receive_datagram(_wire(2), PHONE, 0.02) is not None
    assert session.remote == PHONE


def test_update_remote_resets_latch() -> None:
    session = RtpSession(now=0.0, remote=PHONE)
    session.receive_datagram(_wire(1), NAT, 0.0)
    session.update_remote(("192.0.2.99", 6000), now=1.0)
    assert session.latched is None and session.remote == ("192.0.2.99", 6000)
    assert session.receive_datagram(_wire(2), STRAY, 1.1) is not None
    assert session.remote == STRAY


def test_malformed_datagrams_are_counted_not_raised() -> None:
    session = RtpSession(now=0.0)
    assert session.receive_datagram(b"\x00junk", NAT, 0.0) is None
    assert session.counters.malformed == 1 and session.latched is None


def test_ssrc_change_resets_stats_and_is_reported() -> None:
    session = RtpSession(now=0.0)
    for i in range(5):
        session.receive_datagram(_wire(i, ssrc=1), NAT, i * 0.02)
    session.events()
    session.receive_datagram(_wire(900, ssrc=2), NAT, 0.2)
    assert session.events() == [SourceChanged(1, 2)]
    assert session.stats is not None and session.stats.ssrc == 2 and session.stats.received == 1


def test_dtmf_packets_do_not_inflate_jitter() -> None:
    session = RtpSession(now=0.0)
    session.dtmf_payload_type = 101
    for i in range(20):
        session.receive_datagram(_wire(i), NAT, i * 0.02)
    for i in range(20, 30):  # one event: constant timestamp while time advances
        session.receive_datagram(_wire(i, ts=20 * 160, pt=101), NAT, i * 0.02)
    assert session.stats is not None and session.stats.jitter == 0
    assert session.stats.received == 30 and session.stats.lost == 0


# -- session: inactivity -------------------------------------------------------------------


def test_timeout_reported_once_then_rearmed_by_traffic() -> None:
    session = RtpSession(now=0.0, timeout=5.0)
    assert session.get_timer() == 5.0
    session.receive_datagram(_wire(1), NAT, 1.0)
    assert session.get_timer() == 6.0
    session.handle_timer(5.9)
    assert session.next_event() == RemoteLatched(NAT, 7, None)
    assert session.next_event() is None
    session.handle_timer(6.0)
    assert session.events() == [RtpTimeout(last_packet_at=1.0, now=6.0)]
    assert session.get_timer() is None
    session.handle_timer(20.0)
    assert session.events() == []
    session.receive_datagram(_wire(2), NAT, 21.0)
    assert session.get_timer() == 26.0


def test_timeout_can_be_disabled_for_hold() -> None:
    session = RtpSession(now=0.0, timeout=5.0)
    session.set_timeout(None, now=1.0)
    assert session.get_timer() is None
    session.set_timeout(10.0, now=2.0)
    assert session.get_timer() == 12.0


def test_stray_packets_do_not_keep_the_leg_alive() -> None:
    session = RtpSession(now=0.0, remote=PHONE, latching=False, timeout=5.0)
    session.receive_datagram(_wire(1), STRAY, 4.0)
    assert session.get_timer() == 5.0
