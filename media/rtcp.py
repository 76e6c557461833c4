"""RTCP (RFC 3550 section 6), sans-I/O: compound packets, report blocks and the report timer.

`parse_compound` / `serialize_compound` handle SR, RR, SDES and BYE (other packet types are
kept as `UnknownRtcpPacket` so a compound packet from a richer stack still parses).
`RtcpScheduler` computes the RFC 3550 6.3.1 interval (5 s minimum, randomised) and
`RtcpSession` builds a leg's reports from its `RtpSender` and `ReceptionStats`, and digests
the far end's reports (LSR bookkeeping and round-trip time).
"""

from __future__ import annotations

import math
import random
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from media.rtp import MediaError, ReceptionStats, RtpSender

SR, RR, SDES, BYE = 200, 201, 202, 203
SDES_END, SDES_CNAME = 0, 1
_COMMON = struct.Struct("!BBH")
_BLOCK = struct.Struct("!IB3sIIII")
_SENDER_INFO = struct.Struct("!IIIII")
_NTP_EPOCH_OFFSET = 2_208_988_800  # seconds from 1900-01-01 to 1970-01-01


class RtcpError(MediaError):
    """A malformed RTCP compound packet, or one that cannot be built as asked."""


def ntp_timestamp(unix_time: float) -> int:
    """64-bit NTP timestamp (RFC 3550 4) of a Unix wallclock time."""
    return int(round((unix_time + _NTP_EPOCH_OFFSET) * (1 << 32))) & 0xFFFF_FFFF_FFFF_FFFF


def ntp_middle32(ntp: int) -> int:
    """The middle 32 bits of an NTP timestamp, the unit of LSR (RFC 3550 6.4.1)."""
    return (ntp >> 16) & 0xFFFF_FFFF


def _check_u32(name: str, value: int) -> None:
    if not 0 <= value <= 0xFFFF_FFFF:
        raise RtcpError(f"{name} out of range: {value}")


@dataclass(frozen=True, slots=True)
class ReportBlock:
    """One reception report block (RFC 3550 6.4.1)."""

    ssrc: int
    fraction_lost: int
    cumulative_lost: int
    highest_sequence: int
    jitter: int
    lsr: int = 0
    dlsr: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.fraction_lost <= 255:
            raise RtcpError(f"fraction lost out of range: {self.fraction_lost}")
        if not -0x800000 <= self.cumulative_lost <= 0x7FFFFF:
            raise RtcpError(f"cumulative lost out of range: {self.cumulative_lost}")
        for name in ("ssrc", "highest_sequence", "jitter", "lsr", "dlsr"):
            _check_u32(name, getattr(self, name))

    @property
    def fraction_lost_ratio(self) -> float:
        return self.fraction_lost / 256.0

    def serialize(self) -> bytes:
        lost = (self.cumulative_lost & 0xFFFFFF).to_bytes(3, "big")
        return _BLOCK.pack(
            self.ssrc,
            self.fraction_lost,
            lost,
            self.highest_sequence,
            self.jitter,
            self.lsr,
            self.dlsr,
        )

    @classmethod
    def parse(cls, data: bytes, offset: int) -> ReportBlock:
        ssrc, fraction, lost, highest, jitter, lsr, dlsr = _BLOCK.unpack_from(data, offset)
        cumulative = int.from_bytes(lost, "big", signed=True)
        return cls(ssrc, fraction, cumulative, highest, jitter, lsr, dlsr)


@dataclass(frozen=True, slots=True)
class SenderReport:
    """SR (RFC 3550 6.4.1): sender info plus up to 31 report blocks."""

    ssrc: int
    ntp_timestamp: int
    rtp_timestamp: int
    packet_count: int
    octet_count: int
    reports: tuple[ReportBlock, ...] = ()

    def __post_init__(self) -> None:
        for name in ("ssrc", "rtp_timestamp", "packet_count", "octet_count"):
            _check_u32(name, getattr(self, name))
        if not 0 <= self.ntp_timestamp < 1 << 64:
            raise RtcpError("NTP timestamp out of range")
        if len(self.reports) > 31:
            raise RtcpError("at most 31 report blocks per SR")

    def _body(self) -> tuple[int, bytes]:
        info = _SENDER_INFO.pack(
            self.ntp_timestamp >> 32,
            self.ntp_timestamp & 0xFFFF_FFFF,
            self.rtp_timestamp,
            self.packet_count,
            self.octet_count,
        )
        blocks = b"".join(block.serialize() for block in self.reports)
        return len(self.reports), struct.pack("!I", self.ssrc) + info + blocks


