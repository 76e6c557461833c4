"""One leg's audio, sans-I/O: RTP in -> jitter buffer -> PCM frames; PCM frames -> G.711 RTP out.

The media engine owns the sockets and the 20 ms clock; a `MediaStream` only turns datagrams
and ticks into frames and datagrams. It follows what SDP negotiated (codec, payload types,
direction, remote address) and can be re-negotiated at any time (re-INVITE).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from media.dtmf import DtmfDigit, DtmfReceiver, DtmfSender
from media.g711 import Law
from media.jitter import JitterBuffer
from media.rtp import (
    PLAIN_FIRST_OCTET,
    PLAIN_HEADER,
    RtpEvent,
    RtpPacket,
    RtpSender,
    RtpSession,
)
from media.sdp import Direction, Negotiated

FRAME_SAMPLES = 160
Pcm = npt.NDArray[np.int16]


@dataclass(frozen=True, slots=True)
class StreamConfig:
    """What SDP settled for this leg, in the terms the stream needs."""

    payload_type: int
    law: Law
    dtmf_payload_type: int | None
    direction: Direction  # from our side: may we send, may we receive
    remote: tuple[str, int] | None

    @classmethod
    def from_negotiated(cls, negotiated: Negotiated) -> StreamConfig:
        return cls(
            payload_type=negotiated.payload_type,
            law=Law.from_encoding_name(negotiated.codec.name),
            dtmf_payload_type=negotiated.dtmf_payload_type,
            direction=negotiated.direction,
            remote=negotiated.remote,
        )


class MediaStream:
    def __init__(
        self, config: StreamConfig, now: float, *, rtp_timeout: float | None = None
    ) -> None:
        self.config = config
        self.session = RtpSession(remote=config.remote, now=now, timeout=rtp_timeout)
        self.session.dtmf_payload_type = config.dtmf_payload_type
        self.sender = RtpSender(config.payload_type)
        self.jitter = JitterBuffer(config.law)
        self.dtmf_in = DtmfReceiver()
        self.dtmf_out = DtmfSender(self.sender, config.dtmf_payload_type or 101)
        self.digits: list[DtmfDigit] = []
        self._dtmf_in_progress = False  # a press is being received: its timer needs checking
        self._dtmf_sending = False  # digits were queued: audio waits while they are sent
        self._cache(config)

    def _cache(self, config: StreamConfig) -> None:
        # Read per packet and per tick: kept as plain attributes, refreshed on every change.
        self._payload_type = config.payload_type
        self._dtmf_payload_type = config.dtmf_payload_type
        self._receives = config.direction.receives
        self._sends = config.direction.sends

    def reconfigure(self, config: StreamConfig, now: float) -> None:
        """A re-INVITE changed the SDP: new address re-latches; a new codec keeps numbering."""
        if config.remote != self.config.remote:
            self.session.update_remote(config.remote, now)
        if config.payload_type != self.config.payload_type:
            self.sender.payload_type = config.payload_type
            self.jitter = JitterBuffer(config.law)
        if config.dtmf_payload_type is not None:
            self.dtmf_out.payload_type = config.dtmf_payload_type
        self.session.dtmf_payload_type = config.dtmf_payload_type
        self.config = config
        self._cache(config)

    @property
    def remote(self) -> tuple[str, int] | None:
        return self.session.remote

    @property
    def receiving(self) -> bool:
        return self.config.direction.receives

    @property
    def sending(self) -> bool:
        return self._sends and self.session.remote is not None

    # --- in ---

    def receive_datagram(self, data: bytes, address: tuple[str, int], now: float) -> None:
        if len(data) < PLAIN_HEADER.size or data[0] != PLAIN_FIRST_OCTET:
            # CSRCs, an extension, padding, or not RTP at all: the full parse decides.
            packet = self.session.receive_datagram(data, address, now)
            if packet is not None:
                self._receive(packet.payload_type, packet.sequence, packet.timestamp, data, now)
            return
        # A plain packet (nearly all of them): its header is read in place, no packet object.
        second, sequence, timestamp, ssrc = PLAIN_HEADER.unpack_from(data)
        payload_type = second & 0x7F
        if self.session.receive_header(payload_type, sequence, timestamp, ssrc, address, now):
            self._receive(payload_type, sequence, timestamp, data, now)

    def _receive(
        self, payload_type: int, sequence: int, timestamp: int, data: bytes, now: float
    ) -> None:
        if payload_type == self._dtmf_payload_type:
            self._dtmf_in_progress = True
            self.digits.extend(self.dtmf_in.receive(RtpPacket.parse(data), now))
            return
        if not self._receives:
            return
        if payload_type != self._payload_type:
            return  # comfort noise, or a codec other than the one negotiated
        if data[0] == PLAIN_FIRST_OCTET:
            payload = data[PLAIN_HEADER.size :]
        else:
            payload = RtpPacket.parse(data).payload
        self.jitter.put(sequence, timestamp, payload, now)

    def read_payload(self, now: float) -> bytes | None:
        """This tick's frame from the phone as G.711 codes (None while it sends nothing);
        the media engine decodes every leg's codes in one table lookup."""
        if self._dtmf_in_progress:
            self.digits.extend(self.dtmf_in.handle_timer(now))
            self._dtmf_in_progress = self.dtmf_in.get_timer() is not None
        return self.jitter.get_payload(now)

    def read_frame(self, now: float) -> Pcm | None:
        """This tick's decoded frame from the phone (None while it sends nothing)."""
        codes = self.read_payload(now)
        if codes is None:
            return None
        return self.config.law.decode(codes)

    def events(self, now: float) -> list[RtpEvent]:
        """RTP inactivity and latching news since the last call."""
        self.session.handle_timer(now)
        return self.session.events()

    def take_digits(self) -> list[DtmfDigit]:
        digits, self.digits = self.digits, []
        return digits

    # --- out ---

    def packets_for(self, encoded: bytes, now: float) -> list[RtpPacket]:
        """The datagrams to send this tick: DTMF events while a digit is being sent (they
        replace the audio, RFC 4733 2.5.1.1 keeps the timestamp running), else the frame."""
        if not self.sending:
            self.sender.skip(FRAME_SAMPLES)
            return []
        if self.dtmf_out.pending:
            events = self.dtmf_out.packets_due(now)
            if events or self.dtmf_out.busy:
                return events
        return [self.sender.packet(encoded, now=now)]

    def audio_datagram(self, encoded: bytes, now: float) -> bytes | None:
        """This tick's frame as one ready-to-send datagram, the usual case of `packets_for`;
        None when `packets_for` must decide instead (not sending, or DTMF on the wire)."""
        if not self._sends or self.session.remote is None:
            return None
        if self._dtmf_sending:
            if self.dtmf_out.pending:
                return None
            self._dtmf_sending = False
        return self.sender.datagram(encoded, now)

    def send_dtmf(self, digits: str, now: float) -> None:
        self.dtmf_out.send(digits, now)
        self._dtmf_sending = True
