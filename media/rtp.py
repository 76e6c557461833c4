"""RTP (RFC 3550), sans-I/O: packets, the sending side and the receiving side of one leg.

- `RtpPacket` parses and serialises the fixed header, CSRCs, header extension and padding.
- `RtpSender` owns SSRC, sequence number and timestamp for one outgoing stream, so the timestamp
  stays continuous however often the audio source behind it changes (prompt, bridge, hold music).
- `RtpSession` is the receiving side: symmetric RTP with latching (RFC 4961), per-source
  reception statistics (RFC 3550 A.1, A.3, A.8) and an inactivity timer the switch is told about.

Nothing here reads a clock or touches a socket: every call that depends on time takes `now`
(seconds, monotonic) and the session tells its caller when it next wants waking (`get_timer`).
"""

from __future__ import annotations

import random
import struct
from collections import deque
from dataclasses import dataclass

RTP_VERSION = 2
_HEADER = struct.Struct("!BBHII")
#: The first octet of nearly every packet on the wire: version 2, no padding, no header
#: extension, no CSRCs. Such a packet's payload starts right after the 12-octet fixed header.
PLAIN_FIRST_OCTET = RTP_VERSION << 6
#: The rest of a plain packet's fixed header: marker+payload type, sequence, timestamp, SSRC.
PLAIN_HEADER = struct.Struct("!xBHII")
_SEQ_MOD = 1 << 16
_TS_MOD = 1 << 32

Address = tuple[str, int]


class MediaError(Exception):
    """Base of every error the sans-I/O media layer raises."""


class RtpError(MediaError):
    """A malformed RTP packet, or a packet that cannot be built as asked."""


@dataclass(frozen=True, slots=True)
class RtpHeaderExtension:
    """The one header extension RFC 3550 5.3.1 allows: a profile word and 32-bit-aligned data."""

    profile: int
    data: bytes = b""

    def __post_init__(self) -> None:
        if not 0 <= self.profile <= 0xFFFF:
            raise RtpError(f"extension profile out of range: {self.profile}")
        if len(self.data) % 4 or len(self.data) > 0xFFFF * 4:
            raise RtpError("extension data must be a whole number of 32-bit words")


