"""The media engine: every leg's RTP socket, one 20 ms clock, one conference bridge.

Each leg's audio is terminated here (decoded into the bridge, mixed, encoded back), so
whispers, hold music and conferences are just bridge connections (pjmedia's idea). The
clock tick never awaits: it reads every leg's jitter buffer and every player, mixes all
sinks at once with numpy, encodes and sends every leg's packet, and records every leg.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from media.bridge import Bridge
from media.clock import MediaClock
from media.dtmf import DtmfDigit
from media.g711 import Law
from media.player import (
    Clip,
    PlaybackCancelled,
    PlaybackFinished,
    PlaybackStarted,
    Player,
    PlayItem,
)
from media.recorder import CallRecorder
from media.rtcp import RtcpSession
from media.rtp import RtpTimeout
from media.sdp import (
    PCMA,
    PCMU,
    Codec,
    Direction,
    SessionDescription,
    make_answer,
    make_offer,
    negotiate_answer,
)
from media.stream import FRAME_SAMPLES, MediaStream, Pcm, StreamConfig
from telephony.switch.rtp_ports import PortRange, PortsExhausted

log = logging.getLogger("qconnect.media")

SILENCE: Pcm = np.zeros(FRAME_SAMPLES, dtype=np.int16)
_numbers = itertools.count(1)


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, leg: EngineLeg) -> None:
        self.leg = leg

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.leg._datagram(data, addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("rtp %s: %s", self.leg.name, exc)


class _RtcpProtocol(asyncio.DatagramProtocol):
    def __init__(self, leg: EngineLeg) -> None:
        self.leg = leg

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.leg._rtcp_datagram(data)


@dataclass(eq=False)
class EngineLeg:
    """One leg's media: socket, stream (after SDP), bridge slot, recorder."""

    engine: MediaEngine
    name: str
    port: int
    slot: int
    transport: asyncio.DatagramTransport | None = None
    rtcp_transport: asyncio.DatagramTransport | None = None
    rtcp: RtcpSession | None = None
    stream: MediaStream | None = None
    recorder: CallRecorder | None = None
    last_sent_sdp: SessionDescription | None = None
    last_offer: SessionDescription | None = None
    remote_direction: Direction = Direction.SENDRECV
    said: Pcm | None = None
    on_digit: Callable[[DtmfDigit], None] = lambda digit: None
    on_timeout: Callable[[], None] = lambda: None
    closed: bool = False

    @property
    def recording(self) -> Path | None:
        return self.recorder.path if self.recorder is not None else None

    @property
    def on_hold_by_phone(self) -> bool:
        """The phone itself asked for no audio (its hold button: sendonly/inactive)."""
        return not self.remote_direction.receives

    def _rtcp_datagram(self, data: bytes) -> None:
        if self.rtcp is not None and self.stream is not None:
            self.rtcp.receive(data, self.engine.now(), time.time(), self.stream.session.stats)

    def _send_rtcp(self, now: float, bye: str | None = None) -> None:
        """RFC 3550 6: SR/RR with loss and jitter about what this phone sends us, to the
        phone's RTP port + 1 (RFC 3550 11; no a=rtcp support needed for G.711 phones)."""
        stream, transport = self.stream, self.rtcp_transport
        if stream is None or transport is None or stream.remote is None:
            return
        if self.rtcp is None:
            self.rtcp = RtcpSession(ssrc=stream.sender.ssrc, cname=f"{self.name}@qconnect", now=now)
        host, port = stream.remote
        stats = stream.session.stats
        if bye is not None:
            datagrams = [self.rtcp.build_bye(now, time.time(), stream.sender, stats, bye)]
        else:
            datagrams = self.rtcp.datagrams_to_send(now, time.time(), stream.sender, stats)
        for datagram in datagrams:
            transport.sendto(datagram, (host, port + 1))

    def _datagram(self, data: bytes, addr: tuple[str, int]) -> None:
        if self.stream is not None:
            self.stream.receive_datagram(data, addr, self.engine.now())

    # --- SDP (RFC 3264), the switch as one end of this leg ---

    def answer(self, offer_body: bytes) -> bytes:
        """Answer the phone's offer; raises media.sdp.SdpError (488) when nothing fits."""
        offer = SessionDescription.parse(offer_body)
        answer, negotiated = make_answer(
            offer,
            address=self.engine.advertise,
            port=self.port,
            codecs=self.engine.codecs,
            previous=self.last_sent_sdp,
        )
        self.last_sent_sdp = answer
        self.remote_direction = negotiated.remote_direction
        self._configure(StreamConfig.from_negotiated(negotiated))
        return answer.serialize()

    def offer(self, direction: Direction = Direction.SENDRECV) -> bytes:
        offer = make_offer(
            address=self.engine.advertise,
            port=self.port,
            codecs=self.engine.codecs,
            direction=direction,
            previous=self.last_sent_sdp,
        )
        self.last_offer = self.last_sent_sdp = offer
        return offer.serialize()

    def apply_answer(self, answer_body: bytes) -> None:
        if self.last_offer is None:
            raise ValueError(f"{self.name}: an answer without our offer")
        negotiated = negotiate_answer(
            self.last_offer, SessionDescription.parse(answer_body), codecs=self.engine.codecs
        )
        self.remote_direction = negotiated.remote_direction
        self._configure(StreamConfig.from_negotiated(negotiated))

    def _configure(self, config: StreamConfig) -> None:
        now = self.engine.now()
        if self.stream is None:
            self.stream = MediaStream(config, now, rtp_timeout=self.engine.rtp_timeout)
        else:
            self.stream.reconfigure(config, now)

    def send_dtmf(self, digits: str) -> None:
        if self.stream is not None:
            self.stream.send_dtmf(digits, self.engine.now())

    def close(self) -> None:
        self.engine.close_leg(self)


