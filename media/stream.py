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
from media.rtp import RtpEvent, RtpPacket, RtpSender, RtpSession
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

    @property
    def remote(self) -> tuple[str, int] | None:
        return self.session.remote

    @property
    def receiving(self) -> bool:
        return self.config.direction.receives

    @property
    def sending(self) -> bool:
        return self.config.direction.sends and self.remote is not None

    # --- in ---

    def receive_datagram(self, data: bytes, address: tuple[str, int], now: float) -> None:
        packet = self.session.receive_datagram(data, address, now)
        if packet is None:
            return
        if packet.payload_type == self.config.dtmf_payload_type:
            self.digits.extend(self.dtmf_in.receive(packet, now))
            return
        if not self.receiving:
            return
        if packet.payload_type != self.config.payload_type:
            return  # comfort noise, or a codec other than the one negotiated
        self.jitter.put(packet.sequence, packet.timestamp, packet.payload, now)

    def read_frame(self, now: float) -> Pcm | None:
        """This tick's decoded frame from the phone (None while it sends nothing)."""
        self.digits.extend(self.dtmf_in.handle_timer(now))
        frame = self.jitter.get(now)
        if frame is None:
            return None
        return self.config.law.decode(frame.payload)

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

    def send_dtmf(self, digits: str, now: float) -> None:
        self.dtmf_out.send(digits, now)
