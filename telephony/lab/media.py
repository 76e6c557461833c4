"""A scripted phone's media: one RTP socket, G.711 out of a sample source, a recording in.

The sender runs on the phone's own 20 ms schedule (from a monotonic start, so it does not
drift); the recording is placed by RTP timestamp relative to the first packet heard, plus
the wall-clock time that first packet arrived, so missing packets leave silence, not gaps.
"""

from __future__ import annotations

import asyncio
import logging

import numpy as np
import numpy.typing as npt

from media import sdp
from media.dtmf import DtmfReceiver, DtmfSender
from media.g711 import Law
from media.rtcp import RtcpError, RtcpPacket, parse_compound
from media.rtp import RtpError, RtpPacket, RtpSender

log = logging.getLogger("qconnect.lab.media")

RATE = 8000
FRAME = 160  # samples per 20 ms
PTIME = 0.020
DTMF_PT = 101


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, owner: CallMedia) -> None:
        self.owner = owner

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.owner._received(data, addr)


class _RtcpProtocol(asyncio.DatagramProtocol):
    def __init__(self, owner: CallMedia) -> None:
        self.owner = owner

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            self.owner.rtcp_received.extend(parse_compound(data))
        except RtcpError:
            pass


class CallMedia:
    def __init__(
        self, bind: str, name: str = "phone", codecs: tuple[sdp.Codec, ...] = (sdp.PCMU, sdp.PCMA)
    ) -> None:
        self.bind = bind
        self.name = name
        self.codecs = codecs
        self.port = 0
        self.direction = "sendrecv"
        self.law = Law.ULAW
        self.payload_type = 0
        self.remote: tuple[str, int] | None = None
        self.remote_direction = "sendrecv"
        self._transport: asyncio.DatagramTransport | None = None
        self._rtcp_transport: asyncio.DatagramTransport | None = None
        self.rtcp_received: list[RtcpPacket] = []  # what the far end reported to us
        self._sender: asyncio.Task[None] | None = None
        self._source: npt.NDArray[np.int16] = np.zeros(0, dtype=np.int16)
        self._source_pos = 0
        self._loop_source = False
        self._rtp = RtpSender(0)
        self._dtmf = DtmfSender(self._rtp, DTMF_PT)
        self._dtmf_in = DtmfReceiver()
        self._last_offer: sdp.SessionDescription | None = None
        self._last_sent: sdp.SessionDescription | None = None
        # recording: frames keyed by their slot (20 ms units since the recording started)
        self._start: float | None = None
        self._first_ts: int | None = None
        self._first_slot = 0
        self._frames: dict[int, npt.NDArray[np.int16]] = {}
        self.packets_received = 0
        self.raw_received: list[bytes] = []  # payloads as received, for bit-exact checks
        self.raw_sent: list[bytes] = []
        self.sending = True  # False: stop sending RTP (a phone that vanished)
        self.dtmf_heard: list[str] = []
        self._last_event_ts: int | None = None

    # --- life cycle ---

    async def start(self) -> None:
        if self._transport is not None:
            return
        loop = asyncio.get_running_loop()
        # An even RTP port with RTCP on the next one (RFC 3550 11), like a real phone.
        for _ in range(50):
            transport, _ = await loop.create_datagram_endpoint(
                lambda: _Protocol(self), local_addr=(self.bind, 0)
            )
            port = transport.get_extra_info("sockname")[1]
            if port % 2 == 0 and port < 65535:
                try:
                    self._rtcp_transport, _ = await loop.create_datagram_endpoint(
                        lambda: _RtcpProtocol(self), local_addr=(self.bind, port + 1)
                    )
                    break
                except OSError:
                    pass
            transport.close()
        else:
            raise OSError("no even RTP port with a free RTCP port found")
        self._transport = transport
        self.port = port
        self._start = loop.time()
        self._sender = loop.create_task(self._send_loop())

    def stop(self) -> None:
        if self._sender is not None:
            self._sender.cancel()
            self._sender = None
        if self._transport is not None:
            self._transport.close()
            self._transport = None
        if self._rtcp_transport is not None:
            self._rtcp_transport.close()
            self._rtcp_transport = None

    @property
    def started_at(self) -> float | None:
        """Loop time of the first sample of `heard()` (None: media never started)."""
        return self._start

    @property
    def ssrc(self) -> int:
        return self._rtp.ssrc

    # --- SDP ---

    def offer(self) -> bytes:
        self._last_offer = sdp.make_offer(
            address=self.bind,
            port=self.port,
            codecs=self.codecs,
            dtmf_payload_type=DTMF_PT,
            direction=sdp.Direction(self.direction),
            previous=self._last_sent,
        )
        self._last_sent = self._last_offer
        return self._last_offer.serialize()

    def answer(self, offer_body: bytes) -> bytes:
        offer = sdp.SessionDescription.parse(offer_body)
        answer, negotiated = sdp.make_answer(
            offer,
            address=self.bind,
            port=self.port,
            codecs=self.codecs,
            direction=sdp.Direction(self.direction),
            previous=self._last_sent,
        )
        self._last_sent = answer
        self._apply(negotiated)
        return answer.serialize()

    def apply_answer(self, body: bytes) -> None:
        if not body or self._last_offer is None:
            return
        answer = sdp.SessionDescription.parse(body)
        self._apply(sdp.negotiate_answer(self._last_offer, answer, codecs=self.codecs))

    def _apply(self, negotiated: sdp.Negotiated) -> None:
        self.remote = negotiated.remote
        self.payload_type = negotiated.payload_type
        self.law = Law.from_encoding_name(negotiated.codec.name)
        self.remote_direction = str(negotiated.remote_direction)

    # --- sending ---

    def play(self, samples: npt.NDArray[np.int16], *, loop: bool = False) -> None:
        """Send these 8 kHz samples from the next frame on (replacing what was playing)."""
        self._source = np.asarray(samples, dtype=np.int16)
        self._source_pos = 0
        self._loop_source = loop

    def send_dtmf(self, digits: str) -> None:
        """RFC 4733 events, in place of audio while each key is down."""
        self._dtmf.send(digits, asyncio.get_running_loop().time())

    def _next_frame(self) -> npt.NDArray[np.int16]:
        end = self._source_pos + FRAME
        frame = self._source[self._source_pos : end]
        if len(frame) < FRAME:
            if self._loop_source and len(self._source):
                self._source_pos = FRAME - len(frame)
                return np.concatenate([frame, self._source[: self._source_pos]])
            self._source_pos = len(self._source)
            return np.concatenate([frame, np.zeros(FRAME - len(frame), dtype=np.int16)])
        self._source_pos = end
        return frame

    async def _send_loop(self) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        tick = 0
        while True:
            tick += 1
            await asyncio.sleep(max(0.0, start + tick * PTIME - loop.time()))
            now = loop.time()
            frame = self._next_frame()
            self._rtp.payload_type = self.payload_type
            if self._dtmf.pending:
                packets = self._dtmf.packets_due(now)
                if packets or self._dtmf.busy:
                    self._transmit(packets)
                    continue
            if self.direction in ("recvonly", "inactive"):
                self._rtp.skip(FRAME)
                continue
            payload = self.law.encode(frame).tobytes()
            self._transmit([self._rtp.packet(payload, now=now)])

    def _transmit(self, packets: list[RtpPacket]) -> None:
        if self._transport is None or self.remote is None or not self.sending:
            return
        for packet in packets:
            self._transport.sendto(packet.serialize(), self.remote)
            if packet.payload_type != DTMF_PT:
                self.raw_sent.append(packet.payload)

    # --- receiving ---

    def _received(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            packet = RtpPacket.parse(data)
        except RtpError:
            return
        loop = asyncio.get_running_loop()
        if packet.payload_type == DTMF_PT:
            self.dtmf_heard.extend(d.digit for d in self._dtmf_in.receive(packet, loop.time()))
            return
        if packet.payload_type not in (0, 8):
            return
        assert self._start is not None
        if self._first_ts is None:
            self._first_ts = packet.timestamp
            self._first_slot = round((loop.time() - self._start) / PTIME)
        delta = (packet.timestamp - self._first_ts) & 0xFFFFFFFF
        if delta > 0x7FFFFFFF:
            return  # older than the first packet we placed
        slot = self._first_slot + delta // FRAME
        law = Law.ALAW if packet.payload_type == 8 else Law.ULAW
        self._frames[slot] = law.decode(packet.payload)
        self.raw_received.append(packet.payload)
        self.packets_received += 1

    def heard(self) -> npt.NDArray[np.int16]:
        if not self._frames:
            return np.zeros(0, dtype=np.int16)
        last = max(self._frames)
        out = np.zeros((last + 1) * FRAME, dtype=np.int16)
        for slot, frame in self._frames.items():
            out[slot * FRAME : slot * FRAME + len(frame)] = frame[:FRAME]
        return out
