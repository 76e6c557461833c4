"""DTMF: RFC 4733 telephone-events in and out, and SIP INFO DTMF in.

- `TelephoneEvent` is the 4-octet payload (RFC 4733 2.3).
- `DtmfReceiver` turns a leg's event packets into one `DtmfDigit` per key press. All packets
  of one press share an RTP timestamp (2.5.1.1), the end packet is sent three times (2.5.1.4)
  and the start packet (marker bit) may be lost, so a press is identified by its timestamp,
  reported at its first end packet, and later copies are ignored. A press whose end packets
  were all lost is reported when the next press starts or after `timeout` of silence.
- `DtmfSender` plays digits out on a leg's `RtpSender`: a marked start packet, updates every
  50 ms, three end packets, then the audio timestamp moves on past the event.
- `parse_info_body` reads the bodies phones put in SIP INFO (application/dtmf-relay and
  application/dtmf).
"""

from __future__ import annotations

import struct
from collections import deque
from dataclasses import dataclass

from media.rtp import MediaError, RtpPacket, RtpSender

#: Event codes 0-15 (RFC 4733 3.2 table 7); 16 is hook flash.
DIGITS = "0123456789*#ABCD"
FLASH = "!"
_EVENT = struct.Struct("!BBH")


class DtmfError(MediaError):
    """A malformed telephone-event payload, INFO body or digit."""


def event_code(digit: str) -> int:
    """The RFC 4733 event code of a digit ("0"-"9", "*", "#", "A"-"D", "!" for flash)."""
    if digit == FLASH:
        return 16
    index = DIGITS.find(digit.upper()) if len(digit) == 1 else -1
    if index < 0:
        raise DtmfError(f"not a DTMF digit: {digit!r}")
    return index


def event_digit(code: int) -> str | None:
    """The digit of an event code, or None for events that are not DTMF (tones, etc.)."""
    if 0 <= code < len(DIGITS):
        return DIGITS[code]
    return FLASH if code == 16 else None


@dataclass(frozen=True, slots=True)
class TelephoneEvent:
    """RFC 4733 2.3 payload: event, E bit, volume (-dBm0, 0-63) and duration (timestamp units)."""

    event: int
    end: bool = False
    volume: int = 10
    duration: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.event <= 255:
            raise DtmfError(f"event code out of range: {self.event}")
        if not 0 <= self.volume <= 63:
            raise DtmfError(f"volume out of range: {self.volume}")
        if not 0 <= self.duration <= 0xFFFF:
            raise DtmfError(f"duration out of range: {self.duration}")

    @property
    def digit(self) -> str | None:
        return event_digit(self.event)

    @classmethod
    def parse(cls, payload: bytes) -> TelephoneEvent:
        if len(payload) < _EVENT.size:
            raise DtmfError(f"telephone-event payload too short: {len(payload)} octets")
        event, flags, duration = _EVENT.unpack_from(payload)
        # The R bit (0x40) is reserved: ignored on receipt (RFC 4733 2.3).
        return cls(event, bool(flags & 0x80), flags & 0x3F, duration)

    def serialize(self) -> bytes:
        return _EVENT.pack(self.event, (0x80 if self.end else 0) | self.volume, self.duration)


@dataclass(frozen=True, slots=True)
class DtmfDigit:
    """One key press on a leg; `duration` in seconds."""

    digit: str
    duration: float


# -- receiving ------------------------------------------------------------------------------


@dataclass(slots=True)
class _Press:
    timestamp: int
    event: int
    duration: int
    last_seen: float


class DtmfReceiver:
    """One leg's RFC 4733 receiver; feed it the packets of the negotiated telephone-event PT."""

    def __init__(self, *, clock_rate: int = 8000, timeout: float = 0.5) -> None:
        self.clock_rate = clock_rate
        self.timeout = timeout
        self.malformed = 0
        self._current: _Press | None = None
        # Timestamps of presses already reported: their redundant end packets are ignored.
        self._finished: deque[int] = deque(maxlen=32)

    def _finish(self, press: _Press) -> list[DtmfDigit]:
        self._finished.append(press.timestamp)
        self._current = None
        digit = event_digit(press.event)
        if digit is None:
            return []
        return [DtmfDigit(digit, press.duration / self.clock_rate)]

    def receive(self, packet: RtpPacket, now: float) -> list[DtmfDigit]:
        """Digest one telephone-event packet; returns the presses it completed (0, 1 or 2)."""
        try:
            event = TelephoneEvent.parse(packet.payload)
        except DtmfError:
            self.malformed += 1
            return []
        if packet.timestamp in self._finished:
            return []
        done: list[DtmfDigit] = []
        current = self._current
        if current is not None and current.timestamp != packet.timestamp:
            # A new press began before the old one's end arrived: its ends were lost.
            done += self._finish(current)
            current = None
        if current is None:
            current = self._current = _Press(packet.timestamp, event.event, 0, now)
        current.duration = max(current.duration, event.duration)
        current.last_seen = now
        if event.end:
            done += self._finish(current)
        return done

    def get_timer(self) -> float | None:
        return None if self._current is None else self._current.last_seen + self.timeout

    def handle_timer(self, now: float) -> list[DtmfDigit]:
        """Report a press whose end packets never came once it has been silent for `timeout`."""
        deadline = self.get_timer()
        if self._current is None or deadline is None or now < deadline:
            return []
        return self._finish(self._current)


# -- sending --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PlannedEvent:
    """One packet of a press: send it `at` seconds after the press starts."""

    at: float
    event: TelephoneEvent
    marker: bool


