"""RTCP compound packets, report blocks, the report interval and one leg's RTCP session."""

from __future__ import annotations

import random
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from media.rtcp import (
    Goodbye,
    ReceiverReport,
    ReportBlock,
    RtcpError,
    RtcpPacket,
    RtcpScheduler,
    RtcpSession,
    SdesChunk,
    SenderReport,
    SourceDescription,
    UnknownRtcpPacket,
    ntp_middle32,
    ntp_timestamp,
    parse_compound,
    rtcp_interval,
    serialize_compound,
)
from media.rtp import ReceptionStats, RtpPacket, RtpSender, RtpSession

u32 = st.integers(0, 2**32 - 1)
blocks = st.builds(
    ReportBlock,
    ssrc=u32,
    fraction_lost=st.integers(0, 255),
    cumulative_lost=st.integers(-0x800000, 0x7FFFFF),
    highest_sequence=u32,
    jitter=u32,
    lsr=u32,
    dlsr=u32,
)
block_lists = st.lists(blocks, max_size=31).map(tuple)
rtcp_packets: st.SearchStrategy[RtcpPacket] = st.one_of(
    st.builds(
        SenderReport,
        ssrc=u32,
        ntp_timestamp=st.integers(0, 2**64 - 1),
        rtp_timestamp=u32,
        packet_count=u32,
        octet_count=u32,
        reports=block_lists,
    ),
    st.builds(ReceiverReport, ssrc=u32, reports=block_lists),
    st.builds(
        SourceDescription,
        chunks=st.lists(
            st.builds(
                SdesChunk,
                ssrc=u32,
                items=st.lists(
                    st.tuples(st.integers(1, 255), st.binary(max_size=255)), max_size=4
                ).map(tuple),
            ),
            max_size=4,
        ).map(tuple),
    ),
    st.builds(
        Goodbye,
        sources=st.lists(u32, max_size=31).map(tuple),
        reason=st.none() | st.text(max_size=60),
    ),
    st.builds(
        UnknownRtcpPacket,
        packet_type=st.sampled_from([204, 205, 206, 207]),
        count=st.integers(0, 31),
        body=st.integers(0, 8).flatmap(lambda n: st.binary(min_size=4 * n, max_size=4 * n)),
    ),
)


@given(st.lists(rtcp_packets, min_size=1, max_size=5), st.sampled_from([0, 4, 8, 252]))
def test_compound_round_trip(packets: list[RtcpPacket], padding: int) -> None:
    wire = serialize_compound(packets, padding=padding)
    assert len(wire) % 4 == 0
    assert parse_compound(wire) == tuple(packets)


@given(st.binary(max_size=300))
def test_garbage_parses_or_raises_rtcp_error(data: bytes) -> None:
    try:
        parse_compound(data)
    except RtcpError:
        pass


@given(st.lists(rtcp_packets, min_size=1, max_size=3), st.data())
def test_mutated_compounds_never_crash(packets: list[RtcpPacket], data: st.DataObject) -> None:
    wire = bytearray(serialize_compound(packets))
    index = data.draw(st.integers(0, len(wire) - 1))
    wire[index] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(wire)))
    try:
        parse_compound(bytes(wire[:cut]))
    except RtcpError:
        pass


def test_receiver_report_wire_layout() -> None:
    block = ReportBlock(0x11223344, 64, -2, 0x0001_0005, 80, 0xAABBCCDD, 65536)
    wire = serialize_compound([ReceiverReport(0xCAFEBABE, (block,))])
    assert wire[:4] == bytes([0x81, 201, 0, 7])
    assert wire[4:8] == bytes.fromhex("cafebabe")
    assert wire[8:12] == bytes.fromhex("11223344")
    assert wire[12] == 64 and wire[13:16] == bytes.fromhex("fffffe")
    assert struct.unpack("!IIII", wire[16:32]) == (0x10005, 80, 0xAABBCCDD, 65536)


def test_sdes_cname_layout_and_padding() -> None:
    wire = serialize_compound([SourceDescription.with_cname(1, "abc")])
    # header + ssrc + (type, len, 'abc') + at least one null, padded to a word.
    assert wire == bytes([0x81, 202, 0, 3]) + b"\x00\x00\x00\x01\x01\x03abc\x00\x00\x00"
    (sdes,) = parse_compound(wire)
    assert isinstance(sdes, SourceDescription) and sdes.chunks[0].cname == "abc"


def test_bye_with_reason() -> None:
    wire = serialize_compound([Goodbye((5, 6), "hangup")])
    assert parse_compound(wire) == (Goodbye((5, 6), "hangup"),)
    assert len(wire) == 4 + 8 + 8