@dataclass(frozen=True, slots=True)
class ReceiverReport:
    """RR (RFC 3550 6.4.2)."""

    ssrc: int
    reports: tuple[ReportBlock, ...] = ()

    def __post_init__(self) -> None:
        _check_u32("ssrc", self.ssrc)
        if len(self.reports) > 31:
            raise RtcpError("at most 31 report blocks per RR")

    def _body(self) -> tuple[int, bytes]:
        blocks = b"".join(block.serialize() for block in self.reports)
        return len(self.reports), struct.pack("!I", self.ssrc) + blocks


@dataclass(frozen=True, slots=True)
class SdesChunk:
    """One SDES chunk: a source and its (item type, value) pairs (RFC 3550 6.5)."""

    ssrc: int
    items: tuple[tuple[int, bytes], ...] = ()

    def __post_init__(self) -> None:
        _check_u32("ssrc", self.ssrc)
        for item_type, value in self.items:
            if not 1 <= item_type <= 255 or len(value) > 255:
                raise RtcpError("SDES item type must be 1..255 and its value at most 255 octets")

    @property
    def cname(self) -> str | None:
        for item_type, value in self.items:
            if item_type == SDES_CNAME:
                return value.decode("utf-8", "replace")
        return None


@dataclass(frozen=True, slots=True)
class SourceDescription:
    """SDES (RFC 3550 6.5)."""

    chunks: tuple[SdesChunk, ...] = ()

    def __post_init__(self) -> None:
        if len(self.chunks) > 31:
            raise RtcpError("at most 31 SDES chunks")

    @classmethod
    def with_cname(cls, ssrc: int, cname: str) -> SourceDescription:
        return cls((SdesChunk(ssrc, ((SDES_CNAME, cname.encode("utf-8")),)),))

    def _body(self) -> tuple[int, bytes]:
        parts = []
        for chunk in self.chunks:
            raw = struct.pack("!I", chunk.ssrc)
            raw += b"".join(bytes((t, len(v))) + v for t, v in chunk.items)
            # A null item ends the list; pad with nulls to the next 32-bit boundary.
            raw += bytes(4 - (len(raw) % 4))
            parts.append(raw)
        return len(self.chunks), b"".join(parts)


@dataclass(frozen=True, slots=True)
class Goodbye:
    """BYE (RFC 3550 6.6)."""

    sources: tuple[int, ...]
    reason: str | None = None

    def __post_init__(self) -> None:
        if len(self.sources) > 31:
            raise RtcpError("at most 31 sources per BYE")
        for ssrc in self.sources:
            _check_u32("ssrc", ssrc)
        if self.reason is not None and len(self.reason.encode("utf-8")) > 255:
            raise RtcpError("BYE reason longer than 255 octets")

    def _body(self) -> tuple[int, bytes]:
        raw = b"".join(struct.pack("!I", s) for s in self.sources)
        if self.reason is not None:
            text = self.reason.encode("utf-8")
            raw += bytes((len(text),)) + text
            raw += bytes(-len(raw) % 4)
        return len(self.sources), raw


@dataclass(frozen=True, slots=True)
class UnknownRtcpPacket:
    """Any other packet type (APP, feedback, XR): kept whole so a compound packet still parses."""

    packet_type: int
    count: int
    body: bytes

    def __post_init__(self) -> None:
        if not 0 <= self.count <= 31 or not 0 <= self.packet_type <= 255:
            raise RtcpError("count must be 0..31 and packet type 0..255")
        if len(self.body) % 4:
            raise RtcpError("RTCP packet body must be a whole number of 32-bit words")

    def _body(self) -> tuple[int, bytes]:
        return self.count, self.body


RtcpPacket = SenderReport | ReceiverReport | SourceDescription | Goodbye | UnknownRtcpPacket


def _packet_type(packet: RtcpPacket) -> int:
    if isinstance(packet, SenderReport):
        return SR
    if isinstance(packet, ReceiverReport):
        return RR
    if isinstance(packet, SourceDescription):
        return SDES
    if isinstance(packet, Goodbye):
        return BYE
    return packet.packet_type