@dataclass(frozen=True, slots=True)
class RtpPacket:
    """One RTP packet (RFC 3550 5.1). `padding` is the number of padding octets (0: P bit clear)."""

    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    payload: bytes = b""
    marker: bool = False
    csrc: tuple[int, ...] = ()
    extension: RtpHeaderExtension | None = None
    padding: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.payload_type <= 127:
            raise RtpError(f"payload type out of range: {self.payload_type}")
        if not 0 <= self.sequence < _SEQ_MOD:
            raise RtpError(f"sequence number out of range: {self.sequence}")
        if not 0 <= self.timestamp < _TS_MOD:
            raise RtpError(f"timestamp out of range: {self.timestamp}")
        if not 0 <= self.ssrc < _TS_MOD:
            raise RtpError(f"SSRC out of range: {self.ssrc}")
        if len(self.csrc) > 15 or any(not 0 <= c < _TS_MOD for c in self.csrc):
            raise RtpError("at most 15 CSRCs, each 32 bits")
        if not 0 <= self.padding <= 255:
            raise RtpError(f"padding must be 0..255 octets: {self.padding}")

    @property
    def version(self) -> int:
        # parse() rejects anything but version 2 (RFC 3550 A.1), so every packet is version 2.
        return RTP_VERSION

    @classmethod
    def parse(cls, data: bytes) -> RtpPacket:
        """Parse one datagram, raising `RtpError` when it fails RFC 3550 A.1's header checks."""
        if len(data) < _HEADER.size:
            raise RtpError(f"RTP packet too short: {len(data)} octets")
        first, second, sequence, timestamp, ssrc = _HEADER.unpack_from(data)
        if first >> 6 != RTP_VERSION:
            raise RtpError(f"RTP version {first >> 6} is not 2")
        csrc_count = first & 0x0F
        offset = _HEADER.size + 4 * csrc_count
        if len(data) < offset:
            raise RtpError("RTP packet truncated inside the CSRC list")
        csrc = struct.unpack_from(f"!{csrc_count}I", data, _HEADER.size)
        extension = None
        if first & 0x10:
            if len(data) < offset + 4:
                raise RtpError("RTP packet truncated inside the extension header")
            profile, words = struct.unpack_from("!HH", data, offset)
            end = offset + 4 + 4 * words
            if len(data) < end:
                raise RtpError("RTP header extension longer than the packet")
            extension = RtpHeaderExtension(profile, bytes(data[offset + 4 : end]))
            offset = end
        end = len(data)
        padding = 0
        if first & 0x20:
            # RFC 3550 5.1: the last octet counts the padding, itself included.
            padding = data[-1]
            if padding == 0 or end - padding < offset:
                raise RtpError(f"invalid RTP padding length {padding}")
            end -= padding
        return cls(
            payload_type=second & 0x7F,
            sequence=sequence,
            timestamp=timestamp,
            ssrc=ssrc,
            payload=bytes(data[offset:end]),
            marker=bool(second & 0x80),
            csrc=tuple(csrc),
            extension=extension,
            padding=padding,
        )

    def serialize(self) -> bytes:
        first = (RTP_VERSION << 6) | len(self.csrc)
        if self.padding:
            first |= 0x20
        if self.extension is not None:
            first |= 0x10
        second = self.payload_type | (0x80 if self.marker else 0)
        parts = [
            _HEADER.pack(first, second, self.sequence, self.timestamp, self.ssrc),
            struct.pack(f"!{len(self.csrc)}I", *self.csrc),
        ]
        if self.extension is not None:
            data = self.extension.data
            parts.append(struct.pack("!HH", self.extension.profile, len(data) // 4) + data)
        parts.append(self.payload)
        if self.padding:
            parts.append(bytes(self.padding - 1) + bytes((self.padding,)))
        return b"".join(parts)


def seq_distance(newer: int, older: int) -> int:
    """Signed distance from `older` to `newer` modulo 2**16 (RFC 1982 serial arithmetic)."""
    delta = (newer - older) % _SEQ_MOD
    return delta - _SEQ_MOD if delta >= _SEQ_MOD // 2 else delta


def ts_distance(newer: int, older: int) -> int:
    """Signed distance from `older` to `newer` modulo 2**32."""
    delta = (newer - older) % _TS_MOD
    return delta - _TS_MOD if delta >= _TS_MOD // 2 else delta


class RtpSender:
    """Numbers one outgoing stream: SSRC, sequence and timestamp (RFC 3550 5.1).

    Sequence and timestamp start at random values (RFC 3550 5.1, against known-plaintext
    attacks) and wrap modulo 2**16 / 2**32. The timestamp belongs to the stream, not to whatever
    feeds it, so switching source keeps it continuous. The marker bit is set on the first packet
    of each talkspurt (RFC 3551 4.1): the very first packet, and the first after `skip()` or
    `start_talkspurt()`.
    """

    def __init__(
        self,
        payload_type: int,
        *,
        ssrc: int | None = None,
        sequence: int | None = None,
        timestamp: int | None = None,
        rng: random.Random | None = None,
    ) -> None:
        chooser = rng or random.SystemRandom()
        self.payload_type = payload_type
        self.ssrc = chooser.getrandbits(32) if ssrc is None else ssrc
        self._sequence = chooser.getrandbits(16) if sequence is None else sequence % _SEQ_MOD
        self._timestamp = chooser.getrandbits(32) if timestamp is None else timestamp % _TS_MOD
        self._talkspurt_start = True
        #: RFC 3550 6.4.1 sender info: packets and payload octets sent since the start.
        self.packet_count = 0
        self.octet_count = 0
        #: The RTP timestamp and `now` of the latest packet, to map wallclock to RTP time in SRs.
        self.last_timestamp: int | None = None
        self.last_sent_at: float | None = None

    @property
    def sequence(self) -> int:
        """The sequence number the next packet will carry."""
        return self._sequence

    @property
    def timestamp(self) -> int:
        """The timestamp the next audio packet will carry."""
        return self._timestamp

    def start_talkspurt(self) -> None:
        """Mark the next packet as the start of a talkspurt (e.g. after a silence gap)."""
        self._talkspurt_start = True

    def skip(self, samples: int) -> None:
        """Advance the timestamp over `samples` that are not sent (silence, a DTMF event)."""
        self._timestamp = (self._timestamp + samples) % _TS_MOD
        self._talkspurt_start = True

    def packet(
        self,
        payload: bytes,
        *,
        samples: int | None = None,
        marker: bool = False,
        payload_type: int | None = None,
        timestamp: int | None = None,
        now: float | None = None,
    ) -> RtpPacket:
        """Number the next packet and advance the stream.

        `samples` is how far the timestamp advances after this packet; it defaults to
        ``len(payload)`` (one octet per sample, G.711). Pass `timestamp` (and ``samples=0``) for
        packets that carry their own timestamp, like the RFC 4733 packets of one DTMF event.
        """
        packet = RtpPacket(
            payload_type=self.payload_type if payload_type is None else payload_type,
            sequence=self._sequence,
            timestamp=self._timestamp if timestamp is None else timestamp % _TS_MOD,
            ssrc=self.ssrc,
            payload=payload,
            marker=marker or (self._talkspurt_start and timestamp is None),
        )
        if timestamp is None:
            self._talkspurt_start = False
        self._sequence = (self._sequence + 1) % _SEQ_MOD
        self._timestamp = (self._timestamp + (len(payload) if samples is None else samples)) % (
            _TS_MOD
        )
        self.packet_count += 1
        self.octet_count += len(payload)
        self.last_timestamp = packet.timestamp
        self.last_sent_at = now
        return packet

    def datagram(self, payload: bytes, now: float | None = None) -> bytes:
        """``packet(payload, now=now).serialize()`` without the packet object.

        The media clock sends one audio packet per leg every 20 ms; building and validating
        a frozen `RtpPacket` only to serialise it at once was most of that cost. Only the
        plain audio case lives here (the stream's own payload type and timestamp, marker on
        a talkspurt's first packet); DTMF events and anything unusual go through `packet`.
        """
        payload_type = self.payload_type
        if not 0 <= payload_type <= 127:
            raise RtpError(f"payload type out of range: {payload_type}")
        sequence = self._sequence
        timestamp = self._timestamp
        if self._talkspurt_start:
            payload_type |= 0x80
            self._talkspurt_start = False
        data = _HEADER.pack(PLAIN_FIRST_OCTET, payload_type, sequence, timestamp, self.ssrc)
        size = len(payload)
        self._sequence = (sequence + 1) & 0xFFFF
        self._timestamp = (timestamp + size) & 0xFFFFFFFF
        self.packet_count += 1
        self.octet_count += size
        self.last_timestamp = timestamp
        self.last_sent_at = now
        return data + payload


# RFC 3550 A.1 constants.
MAX_DROPOUT = 3000
MAX_MISORDER = 100


@dataclass(slots=True)
class ReceptionStats:
    """Reception statistics of one source (RFC 3550 A.1 sequence tracking, A.3 loss, A.8 jitter).

    Fed every accepted packet with its arrival time; `expected`, `lost`, `jitter` are what the
    receiver report carries. `interval_*` snapshots are advanced by `take_fraction_lost()`.
    """

    ssrc: int
    clock_rate: int = 8000
    base_seq: int = 0
    max_seq: int = 0
    cycles: int = 0
    bad_seq: int = _SEQ_MOD + 1
    received: int = 0
    duplicates_or_old: int = 0
    #: Interarrival jitter in timestamp units, kept as a float (A.8 uses a fixed-point 1/16).
    jitter_units: float = 0.0
    _last_transit: float | None = None
    _expected_prior: int = 0
    _received_prior: int = 0
    _started: bool = False
    #: Middle 32 bits of the NTP timestamp of the last SR from this source, and when it came.
    last_sr_ntp_middle: int = 0
    last_sr_received_at: float | None = None

    def _init_seq(self, seq: int) -> None:
        self.base_seq = seq
        self.max_seq = seq
        self.bad_seq = _SEQ_MOD + 1
        self.cycles = 0
        self.received = 0
        self._expected_prior = 0
        self._received_prior = 0

    def update_seq(self, seq: int) -> bool:
        """RFC 3550 A.1 without probation; False when the packet is too old/duplicate to count."""
        if not self._started:
            self._started = True
            self._init_seq(seq)
            self.received = 1
            return True
        udelta = (seq - self.max_seq) % _SEQ_MOD
        if udelta < MAX_DROPOUT:
            if seq < self.max_seq:
                self.cycles += _SEQ_MOD
            self.max_seq = seq
        elif udelta <= _SEQ_MOD - MAX_MISORDER:
            # A very large jump: the sender restarted unless two in a row agree (A.1).
            if seq == self.bad_seq:
                self._init_seq(seq)
            else:
                self.bad_seq = (seq + 1) % _SEQ_MOD
                self.duplicates_or_old += 1
                return False
        else:
            # Duplicate or reordered within the misorder window: counted as received (A.3).
            pass
        self.received += 1
        return True

    def update_jitter(self, timestamp: int, arrival: float) -> None:
        """RFC 3550 A.8: J += (|D| - J) / 16, D from the transit time difference."""
        transit = arrival * self.clock_rate - timestamp
        if self._last_transit is not None:
            d = transit - self._last_transit
            # The timestamp may have wrapped between the two packets; fold D back into range.
            d = (d + _TS_MOD / 2) % _TS_MOD - _TS_MOD / 2
            self.jitter_units += (abs(d) - self.jitter_units) / 16.0
        self._last_transit = transit

    @property
    def extended_max_seq(self) -> int:
        return self.cycles + self.max_seq

    @property
    def expected(self) -> int:
        return self.extended_max_seq - self.base_seq + 1 if self._started else 0

    @property
    def lost(self) -> int:
        """Cumulative packets lost (A.3), clamped to the signed 24-bit field of the report."""
        return max(-0x800000, min(0x7FFFFF, self.expected - self.received))

    @property
    def jitter(self) -> int:
        """Interarrival jitter in timestamp units as the report carries it."""
        return int(self.jitter_units)

    @property
    def jitter_seconds(self) -> float:
        return self.jitter_units / self.clock_rate

    def take_fraction_lost(self) -> int:
        """Fraction lost since the previous call, as the 8-bit fixed point of A.3."""
        expected_interval = self.expected - self._expected_prior
        self._expected_prior = self.expected
        received_interval = self.received - self._received_prior
        self._received_prior = self.received
        lost_interval = expected_interval - received_interval
        if expected_interval == 0 or lost_interval <= 0:
            return 0
        return min(255, (lost_interval << 8) // expected_interval)


@dataclass(frozen=True, slots=True)
class RemoteLatched:
    """Media from `address` is now accepted and sent back there (symmetric RTP, RFC 4961)."""

    address: Address
    ssrc: int
    previous: Address | None


@dataclass(frozen=True, slots=True)
class RtpTimeout:
    """No RTP accepted for `timeout` seconds; the switch decides (typically: hang up the leg)."""

    last_packet_at: float
    now: float


@dataclass(frozen=True, slots=True)
class SourceChanged:
    """A new SSRC took over the stream (the far end switched its own source)."""

    old_ssrc: int
    new_ssrc: int


RtpEvent = RemoteLatched | RtpTimeout | SourceChanged


@dataclass(slots=True)
class SessionCounters:
    malformed: int = 0
    foreign: int = 0
    accepted: int = 0


@dataclass(slots=True)
class _Latch:
    address: Address | None = None
    last_at: float | None = None


class RtpSession:
    """The receiving side of one leg's RTP: who may send to us, statistics, inactivity.

    Latching (RFC 4961 symmetric RTP, the comedia habit of SBCs): with `latching` on, the first
    packet from any address latches the stream there and our RTP is sent back to that address,
    which makes phones behind NAT work. A packet from the SDP address always wins the latch; a
    different address may take over the latch only after the latched one has been silent for
    `relatch_after` seconds (NAT rebinding), so a stray source cannot hijack a live stream. With
    `latching` off only the SDP address is accepted.

    Inactivity: after `timeout` seconds without an accepted packet one `RtpTimeout` is reported;
    it re-arms when packets flow again. `timeout=None` disables it (e.g. while on hold).
    """

    def __init__(
        self,
        *,
        now: float,
        remote: Address | None = None,
        latching: bool = True,
        timeout: float | None = 30.0,
        relatch_after: float = 0.5,
        clock_rate: int = 8000,
    ) -> None:
        self.latching = latching
        self.clock_rate = clock_rate
        self.relatch_after = relatch_after
        #: Payload type of RFC 4733 events; their shared timestamps must not count as jitter.
        self.dtmf_payload_type: int | None = None
        self.counters = SessionCounters()
        self.stats: ReceptionStats | None = None
        self._sdp_remote = remote
        self._latch = _Latch()
        self._timeout = timeout
        self._activity_since = now
        self._timed_out = False
        self._events: deque[RtpEvent] = deque()

    # -- addresses -------------------------------------------------------------------------

    @property
    def remote(self) -> Address | None:
        """Where to send our RTP: the latched address if any, else the SDP address."""
        return self._latch.address or self._sdp_remote

    @property
    def latched(self) -> Address | None:
        return self._latch.address

    def update_remote(self, remote: Address | None, now: float) -> None:
        """The SDP address changed (re-INVITE); forget the latch so the stream re-latches."""
        if remote != self._sdp_remote:
            self._sdp_remote = remote
            self._latch = _Latch()
        self._activity_since = now
        self._timed_out = False

    def set_timeout(self, timeout: float | None, now: float) -> None:
        self._timeout = timeout
        self._activity_since = now
        self._timed_out = False

    # -- receiving -------------------------------------------------------------------------

    def _accepts(self, address: Address, now: float) -> bool:
        latch = self._latch
        if address == latch.address:
            return True
        if address == self._sdp_remote:
            return True
        if not self.latching:
            return False
        if latch.address is None:
            return True
        return latch.last_at is None or now - latch.last_at >= self.relatch_after

    def receive_datagram(self, data: bytes, address: Address, now: float) -> RtpPacket | None:
        """Feed one datagram; returns the packet if it is valid and from an accepted source.

        Malformed datagrams and datagrams from sources we do not accept are dropped and counted
        (`counters`), never raised: a stray packet must not disturb a call (RFC 3550 A.1).
        """
        try:
            packet = RtpPacket.parse(data)
        except RtpError:
            self.counters.malformed += 1
            return None
        if not self.receive_header(
            packet.payload_type, packet.sequence, packet.timestamp, packet.ssrc, address, now
        ):
            return None
        return packet

    def receive_header(
        self,
        payload_type: int,
        sequence: int,
        timestamp: int,
        ssrc: int,
        address: Address,
        now: float,
    ) -> bool:
        """`receive_datagram` for a header the caller already parsed (a plain packet read in
        place, see `PLAIN_HEADER`): latch and account it; False when its source is refused."""
        latch = self._latch
        if address != latch.address:
            if not self._accepts(address, now):
                self.counters.foreign += 1
                return False
            self._events.append(RemoteLatched(address, ssrc, latch.address))
            latch.address = address
        latch.last_at = now
        self.counters.accepted += 1
        self._activity_since = now
        self._timed_out = False
        stats = self.stats
        if stats is None or stats.ssrc != ssrc:
            if stats is not None:
                self._events.append(SourceChanged(stats.ssrc, ssrc))
            stats = self.stats = ReceptionStats(ssrc, clock_rate=self.clock_rate)
        if stats.update_seq(sequence) and payload_type != self.dtmf_payload_type:
            stats.update_jitter(timestamp, now)
        return True

    # -- timers and events -----------------------------------------------------------------

    def get_timer(self) -> float | None:
        """When the session next wants `handle_timer`, or None."""
        if self._timeout is None or self._timed_out:
            return None
        return self._activity_since + self._timeout

    def handle_timer(self, now: float) -> None:
        deadline = self.get_timer()
        if deadline is not None and now >= deadline:
            self._timed_out = True
            self._events.append(RtpTimeout(self._activity_since, now))

    def next_event(self) -> RtpEvent | None:
        return self._events.popleft() if self._events else None

    def events(self) -> list[RtpEvent]:
        """Drain every pending event."""
        drained = list(self._events)
        self._events.clear()
        return drained


__all__ = [
    "PLAIN_FIRST_OCTET",
    "PLAIN_HEADER",
    "Address",
    "MediaError",
    "RemoteLatched",
    "ReceptionStats",
    "RtpError",
    "RtpEvent",
    "RtpHeaderExtension",
    "RtpPacket",
    "RtpSender",
    "RtpSession",
    "RtpTimeout",
    "SessionCounters",
    "SourceChanged",
    "seq_distance",
    "ts_distance",
]