@pytest.mark.parametrize(
    "wire",
    [
        b"",
        b"\x81\xc9\x00",
        b"\x41\xc9\x00\x01" + bytes(4),  # version 1
        b"\x81\xc9\x00\x07" + bytes(8),  # length past the end
        b"\x81\xc9\x00\x01" + bytes(4),  # RR says 1 block, has none
        b"\x80\xc8\x00\x01" + bytes(4),  # SR without sender info
        b"\xa0\xc9\x00\x01\x00\x00\x00\x00" + b"\x80\xc9\x00\x01" + bytes(4),  # padded not last
        b"\xa0\xc9\x00\x01\x00\x00\x00\x00",  # padding count 0
        b"\x81\xca\x00\x01\x00\x00\x00\x01",  # SDES chunk never terminated
        b"\x81\xca\x00\x02\x00\x00\x00\x01\x01\x09ab",  # SDES item longer than packet
        b"\x82\xcb\x00\x01\x00\x00\x00\x01",  # BYE says 2 sources, has 1
        b"\x81\xcb\x00\x02\x00\x00\x00\x01\x09abc",  # BYE reason truncated
        b"\x80\xc9\x00\x00\x00",  # trailing octet
    ],
)
def test_malformed_compounds_raise(wire: bytes) -> None:
    with pytest.raises(RtcpError):
        parse_compound(wire)


@pytest.mark.parametrize(
    "build",
    [
        lambda: ReportBlock(1, 256, 0, 0, 0),
        lambda: ReportBlock(1, 0, 0x800000, 0, 0),
        lambda: ReceiverReport(1, tuple(ReportBlock(i, 0, 0, 0, 0) for i in range(32))),
        lambda: Goodbye((1,), "x" * 256),
        lambda: SdesChunk(1, ((0, b"x"),)),
        lambda: UnknownRtcpPacket(204, 0, b"abc"),
        lambda: serialize_compound([]),
        lambda: serialize_compound([ReceiverReport(1)], padding=3),
    ],
)
def test_invalid_construction_raises(build: object) -> None:
    with pytest.raises(RtcpError):
        build()  # type: ignore[operator]


def test_ntp_conversion() -> None:
    assert ntp_timestamp(0.0) == 2_208_988_800 << 32
    assert ntp_timestamp(1.5) & 0xFFFF_FFFF == 1 << 31
    assert ntp_middle32(0x1234_5678_9ABC_DEF0) == 0x5678_9ABC


# -- interval -------------------------------------------------------------------------------


def test_interval_respects_minimum_and_randomisation_bounds() -> None:
    rng = random.Random(3)
    values = [
        rtcp_interval(
            members=2,
            senders=2,
            rtcp_bandwidth=400.0,
            we_sent=True,
            avg_rtcp_size=100.0,
            initial=False,
            rng=rng,
        )
        for _ in range(1000)
    ]
    low, high = 5.0 * 0.5 / 1.21828, 5.0 * 1.5 / 1.21828
    assert all(low - 1e-6 <= v <= high + 1e-6 for v in values)
    assert sum(values) / len(values) == pytest.approx(5.0 / 1.21828, rel=0.05)


def test_initial_interval_is_halved() -> None:
    rng = random.Random(1)
    kwargs = dict(members=2, senders=2, rtcp_bandwidth=400.0, we_sent=True, avg_rtcp_size=100.0)
    first = rtcp_interval(initial=True, rng=random.Random(1), **kwargs)  # type: ignore[arg-type]
    later = rtcp_interval(initial=False, rng=rng, **kwargs)  # type: ignore[arg-type]
    assert first == pytest.approx(later / 2)


def test_large_session_is_bandwidth_bound() -> None:
    # 1000 receivers on a tiny session: well above the 5 s minimum.
    value = rtcp_interval(
        members=1000,
        senders=1,
        rtcp_bandwidth=100.0,
        we_sent=False,
        avg_rtcp_size=100.0,
        initial=False,
        rng=random.Random(0),
    )
    assert value > 100.0


def test_scheduler_due_and_reschedule() -> None:
    scheduler = RtcpScheduler(now=10.0, rng=random.Random(5))
    first = scheduler.get_timer()
    assert 10.0 + 1.0 <= first <= 10.0 + 3.1
    assert not scheduler.due(first - 0.001) and scheduler.due(first)
    scheduler.on_sent(first, 80, we_sent=True)
    assert first + 2.0 <= scheduler.get_timer() <= first + 6.2


# -- session --------------------------------------------------------------------------------


def _feed(session: RtpSession, seqs: list[int], start: float = 0.0) -> None:
    for i, seq in enumerate(seqs):
        wire = RtpPacket(0, seq, seq * 160, ssrc=77, payload=b"\xff" * 160).serialize()
        session.receive_datagram(wire, ("192.0.2.1", 4000), start + i * 0.02)