def plan_digit(
    digit: str,
    duration: float = 0.1,
    *,
    volume: int = 10,
    clock_rate: int = 8000,
    update_interval: float = 0.05,
    end_repeats: int = 3,
    end_spacing: float = 0.02,
    frame: float = 0.02,
) -> list[PlannedEvent]:
    """The packets of one press (RFC 4733 2.5.1): a start packet with the marker bit, an
    update every `update_interval` carrying the duration so far (counting the packet's own
    `frame`, so the start packet never says 0), then `end_repeats` end packets with the final
    duration."""
    code = event_code(digit)
    if duration <= 0:
        raise DtmfError("a DTMF press needs a positive duration")
    total = min(0xFFFF, round(duration * clock_rate))
    plan: list[PlannedEvent] = []
    at = 0.0
    while at < duration - 1e-9:
        so_far = min(total, round((at + frame) * clock_rate))
        plan.append(PlannedEvent(at, TelephoneEvent(code, False, volume, so_far), not plan))
        at += update_interval
    end = TelephoneEvent(code, True, volume, total)
    plan += [PlannedEvent(duration + i * end_spacing, end, False) for i in range(end_repeats)]
    return plan


@dataclass(slots=True)
class _Sending:
    started: float
    timestamp: int
    plan: deque[PlannedEvent]


class DtmfSender:
    """Plays queued digits on a leg's `RtpSender`, driven by the media clock.

    Call `packets_due(now)` every tick. While `busy`, the leg sends no audio; when a press
    finishes, the stream's timestamp skips the time the event took so the audio that follows
    stays on the wallclock-aligned timeline (RFC 4733 2.5.1.5).
    """

    def __init__(
        self,
        rtp: RtpSender,
        payload_type: int,
        *,
        clock_rate: int = 8000,
        duration: float = 0.1,
        gap: float = 0.07,
        volume: int = 10,
    ) -> None:
        self.rtp = rtp
        self.payload_type = payload_type
        self.clock_rate = clock_rate
        self.duration = duration
        self.gap = gap
        self.volume = volume
        self._queue: deque[str] = deque()
        self._sending: _Sending | None = None
        self._next_start: float | None = None

    @property
    def busy(self) -> bool:
        """True while an event is on the wire (the leg must not send audio)."""
        return self._sending is not None

    @property
    def pending(self) -> bool:
        return self._sending is not None or bool(self._queue)

    def send(self, digits: str, now: float) -> None:
        for digit in digits:
            event_code(digit)  # validate before anything is queued
        self._queue.extend(digits)
        if self._next_start is None or self._next_start < now:
            self._next_start = now

    def packets_due(self, now: float) -> list[RtpPacket]:
        out: list[RtpPacket] = []
        if self._sending is None and self._queue and self._next_start is not None:
            if now >= self._next_start:
                digit = self._queue.popleft()
                self._sending = _Sending(
                    now,
                    self.rtp.timestamp,
                    deque(
                        plan_digit(
                            digit, self.duration, volume=self.volume, clock_rate=self.clock_rate
                        )
                    ),
                )
        sending = self._sending
        if sending is None:
            return out
        while sending.plan and sending.started + sending.plan[0].at <= now + 1e-9:
            planned = sending.plan.popleft()
            out.append(
                self.rtp.packet(
                    planned.event.serialize(),
                    payload_type=self.payload_type,
                    timestamp=sending.timestamp,
                    samples=0,
                    marker=planned.marker,
                    now=now,
                )
            )
        if not sending.plan:
            self.rtp.skip(round((now - sending.started) * self.clock_rate))
            self._sending = None
            self._next_start = now + self.gap
        return out


# -- SIP INFO -------------------------------------------------------------------------------

#: Signal values some phones send as numbers (Cisco-style dtmf-relay).
_NUMERIC_SIGNALS = {"10": "*", "11": "#", "12": "A", "13": "B", "14": "C", "15": "D", "16": "!"}


def _signal_digit(value: str) -> str:
    value = value.strip()
    digit = _NUMERIC_SIGNALS.get(value, value.upper())
    event_code(digit)
    return digit


def parse_info_body(
    content_type: str, body: bytes | str, *, default_duration: float = 0.1
) -> DtmfDigit:
    """The digit in a SIP INFO body.

    application/dtmf-relay: ``Signal=5`` and optional ``Duration=160`` (milliseconds) lines;
    application/dtmf: the digit alone. Raises `DtmfError` for other types or bad bodies.
    """
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    media_type = content_type.split(";")[0].strip().lower()
    if media_type == "application/dtmf":
        return DtmfDigit(_signal_digit(text), default_duration)
    if media_type != "application/dtmf-relay":
        raise DtmfError(f"not a DTMF INFO body: {content_type!r}")
    fields: dict[str, str] = {}
    for line in text.replace("\r\n", "\n").split("\n"):
        key, eq, value = line.partition("=")
        if eq:
            fields[key.strip().lower()] = value.strip()
    if "signal" not in fields:
        raise DtmfError("dtmf-relay body without Signal=")
    duration = default_duration
    if "duration" in fields:
        if not fields["duration"].isdigit():
            raise DtmfError(f"bad Duration in dtmf-relay body: {fields['duration']!r}")
        duration = int(fields["duration"]) / 1000.0
    return DtmfDigit(_signal_digit(fields["signal"]), duration)


def info_body(digit: str, duration: float = 0.1) -> bytes:
    """An application/dtmf-relay body for `digit`."""
    event_code(digit)
    return f"Signal={digit}\r\nDuration={round(duration * 1000)}\r\n".encode()


__all__ = [
    "DIGITS",
    "FLASH",
    "DtmfDigit",
    "DtmfError",
    "DtmfReceiver",
    "DtmfSender",
    "PlannedEvent",
    "TelephoneEvent",
    "event_code",
    "event_digit",
    "info_body",
    "parse_info_body",
    "plan_digit",
]