@dataclass(eq=False)
class Playback:
    """Items played by one player port to some legs; `done` resolves when it ends."""

    player: Player
    slot: int
    listeners: tuple[EngineLeg, ...]
    label: str
    done: asyncio.Future[bool] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    on_event: Callable[[object], None] = lambda event: None

    def stop(self) -> None:
        self.player.stop()


class MediaEngine:
    def __init__(
        self,
        *,
        bind: str,
        advertise: str,
        ports: PortRange,
        record_dir: Path | None = None,
        rtp_timeout: float | None = 30.0,
        codecs: tuple[Codec, ...] = (PCMU, PCMA),
    ) -> None:
        self.bind = bind
        self.advertise = advertise
        self.ports = ports
        self.record_dir = record_dir
        self.rtp_timeout = rtp_timeout
        self.codecs = codecs
        self.bridge = Bridge()
        self.legs: dict[int, EngineLeg] = {}
        self.playbacks: dict[int, Playback] = {}
        self.clock: MediaClock | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._rtcp_timer: asyncio.TimerHandle | None = None
        self.tick_count = 0

    def now(self) -> float:
        assert self._loop is not None
        return self._loop.time()

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.clock = MediaClock(self._loop, self._tick)
        self.clock.start()
        self._rtcp_timer = self._loop.call_later(1.0, self._rtcp_reports)

    def stop(self) -> None:
        if self.clock is not None:
            self.clock.stop()
        if self._rtcp_timer is not None:
            self._rtcp_timer.cancel()
        for leg in list(self.legs.values()):
            self.close_leg(leg)

    # --- legs ---

    async def open_leg(self, name: str, *, record: bool = True) -> EngineLeg:
        loop = asyncio.get_running_loop()
        number = next(_numbers)
        for _ in range(len(self.ports)):
            port = self.ports.take()
            leg = EngineLeg(self, name, port, slot=-1)
            protocol = _Protocol(leg)
            try:
                transport, _ = await loop.create_datagram_endpoint(
                    functools.partial(_identity, protocol), local_addr=(self.bind, port)
                )
            except OSError:
                continue  # held by someone outside the switch: leave it marked and move on
            leg.transport = transport
            try:
                leg.rtcp_transport, _ = await loop.create_datagram_endpoint(
                    functools.partial(_RtcpProtocol, leg), local_addr=(self.bind, port + 1)
                )
            except OSError:
                log.warning("RTCP port %d busy; %s sends no RTCP", port + 1, name)
            leg.slot = self.bridge.add_port(name)
            if record and self.record_dir is not None:
                leg.recorder = CallRecorder(self.record_dir / f"{number:05d}-{_safe(name)}.wav")
            self.legs[leg.slot] = leg
            return leg
        raise PortsExhausted("no bindable RTP port left")

    def close_leg(self, leg: EngineLeg) -> None:
        if leg.closed:
            return
        leg.closed = True
        self.legs.pop(leg.slot, None)
        self.bridge.remove_port(leg.slot)
        if leg.rtcp_transport is not None:
            leg._send_rtcp(self.now(), bye="leg ended")
            leg.rtcp_transport.close()
        if leg.transport is not None:
            leg.transport.close()
        self.ports.give_back(leg.port)
        if leg.recorder is not None:
            leg.recorder.close()
        for playback in list(self.playbacks.values()):
            if leg in playback.listeners and all(other.closed for other in playback.listeners):
                playback.stop()

    def _rtcp_reports(self) -> None:
        # Off the media tick: RTCP is due every few seconds per leg, never on the 20 ms path.
        now = self.now()
        for leg in list(self.legs.values()):
            leg._send_rtcp(now)
        assert self._loop is not None
        self._rtcp_timer = self._loop.call_later(0.5, self._rtcp_reports)

    # --- routing: the contact-center layer only says who hears whom ---

    def connect(self, a: EngineLeg, b: EngineLeg) -> None:
        """a and b hear each other."""
        if a.closed or b.closed:
            return  # a leg that ended has left the bridge with all its connections
        self.bridge.connect(a.slot, b.slot)
        self.bridge.connect(b.slot, a.slot)

    def disconnect(self, a: EngineLeg, b: EngineLeg) -> None:
        if a.closed or b.closed:
            return
        self.bridge.disconnect(a.slot, b.slot)
        self.bridge.disconnect(b.slot, a.slot)

    def isolate(self, leg: EngineLeg) -> None:
        """Nobody hears this leg and it hears nobody (before re-routing it)."""
        self.bridge.isolate(leg.slot)

    def conference(self, legs: Iterable[EngineLeg]) -> None:
        self.bridge.conference([leg.slot for leg in legs])

    def play(
        self,
        to: EngineLeg | Iterable[EngineLeg],
        *items: PlayItem,
        loop: bool = False,
        label: str = "",
    ) -> Playback:
        """Play items to these legs only (a whisper is a play to one leg)."""
        listeners = (to,) if isinstance(to, EngineLeg) else tuple(to)
        player = Player(label or "player")
        player.enqueue(*items, loop=loop)
        slot = self.bridge.add_port(f"player:{label}")
        for leg in listeners:
            self.bridge.connect(slot, leg.slot)
        playback = Playback(player, slot, listeners, label or _describe(items))
        self.playbacks[slot] = playback
        log.info("playing %s to %s", playback.label, ", ".join(leg.name for leg in listeners))
        return playback

    def play_file(
        self, to: EngineLeg | Iterable[EngineLeg], path: str | Path, *, loop: bool = False
    ) -> Playback:
        return self.play(to, Clip(path), loop=loop, label=Path(path).stem)

    # --- the tick ---

    def _tick(self, tick: int, now: float) -> None:
        # Runs for every leg every 20 ms: per leg only attribute reads and one call into the
        # stream each way; decoding and encoding are one numpy table lookup per law.
        self.tick_count = tick
        bridge = self.bridge
        legs = list(self.legs.values())
        # Legs by G.711 law (there are two), each with the legs that said something this
        # tick and their codes. Plain lists: an Enum as a dict key hashes in Python code.
        laws: tuple[tuple[Law, list[EngineLeg], list[EngineLeg], list[bytes]], ...] = (
            (Law.ULAW, [], [], []),
            (Law.ALAW, [], [], []),
        )
        ulaw, alaw = laws
        for leg in legs:
            leg.said = None
            stream = leg.stream
            if stream is None:
                continue
            _, group, said_legs, said_codes = ulaw if stream.config.law is Law.ULAW else alaw
            group.append(leg)
            codes = stream.read_payload(now)
            if codes is not None:
                said_legs.append(leg)
                said_codes.append(codes)
        for law, _, said_legs, said_codes in laws:
            if not said_legs:
                continue
            frames = law.decode(b"".join(said_codes)).reshape(len(said_legs), FRAME_SAMPLES)
            for leg, row in zip(said_legs, frames, strict=True):
                leg.said = row
                bridge.write(leg.slot, row)
        finished: list[Playback] = []
        for playback in self.playbacks.values():
            frame = playback.player.read_frame(tick)
            if frame is not None:
                bridge.write(playback.slot, frame)
            while (event := playback.player.next_event()) is not None:
                playback.on_event(event)
            if not playback.player.playing:
                finished.append(playback)
        mixed = bridge.tick()
        for law, group, _, _ in laws:
            if not group:
                continue
            encoded = law.encode(np.stack([mixed.get(leg.slot, SILENCE) for leg in group]))
            payloads = encoded.tobytes()
            end = 0
            for leg in group:
                start, end = end, end + FRAME_SAMPLES
                payload = payloads[start:end]
                stream = leg.stream
                assert stream is not None
                transport = leg.transport
                datagram = stream.audio_datagram(payload, now)
                if datagram is not None:
                    if transport is not None:
                        transport.sendto(datagram, stream.remote)
                    continue
                remote = stream.remote
                for packet in stream.packets_for(payload, now):
                    if transport is not None and remote is not None:
                        transport.sendto(packet.serialize(), remote)
        for leg in legs:
            if leg.recorder is not None and not leg.recorder.closed:
                leg.recorder.write(mixed.get(leg.slot), leg.said)
        for playback in finished:
            self._end_playback(playback)
        # Each leg's DTMF and RTP events every 10th tick, a tenth of the legs per tick, so
        # no tick carries all of them.
        phase = tick % 10
        self._housekeeping([leg for leg in legs if leg.slot % 10 == phase], now)

    def _housekeeping(self, legs: list[EngineLeg], now: float) -> None:
        for leg in legs:
            stream = leg.stream
            if stream is None:
                continue
            if stream.digits:
                for digit in stream.take_digits():
                    log.info("%s: DTMF %s", leg.name, digit.digit)
                    leg.on_digit(digit)
            for event in stream.events(now):
                if isinstance(event, RtpTimeout):
                    leg.on_timeout()

    def _end_playback(self, playback: Playback) -> None:
        self.playbacks.pop(playback.slot, None)
        self.bridge.remove_port(playback.slot)
        if not playback.done.done():
            playback.done.set_result(True)


def _identity(protocol: _Protocol) -> _Protocol:
    return protocol


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def _describe(items: tuple[PlayItem, ...]) -> str:
    return "+".join(
        item.path.stem if isinstance(item, Clip) else type(item).__name__ for item in items
    )


__all__ = [
    "EngineLeg",
    "MediaEngine",
    "PlaybackCancelled",
    "PlaybackFinished",
    "PlaybackStarted",
    "Playback",
]