def test_report_carries_loss_and_jitter() -> None:
    rtp = RtpSession(now=0.0)
    _feed(rtp, [s for s in range(100) if s not in (10, 11, 50)])
    rtcp = RtcpSession(ssrc=1, cname="leg-1@qconnect", now=0.0, scheduler=None)
    data = rtcp.build_report(now=3.0, wallclock=1_700_000_000.0, sender=None, stats=rtp.stats)
    report, sdes = parse_compound(data)
    assert isinstance(report, ReceiverReport) and report.ssrc == 1
    (block,) = report.reports
    assert block.ssrc == 77 and block.cumulative_lost == 3 and block.highest_sequence == 99
    assert block.fraction_lost == (3 << 8) // 100
    assert block.lsr == 0 and block.dlsr == 0
    assert isinstance(sdes, SourceDescription) and sdes.chunks[0].cname == "leg-1@qconnect"
    # Next interval: nothing new lost.
    _feed(rtp, list(range(100, 150)), start=3.0)
    data = rtcp.build_report(now=6.0, wallclock=1_700_000_003.0, sender=None, stats=rtp.stats)
    report, _ = parse_compound(data)
    assert isinstance(report, ReceiverReport) and report.reports[0].fraction_lost == 0


def test_sender_report_when_we_sent_and_lsr_dlsr_round_trip() -> None:
    sender_a = RtpSender(0, ssrc=100, sequence=0, timestamp=0)
    leg_a = RtcpSession(ssrc=100, cname="a", now=0.0)
    leg_b = RtcpSession(ssrc=200, cname="b", now=0.0)
    stats_at_b = ReceptionStats(ssrc=100)
    for seq in range(50):
        packet = sender_a.packet(b"\xff" * 160, now=seq * 0.02)
        stats_at_b.update_seq(packet.sequence)
    wall = 1_700_000_000.0
    sr_wire = leg_a.build_report(now=1.0, wallclock=wall, sender=sender_a, stats=None)
    (sr, _) = parse_compound(sr_wire)
    assert isinstance(sr, SenderReport)
    assert sr.packet_count == 50 and sr.octet_count == 8000
    assert sr.rtp_timestamp == 49 * 160 + int((1.0 - 0.98) * 8000)
    # B receives the SR 50 ms later (one way), answers 0.5 s later; A gets it 50 ms after.
    leg_b.receive(sr_wire, now=1.05, wallclock=wall + 0.05, stats=stats_at_b)
    assert stats_at_b.last_sr_ntp_middle == ntp_middle32(ntp_timestamp(wall))
    rr_wire = leg_b.build_report(now=1.55, wallclock=wall + 0.55, sender=None, stats=stats_at_b)
    (rr, _) = parse_compound(rr_wire)
    assert isinstance(rr, ReceiverReport) and rr.reports[0].dlsr == int(0.5 * 65536)
    leg_a.receive(rr_wire, now=1.6, wallclock=wall + 0.6, stats=None)
    remote = leg_a.last_remote_report
    assert remote is not None and remote.ssrc == 200
    assert remote.round_trip == pytest.approx(0.1, abs=1e-3)


def test_rr_instead_of_sr_when_nothing_sent_since_last_report() -> None:
    sender = RtpSender(0, ssrc=1, sequence=0, timestamp=0)
    leg = RtcpSession(ssrc=1, cname="a", now=0.0)
    sender.packet(b"\xff" * 160, now=0.0)
    first, _ = parse_compound(leg.build_report(1.0, 1e9, sender, None))
    second, _ = parse_compound(leg.build_report(6.0, 1e9 + 5, sender, None))
    assert isinstance(first, SenderReport) and isinstance(second, ReceiverReport)


def test_datagrams_to_send_follow_the_scheduler() -> None:
    leg = RtcpSession(
        ssrc=1, cname="a", now=0.0, scheduler=RtcpScheduler(now=0.0, rng=random.Random(2))
    )
    due = leg.get_timer()
    assert leg.datagrams_to_send(due - 0.01, 1e9, None, None) == []
    (datagram,) = leg.datagrams_to_send(due, 1e9, None, None)
    assert isinstance(parse_compound(datagram)[0], ReceiverReport)
    assert leg.get_timer() > due + 2.0


def test_bye_and_malformed_input() -> None:
    leg_a = RtcpSession(ssrc=1, cname="a", now=0.0)
    leg_b = RtcpSession(ssrc=2, cname="b", now=0.0)
    bye = leg_a.build_bye(1.0, 1e9, None, None, reason="call ended")
    packets = leg_b.receive(bye, 1.0, 1e9, None)
    assert [type(p) for p in packets] == [ReceiverReport, SourceDescription, Goodbye]
    assert leg_b.remote_bye == Goodbye((1,), "call ended")
    assert leg_b.receive(b"\x00\x01", 1.1, 1e9, None) == ()
    assert leg_b.counters.malformed == 1 and leg_b.counters.received == 1