def serialize_compound(packets: Sequence[RtcpPacket], *, padding: int = 0) -> bytes:
    """Build one compound packet; `padding` octets (a multiple of 4) go on the last packet."""
    if not packets:
        raise RtcpError("a compound RTCP packet holds at least one packet")
    if padding % 4 or not 0 <= padding <= 252:
        raise RtcpError("RTCP padding must be a multiple of 4 up to 252")
    out = []
    for index, packet in enumerate(packets):
        count, body = packet._body()
        last = index == len(packets) - 1
        pad = padding if last else 0
        if pad:
            body += bytes(pad - 1) + bytes((pad,))
        first = 0x80 | (0x20 if pad else 0) | count
        out.append(_COMMON.pack(first, _packet_type(packet), len(body) // 4) + body)
    return b"".join(out)


def _parse_reports(body: bytes, offset: int, count: int) -> tuple[ReportBlock, ...]:
    if len(body) < offset + count * _BLOCK.size:
        raise RtcpError("report blocks truncated")
    return tuple(ReportBlock.parse(body, offset + i * _BLOCK.size) for i in range(count))


def _parse_sdes(body: bytes, count: int) -> SourceDescription:
    chunks = []
    offset = 0
    for _ in range(count):
        if len(body) < offset + 4:
            raise RtcpError("SDES chunk truncated")
        (ssrc,) = struct.unpack_from("!I", body, offset)
        offset += 4
        items = []
        while True:
            if offset >= len(body):
                raise RtcpError("SDES item list not terminated")
            item_type = body[offset]
            if item_type == SDES_END:
                # Skip the null octet(s) up to the next 32-bit boundary (RFC 3550 6.5).
                offset += 1
                offset += -offset % 4
                break
            if offset + 2 > len(body) or offset + 2 + body[offset + 1] > len(body):
                raise RtcpError("SDES item truncated")
            length = body[offset + 1]
            items.append((item_type, bytes(body[offset + 2 : offset + 2 + length])))
            offset += 2 + length
        chunks.append(SdesChunk(ssrc, tuple(items)))
    return SourceDescription(tuple(chunks))


def _parse_bye(body: bytes, count: int) -> Goodbye:
    if len(body) < 4 * count:
        raise RtcpError("BYE source list truncated")
    sources = struct.unpack_from(f"!{count}I", body)
    reason = None
    rest = body[4 * count :]
    if rest:
        length = rest[0]
        if 1 + length > len(rest):
            raise RtcpError("BYE reason truncated")
        reason = rest[1 : 1 + length].decode("utf-8", "replace")
    return Goodbye(tuple(sources), reason)


def _parse_one(packet_type: int, count: int, body: bytes) -> RtcpPacket:
    if packet_type == SR:
        if len(body) < 4 + _SENDER_INFO.size:
            raise RtcpError("SR truncated")
        (ssrc,) = struct.unpack_from("!I", body)
        ntp_hi, ntp_lo, rtp_ts, packets, octets = _SENDER_INFO.unpack_from(body, 4)
        reports = _parse_reports(body, 4 + _SENDER_INFO.size, count)
        return SenderReport(ssrc, (ntp_hi << 32) | ntp_lo, rtp_ts, packets, octets, reports)
    if packet_type == RR:
        if len(body) < 4:
            raise RtcpError("RR truncated")
        (ssrc,) = struct.unpack_from("!I", body)
        return ReceiverReport(ssrc, _parse_reports(body, 4, count))
    if packet_type == SDES:
        return _parse_sdes(body, count)
    if packet_type == BYE:
        return _parse_bye(body, count)
    return UnknownRtcpPacket(packet_type, count, bytes(body))


def parse_compound(data: bytes) -> tuple[RtcpPacket, ...]:
    """Parse a compound RTCP packet, raising `RtcpError` on RFC 3550 A.2 header violations."""
    packets: list[RtcpPacket] = []
    offset = 0
    if len(data) < _COMMON.size:
        raise RtcpError(f"RTCP packet too short: {len(data)} octets")
    while offset < len(data):
        if len(data) - offset < _COMMON.size:
            raise RtcpError("trailing octets after the last RTCP packet")
        first, packet_type, length = _COMMON.unpack_from(data, offset)
        if first >> 6 != 2:
            raise RtcpError(f"RTCP version {first >> 6} is not 2")
        end = offset + 4 * (length + 1)
        if end > len(data):
            raise RtcpError("RTCP length field runs past the datagram")
        body = data[offset + 4 : end]
        if first & 0x20:
            # A.2: only the last packet of a compound packet may be padded.
            if end != len(data):
                raise RtcpError("padding bit set on a packet that is not the last")
            if not body or body[-1] == 0 or body[-1] > len(body):
                raise RtcpError("invalid RTCP padding length")
            body = body[: -body[-1]]
        packets.append(_parse_one(packet_type, first & 0x1F, bytes(body)))
        offset = end
    return tuple(packets)


# -- timing ---------------------------------------------------------------------------------

RTCP_MIN_INTERVAL = 5.0
_COMPENSATION = math.e - 1.5  # RFC 3550 6.3.1 / A.7: undo the bias of timer reconsideration
_IP_UDP_OVERHEAD = 28


def rtcp_interval(
    *,
    members: int,
    senders: int,
    rtcp_bandwidth: float,
    we_sent: bool,
    avg_rtcp_size: float,
    initial: bool,
    rng: random.Random,
    minimum: float = RTCP_MIN_INTERVAL,
) -> float:
    """The randomised report interval of RFC 3550 6.3.1 (A.7 `rtcp_interval`), in seconds."""
    min_time = minimum / 2 if initial else minimum
    n = members
    bandwidth = rtcp_bandwidth
    if 0 < senders <= members * 0.25:
        # Senders share a quarter of the RTCP bandwidth, receivers the rest.
        if we_sent:
            bandwidth *= 0.25
            n = senders
        else:
            bandwidth *= 0.75
            n -= senders
    deterministic = max(avg_rtcp_size * n / bandwidth, min_time)
    return deterministic * (rng.random() + 0.5) / _COMPENSATION


class RtcpScheduler:
    """When the next report is due (RFC 3550 6.2: 5 % of the session bandwidth, 5 s minimum).

    A two-party G.711 leg at 64 kb/s always lands on the minimum, so reports go out every
    2-6 s (the minimum randomised over [0.5, 1.5] and compensated), half that for the first.
    """

    def __init__(
        self,
        *,
        now: float,
        session_bandwidth: float = 64_000.0,
        members: int = 2,
        rng: random.Random | None = None,
        minimum: float = RTCP_MIN_INTERVAL,
    ) -> None:
        self.rtcp_bandwidth = session_bandwidth * 0.05 / 8  # octets per second
        self.members = members
        self.senders = members
        self.minimum = minimum
        self.avg_rtcp_size = 100.0
        self._rng = rng or random.Random()
        self._next = now + self._interval(initial=True, we_sent=True)

    def _interval(self, *, initial: bool, we_sent: bool) -> float:
        return rtcp_interval(
            members=self.members,
            senders=self.senders,
            rtcp_bandwidth=self.rtcp_bandwidth,
            we_sent=we_sent,
            avg_rtcp_size=self.avg_rtcp_size,
            initial=initial,
            rng=self._rng,
            minimum=self.minimum,
        )

    def get_timer(self) -> float:
        return self._next

    def due(self, now: float) -> bool:
        return now >= self._next

    def _observe_size(self, size: int) -> None:
        # RFC 3550 6.3.3: avg_rtcp_size = 1/16 * packet_size + 15/16 * avg_rtcp_size.
        self.avg_rtcp_size += ((size + _IP_UDP_OVERHEAD) - self.avg_rtcp_size) / 16.0

    def on_sent(self, now: float, size: int, *, we_sent: bool) -> None:
        self._observe_size(size)
        self._next = now + self._interval(initial=False, we_sent=we_sent)

    def on_received(self, size: int) -> None:
        self._observe_size(size)


# -- one leg's RTCP -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RemoteReport:
    """What the far end reported about our stream, with the round trip it implies."""

    ssrc: int
    block: ReportBlock
    round_trip: float | None


@dataclass(slots=True)
class RtcpCounters:
    received: int = 0
    malformed: int = 0
    sent: int = 0


class RtcpSession:
    """One leg's RTCP: builds SR/RR + SDES CNAME when due, digests the far end's packets."""

    def __init__(
        self,
        *,
        ssrc: int,
        cname: str,
        now: float,
        scheduler: RtcpScheduler | None = None,
        clock_rate: int = 8000,
    ) -> None:
        self.ssrc = ssrc
        self.clock_rate = clock_rate
        self.cname = cname
        self.scheduler = scheduler or RtcpScheduler(now=now)
        self.counters = RtcpCounters()
        self.last_remote_report: RemoteReport | None = None
        self.remote_bye: Goodbye | None = None
        self._sent_packets_at_last_report = 0

    def report_block(self, stats: ReceptionStats, now: float) -> ReportBlock:
        """RFC 3550 6.4.1 block about `stats`' source; advances the fraction-lost interval."""
        dlsr = 0
        if stats.last_sr_received_at is not None:
            dlsr = min(0xFFFF_FFFF, int((now - stats.last_sr_received_at) * 65536))
        return ReportBlock(
            ssrc=stats.ssrc,
            fraction_lost=stats.take_fraction_lost(),
            cumulative_lost=stats.lost,
            highest_sequence=stats.extended_max_seq & 0xFFFF_FFFF,
            jitter=min(stats.jitter, 0xFFFF_FFFF),
            lsr=stats.last_sr_ntp_middle,
            dlsr=dlsr,
        )

    def _report(
        self,
        now: float,
        wallclock: float,
        sender: RtpSender | None,
        stats: ReceptionStats | None,
    ) -> tuple[RtcpPacket, bool]:
        blocks = (self.report_block(stats, now),) if stats is not None and stats.received else ()
        # RFC 3550 6.4: send an SR only if we sent RTP since the previous report.
        sent_lately = sender is not None and sender.packet_count > self._sent_packets_at_last_report
        if sender is not None and sent_lately and sender.last_timestamp is not None:
            rtp_ts = sender.last_timestamp
            if sender.last_sent_at is not None:
                # Extrapolate the RTP clock to the report instant (RFC 3550 6.4.1).
                rtp_ts = (rtp_ts + int((now - sender.last_sent_at) * self.clock_rate)) & 0xFFFF_FFFF
            self._sent_packets_at_last_report = sender.packet_count
            return (
                SenderReport(
                    self.ssrc,
                    ntp_timestamp(wallclock),
                    rtp_ts,
                    sender.packet_count & 0xFFFF_FFFF,
                    sender.octet_count & 0xFFFF_FFFF,
                    blocks,
                ),
                True,
            )
        return ReceiverReport(self.ssrc, blocks), False

    def build_report(
        self,
        now: float,
        wallclock: float,
        sender: RtpSender | None,
        stats: ReceptionStats | None,
    ) -> bytes:
        """A compound SR-or-RR + SDES CNAME (RFC 3550 6.1), and reschedule the next one."""
        report, we_sent = self._report(now, wallclock, sender, stats)
        data = serialize_compound([report, SourceDescription.with_cname(self.ssrc, self.cname)])
        self.scheduler.on_sent(now, len(data), we_sent=we_sent)
        self.counters.sent += 1
        return data

    def build_bye(
        self,
        now: float,
        wallclock: float,
        sender: RtpSender | None,
        stats: ReceptionStats | None,
        reason: str | None = None,
    ) -> bytes:
        """The last compound packet of a leg: report, CNAME, BYE (RFC 3550 6.1, 6.6)."""
        report, _ = self._report(now, wallclock, sender, stats)
        self.counters.sent += 1
        return serialize_compound(
            [
                report,
                SourceDescription.with_cname(self.ssrc, self.cname),
                Goodbye((self.ssrc,), reason),
            ]
        )

    def datagrams_to_send(
        self,
        now: float,
        wallclock: float,
        sender: RtpSender | None,
        stats: ReceptionStats | None,
    ) -> list[bytes]:
        if not self.scheduler.due(now):
            return []
        return [self.build_report(now, wallclock, sender, stats)]

    def get_timer(self) -> float:
        return self.scheduler.get_timer()

    def receive(
        self,
        data: bytes,
        now: float,
        wallclock: float,
        stats: ReceptionStats | None,
    ) -> tuple[RtcpPacket, ...]:
        """Digest one datagram; malformed ones are counted and dropped (empty result)."""
        try:
            packets = parse_compound(data)
        except RtcpError:
            self.counters.malformed += 1
            return ()
        self.counters.received += 1
        self.scheduler.on_received(len(data))
        arrival_middle = ntp_middle32(ntp_timestamp(wallclock))
        for packet in packets:
            if isinstance(packet, SenderReport) and stats is not None:
                if packet.ssrc == stats.ssrc:
                    stats.last_sr_ntp_middle = ntp_middle32(packet.ntp_timestamp)
                    stats.last_sr_received_at = now
            if isinstance(packet, SenderReport | ReceiverReport):
                for block in packet.reports:
                    if block.ssrc != self.ssrc:
                        continue
                    round_trip = None
                    if block.lsr:
                        # RFC 3550 6.4.1: RTT = A - LSR - DLSR, in 1/65536 s.
                        units = (arrival_middle - block.lsr - block.dlsr) & 0xFFFF_FFFF
                        if units < 0x8000_0000:
                            round_trip = units / 65536.0
                    self.last_remote_report = RemoteReport(packet.ssrc, block, round_trip)
            if isinstance(packet, Goodbye):
                self.remote_bye = packet
        return packets


__all__ = [
    "BYE",
    "RR",
    "SDES",
    "SDES_CNAME",
    "SR",
    "Goodbye",
    "ReceiverReport",
    "RemoteReport",
    "ReportBlock",
    "RtcpCounters",
    "RtcpError",
    "RtcpPacket",
    "RtcpScheduler",
    "RtcpSession",
    "SdesChunk",
    "SenderReport",
    "SourceDescription",
    "UnknownRtcpPacket",
    "ntp_middle32",
    "ntp_timestamp",
    "parse_compound",
    "rtcp_interval",
    "serialize_compound",
]
