"""Media load benchmark: N bridged G.711 calls through one switch process, on loopback.

    .venv/bin/python -m benchmarks.media_load [--calls 10 100 300] [--seconds 20] [--no-record]

For each size N the switch runs as a separate process (`benchmarks.switch_runner`, uvloop),
2N phones register over SIP through our own stack (one SIP socket for all of them, digest
auth), N calls ``u(2i-1) -> u(2i)`` are bridged by the switch's B2BUA, and then ONE batched
sender in this process drives all 2N RTP streams at 20 ms: every phone its own socket, SSRC,
sequence and timestamp, and a G.711 tone of its own frequency (half the calls PCMU, half
PCMA). Phones are spread over `--phases` send slots inside the 20 ms, as real phones are
never in phase.

Measured, per window of ``seconds / windows`` (the table shows medians over windows):

- the switch's media clock lateness p50 / p99 / max (`MediaClock.stats()`, reset per window);
- switch CPU (getrusage inside the switch process) as % of one core and per call-second;
- loss: phone->switch (packets sent vs accepted by the switch's RTP sessions) and
  switch->phone (sequence-number gaps in what each phone receives);
- the audio: each phone keeps one second of what it received; the share of those frames
  that are bit-exact copies of the other party's frames, and whether the other party's tone
  (Goertzel) dominates its own (a bridged call must not echo).

Exits 1 when setup fails (registration, a call, the runner) or audio does not flow; a missed
speed target is reported in the verdict lines, not in the exit code.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import random
import resource
import statistics
import struct
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.switch_runner import PASSWORD, realtime_priority, user_name
from media import sdp
from media.analysis import goertzel
from media.clock import MediaClock
from media.g711 import Law
from telephony.sip.dialog import Dialog
from telephony.sip.digest import authorization_header, pick_challenge
from telephony.sip.headers import NameAddr
from telephony.sip.message import Headers, Request, Response, make_response
from telephony.sip.transaction import ClientTransaction, new_call_id
from telephony.sip.uri import SipUri
from telephony.switch.endpoint import Incoming, SipEndpoint
from telephony.transport.base import Address

ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
RATE = 8000
FRAME = 160
PTIME = 0.020
TONE_LEVEL = 8000.0
TARGET_CALLS = 300
TARGET_P99_MS = 5.0
_RTP_HEADER = struct.Struct("!BBHII")
_BLOCK = RATE // 10


class SetupError(RuntimeError):
    """The benchmark could not set up what it measures (runner, registration, calls)."""


# --- audio ------------------------------------------------------------------------------------


def tone_frames(freq: int, law: Law) -> list[bytes]:
    """One second of a `freq` Hz tone as 50 encoded 20 ms payloads (an integer frequency
    repeats exactly every second, so looping the 50 frames is seamless)."""
    t = np.arange(RATE) / RATE
    pcm = np.round(TONE_LEVEL * np.sin(2 * np.pi * freq * t)).astype(np.int16)
    codes = law.encode(pcm)
    return [codes[i : i + FRAME].tobytes() for i in range(0, RATE, FRAME)]


# --- one phone's media --------------------------------------------------------------------------


class Phone:
    """One bench phone: its RTP socket and numbering, what it sent and what it heard."""

    __slots__ = (
        "user",
        "law",
        "freq",
        "frames",
        "peer",
        "transport",
        "rtcp_transport",
        "rtcp_received",
        "port",
        "remote",
        "ssrc",
        "seq",
        "ts",
        "frame_index",
        "sent",
        "received",
        "first_seq",
        "ext_seq",
        "last_seq",
        "sampling",
        "samples",
        "established",
        "dropped",
    )

    def __init__(self, user: str, law: Law, freq: int, frames: list[bytes]) -> None:
        self.user = user
        self.law = law
        self.freq = freq
        self.frames = frames
        self.peer: Phone | None = None
        self.transport: asyncio.DatagramTransport | None = None
        self.rtcp_transport: asyncio.DatagramTransport | None = None
        self.rtcp_received = 0
        self.port = 0
        self.remote: tuple[str, int] | None = None
        self.ssrc = random.getrandbits(32)
        self.seq = random.getrandbits(16)
        self.ts = random.getrandbits(32)
        self.frame_index = 0
        self.sent = 0
        self.received = 0
        self.first_seq = -1
        self.ext_seq = -1  # extended highest sequence number received (RFC 3550 A.1 style)
        self.last_seq = -1
        self.sampling = False
        self.samples: list[bytes] = []
        self.established = False
        self.dropped = False

    @property
    def payload_type(self) -> int:
        return self.law.value

    @property
    def codec(self) -> sdp.Codec:
        return sdp.PCMU if self.law is Law.ULAW else sdp.PCMA


class _RtpIn(asyncio.DatagramProtocol):
    """Counts and numbers what the switch sends one phone; keeps 1 s of it while sampling."""

    def __init__(self, phone: Phone) -> None:
        self.phone = phone

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if len(data) < 12 or 192 <= data[1] <= 223:
            return  # not RTP: RTCP sent here (RFC 5761 4 tells them apart) or a runt
        phone = self.phone
        phone.received += 1
        seq = (data[2] << 8) | data[3]
        if phone.last_seq < 0:
            phone.first_seq = phone.ext_seq = phone.last_seq = seq
        else:
            delta = (seq - phone.last_seq) & 0xFFFF
            if delta < 0x8000:
                phone.ext_seq += delta
                phone.last_seq = seq
        if phone.sampling:
            phone.samples.append(data[12:])
            if len(phone.samples) >= 50:
                phone.sampling = False


class _RtcpIn(asyncio.DatagramProtocol):
    """The phone's RTCP port: the switch's reports are counted, not parsed."""

    def __init__(self, phone: Phone) -> None:
        self.phone = phone

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.phone.rtcp_received += 1


class BatchedSender:
    """Every phone's RTP from one clock: phones are split into `phases` groups and group k
    sends on sub-tick k of each 20 ms, so each phone still sends exactly every 20 ms."""

    def __init__(self, phones: Sequence[Phone], phases: int) -> None:
        self.groups = [list(phones[k::phases]) for k in range(phases)]
        self.phases = phases
        self.clock: MediaClock | None = None

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.clock = MediaClock(loop, self._tick, period=PTIME / self.phases, max_catch_up=50)
        self.clock.start()

    def stop(self) -> None:
        if self.clock is not None:
            self.clock.stop()

    def _tick(self, tick: int, now: float) -> None:
        pack = _RTP_HEADER.pack
        for phone in self.groups[tick % self.phases]:
            transport, remote = phone.transport, phone.remote
            if transport is None or remote is None:
                continue
            index = phone.frame_index
            transport.sendto(
                pack(0x80, phone.payload_type, phone.seq, phone.ts, phone.ssrc)
                + phone.frames[index],
                remote,
            )
            phone.frame_index = index + 1 if index < 49 else 0
            phone.seq = (phone.seq + 1) & 0xFFFF
            phone.ts = (phone.ts + FRAME) & 0xFFFFFFFF
            phone.sent += 1


# --- SIP for every phone on one socket -------------------------------------------------------


class PhoneBank:
    """Registers phones and sets up calls through the switch; answers the switch's INVITEs."""

    def __init__(self, switch: Address) -> None:
        self.switch = switch
        self.endpoint = SipEndpoint(advertise=HOST, on_request=self._on_request)
        self.phones: dict[str, Phone] = {}
        self._cseq = 0

    async def start(self) -> None:
        await self.endpoint.start(HOST, 0, ("udp",))

    def close(self) -> None:
        self.endpoint.close()

    def _headers(self, user: str, to: SipUri, method: str, call_id: str, tag: str) -> Headers:
        self._cseq += 1
        aor = SipUri(user=user, host=HOST)
        return Headers.of(
            ("Via", str(self.endpoint.via("udp"))),
            ("Max-Forwards", "70"),
            ("From", str(NameAddr(uri=aor, params=(("tag", tag),)))),
            ("To", str(NameAddr(uri=to))),
            ("Call-ID", call_id),
            ("CSeq", f"{self._cseq} {method}"),
            ("Contact", str(self.endpoint.contact("udp", user=user))),
        )

    async def _authenticated(
        self, request: Request, user: str
    ) -> tuple[Request, ClientTransaction, Response]:
        """Send `request`, answering one digest challenge (RFC 3261 22.2)."""
        tx, future = self.endpoint.request(request, self.switch)
        response = await future
        if response.status not in (401, 407):
            return request, tx, response
        header = "WWW-Authenticate" if response.status == 401 else "Proxy-Authenticate"
        challenge = pick_challenge(response.headers.lines(header))
        if challenge is None:
            return request, tx, response
        auth = authorization_header(
            challenge,
            method=request.method,
            uri=str(request.uri),
            username=user,
            password=PASSWORD,
        )
        self._cseq += 1
        retry = (
            request.with_header("Via", str(self.endpoint.via("udp")))
            .with_header("CSeq", f"{self._cseq} {request.method}")
            .with_header("Authorization" if response.status == 401 else "Proxy-Authorization", auth)
        )
        tx, future = self.endpoint.request(retry, self.switch)
        return retry, tx, await future

    async def register(self, phone: Phone) -> None:
        self.phones[phone.user] = phone
        aor = SipUri(user=phone.user, host=HOST)
        headers = self._headers(
            phone.user, aor, "REGISTER", new_call_id(HOST), self.endpoint.new_tag()
        )
        request = Request(method="REGISTER", uri=SipUri(host=HOST), headers=headers)
        request = request.with_header("Expires", "3600")
        _, _, response = await self._authenticated(request, phone.user)
        if response.status != 200:
            raise SetupError(f"REGISTER {phone.user}: {response.status} {response.reason}")

    async def call(self, caller: Phone, callee: Phone) -> None:
        offer = sdp.make_offer(address=HOST, port=caller.port, codecs=(caller.codec,))
        uri = SipUri(user=callee.user, host=HOST)
        headers = self._headers(
            caller.user, uri, "INVITE", new_call_id(HOST), self.endpoint.new_tag()
        )
        invite = Request(method="INVITE", uri=uri, headers=headers).with_body(
            offer.serialize(), "application/sdp"
        )
        invite, tx, response = await self._authenticated(invite, caller.user)
        if not response.is_success:
            raise SetupError(f"INVITE {caller.user} -> {callee.user}: {response.status}")
        dialog = Dialog.from_uac(invite, response)
        ack = dialog.create_ack(invite, response, via=self.endpoint.via("udp"))
        self.endpoint.send_ack(tx, ack, self.switch)
        negotiated = sdp.negotiate_answer(
            offer, sdp.SessionDescription.parse(response.body), codecs=(caller.codec,)
        )
        caller.remote = negotiated.remote
        caller.established = True

    def _on_request(self, incoming: Incoming) -> None:
        request, tx = incoming.request, incoming.transaction
        if request.method == "ACK" or tx is None:
            return
        uri = request.sip_uri
        phone = self.phones.get(uri.user or "") if uri is not None else None
        if phone is None:
            self.endpoint.respond(tx, make_response(request, 404, to_tag=self.endpoint.new_tag()))
            return
        if request.method == "INVITE" and request.to.tag is None:
            offer = sdp.SessionDescription.parse(request.body)
            answer, negotiated = sdp.make_answer(
                offer, address=HOST, port=phone.port, codecs=(phone.codec,)
            )
            phone.remote = negotiated.remote
            phone.established = True
            response = make_response(
                request,
                200,
                to_tag=self.endpoint.new_tag(),
                headers=(("Contact", str(self.endpoint.contact("udp", user=phone.user))),),
                body=answer.serialize(),
                content_type="application/sdp",
            )
            self.endpoint.respond(tx, response)
            return
        if request.method == "BYE":
            phone.dropped = True
            if phone.peer is not None:
                phone.peer.dropped = True
        self.endpoint.respond(tx, make_response(request, 200))


# --- the switch process ------------------------------------------------------------------------


class SwitchProcess:
    """`benchmarks.switch_runner` as a child process, spoken to over stdin/stdout lines."""

    def __init__(
        self,
        users: int,
        rtp_ports: tuple[int, int],
        record: bool,
        data_dir: Path,
        realtime: bool = False,
        cpu: int | None = None,
    ):
        self.args = [
            sys.executable,
            "-m",
            "benchmarks.switch_runner",
            "--users",
            str(users),
            "--rtp-ports",
            f"{rtp_ports[0]}-{rtp_ports[1]}",
            "--data-dir",
            str(data_dir),
            "--record" if record else "--no-record",
        ]
        if realtime:
            self.args.append("--realtime")
        if cpu is not None:
            self.args += ["--cpu", str(cpu)]
        self.log = data_dir / "switch.log"
        self.proc: asyncio.subprocess.Process | None = None
        self.ready: dict[str, Any] = {}

    async def start(self) -> dict[str, Any]:
        self.proc = await asyncio.create_subprocess_exec(
            *self.args,
            cwd=ROOT,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=self.log.open("wb"),
        )
        self.ready = await self._expect("READY", timeout=60)
        return self.ready

    async def _expect(self, kind: str, timeout: float = 20) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdout is not None
        while True:
            line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
            if not line:
                tail = self.log.read_text(errors="replace")[-2000:]
                raise SetupError(f"switch runner exited before {kind}:\n{tail}")
            word, _, payload = line.decode().partition(" ")
            if word == kind:
                result: dict[str, Any] = json.loads(payload)
                return result

    async def command(self, word: str) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(f"{word}\n".encode())
        await self.proc.stdin.drain()
        return await self._expect("MARK" if word == "mark" else "STATS")

    async def stop(self) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(b"quit\n")
        await self.proc.stdin.drain()
        try:
            final = await self._expect("FINAL", timeout=30)
        finally:
            try:
                await asyncio.wait_for(self.proc.wait(), 30)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        return final

    def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()


# --- one size ----------------------------------------------------------------------------------


@dataclass
class Window:
    p50: float  # MediaClock.stats(): uvloop's loop clock, whole milliseconds
    p99: float
    max: float
    precise_p99: float  # the same lateness from time.monotonic()
    tick_p50: float  # how long one tick runs
    tick_p99: float
    cpu_percent: float  # of one core
    cpu_ms_per_call_second: float
    down_loss: float  # switch -> phones, fraction
    skipped: int
    generator_percent: float  # this process (phones), % of one core
    others_percent: float  # everything else on the machine, % of one core
    gc_full: int  # full (generation 2) collections in the switch
    gc_max_ms: float  # the longest collection pause
    preempted_per_s: float  # the kernel took the switch's CPU away (involuntary switches)
    kernel_share: float  # of the switch's CPU, the part spent in the kernel (socket calls)


@dataclass
class SizeResult:
    calls: int
    record: bool
    windows: list[Window] = field(default_factory=list)
    priority: str = "normal"
    cpus: str = "any"
    sent: int = 0
    accepted: int = 0
    bit_exact: float = 0.0
    tones_ok: int = 0
    legs: int = 0
    concealed: int = 0
    late: int = 0
    dropped: int = 0
    sender_p99: float = 0.0
    sender_skipped: int = 0
    setup_seconds: float = 0.0

    def median(self, name: str) -> float:
        return statistics.median(float(getattr(w, name)) for w in self.windows)

    @property
    def up_loss(self) -> float:
        return 1.0 - self.accepted / self.sent if self.sent else 1.0

    @property
    def down_loss(self) -> float:
        return max(w.down_loss for w in self.windows) if self.windows else 1.0


async def _gather_limited(limit: int, coros: Sequence[Any]) -> None:
    semaphore = asyncio.Semaphore(limit)

    async def one(coro: Any) -> None:
        async with semaphore:
            await coro

    await asyncio.gather(*(one(c) for c in coros))


def _port_block(legs: int, low: int, high: int) -> tuple[int, int]:
    """An even-aligned block of ports for `legs` RTP/RTCP pairs inside [low, high), with room
    for ports others hold, starting somewhere random so parallel runs rarely collide. Both
    the switch's and the phones' blocks stay below the kernel's ephemeral range (32768+)."""
    size = 2 * legs + 400
    base = random.randrange(low, high - size) & ~1
    return base, base + size - 1


async def _bind_pair(
    loop: asyncio.AbstractEventLoop, phone: Phone, ports: list[int]
) -> tuple[asyncio.DatagramTransport, asyncio.DatagramTransport]:
    """RTP on an even port and RTCP on the next one (RFC 3550 11), as a real phone binds:
    the switch sends RTCP to RTP port + 1, which must not land on another phone's RTP."""
    while ports:
        port = ports.pop()
        try:
            rtp, _ = await loop.create_datagram_endpoint(
                functools.partial(_RtpIn, phone), local_addr=(HOST, port)
            )
        except OSError:
            continue
        try:
            rtcp, _ = await loop.create_datagram_endpoint(
                functools.partial(_RtcpIn, phone), local_addr=(HOST, port + 1)
            )
        except OSError:
            rtp.close()
            continue
        return rtp, rtcp
    raise SetupError("no free even/odd port pair left for the phones")


def _machine_busy() -> float:
    """CPU seconds every core of the machine spent busy since boot (/proc/stat)."""
    try:
        with open("/proc/stat") as stat:
            fields = [int(v) for v in stat.readline().split()[1:]]
    except OSError:
        return 0.0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _audio_check(phones: Sequence[Phone]) -> tuple[float, int]:
    """(share of sampled frames that are bit-exact copies of the peer's, phones whose
    received audio is dominated by the peer's tone and not their own)."""
    exact = total = ok = 0
    for phone in phones:
        peer = phone.peer
        assert peer is not None
        peer_frames = set(peer.frames)
        exact += sum(1 for s in phone.samples if s in peer_frames)
        total += len(phone.samples)
        if not phone.samples:
            continue
        pcm = phone.law.decode(b"".join(phone.samples)).astype(np.float64)
        # Power per 100 ms block (whole cycles of any multiple of 10 Hz), averaged: a frame
        # the jitter buffer dropped shifts the phase, which must not cancel a whole second.
        blocks = [pcm[i : i + _BLOCK] for i in range(0, len(pcm) - _BLOCK + 1, _BLOCK)] or [pcm]
        heard_peer = statistics.fmean(goertzel(b, RATE, peer.freq) for b in blocks)
        heard_self = statistics.fmean(goertzel(b, RATE, phone.freq) for b in blocks)
        if heard_peer > 0.25 * TONE_LEVEL**2 / 2 and heard_self < heard_peer / 100:
            ok += 1
    return (exact / total if total else 0.0), ok


async def run_size(calls: int, args: argparse.Namespace) -> SizeResult:
    result = SizeResult(calls, args.record)
    legs = 2 * calls
    data_dir = Path(tempfile.mkdtemp(prefix=f"qconnect-bench-{calls}-"))
    switch = SwitchProcess(
        legs, _port_block(legs, 21000, 32000), args.record, data_dir, args.realtime, args.switch_cpu
    )
    loop = asyncio.get_running_loop()
    bank: PhoneBank | None = None
    phones: list[Phone] = []
    try:
        started = time.monotonic()
        ready = await switch.start()
        result.priority = str(ready.get("priority", "normal"))
        result.cpus = (
            ",".join(str(c) for c in ready.get("cpus", []))
            if args.switch_cpu is not None
            else "any"
        )
        bank = PhoneBank(Address("udp", HOST, int(ready["sip_port"])))
        await bank.start()
        frames: dict[tuple[int, Law], list[bytes]] = {}
        for i in range(calls):
            law = Law.ULAW if i % 2 == 0 else Law.ALAW
            freqs = (300 + 10 * (i % 60), 1300 + 10 * (i % 60))
            pair = []
            for k, freq in enumerate(freqs):
                if (freq, law) not in frames:
                    frames[freq, law] = tone_frames(freq, law)
                pair.append(Phone(user_name(2 * i + 1 + k), law, freq, frames[freq, law]))
            pair[0].peer, pair[1].peer = pair[1], pair[0]
            phones.extend(pair)
        first, last = _port_block(legs, 10000, 21000)
        free = list(range(last - 1, first - 1, -2))
        for phone in phones:
            phone.transport, phone.rtcp_transport = await _bind_pair(loop, phone, free)
            phone.port = phone.transport.get_extra_info("sockname")[1]
        await asyncio.wait_for(_gather_limited(64, [bank.register(p) for p in phones]), 120)
        await asyncio.wait_for(
            _gather_limited(
                16, [bank.call(a, b) for a, b in zip(phones[::2], phones[1::2], strict=True)]
            ),
            300,
        )
        missing = [p.user for p in phones if not p.established or p.remote is None]
        if missing:
            raise SetupError(f"{len(missing)} phones have no call: {missing[:5]}")
        result.setup_seconds = time.monotonic() - started
        sender = BatchedSender(phones, args.phases)
        sender.start()
        await asyncio.sleep(args.warmup)
        for phone in phones:
            phone.sampling = True
        window_seconds = args.seconds / args.windows
        first_jitter: dict[str, int] | None = None
        last_jitter: dict[str, int] = {}
        assert sender.clock is not None and sender.clock.schedule is not None
        sender.clock.schedule.reset_stats()
        for _ in range(args.windows):
            await switch.command("mark")
            start_seq = [(p.ext_seq, p.received) for p in phones]
            machine0, own0 = _machine_busy(), _own_cpu()
            await asyncio.sleep(window_seconds)
            stats = await switch.command("stats")
            machine, own = _machine_busy() - machine0, _own_cpu() - own0
            expected = received = 0
            for phone, (seq0, count0) in zip(phones, start_seq, strict=True):
                expected += phone.ext_seq - seq0
                received += phone.received - count0
            if first_jitter is None:
                first_jitter = stats["jitter"]
            last_jitter = stats["jitter"]
            wall, cpu = stats["wall"], stats["cpu"]
            lateness = stats["lateness_ms"]
            result.windows.append(
                Window(
                    p50=lateness["p50"],
                    p99=lateness["p99"],
                    max=lateness["max"],
                    precise_p99=stats["precise_lateness_ms"]["p99"],
                    tick_p50=stats["tick_ms"]["p50"],
                    tick_p99=stats["tick_ms"]["p99"],
                    cpu_percent=100.0 * cpu / wall,
                    cpu_ms_per_call_second=1e3 * cpu / (wall * calls),
                    down_loss=max(0.0, 1.0 - received / expected) if expected else 1.0,
                    skipped=stats["skipped"],
                    generator_percent=100.0 * own / wall,
                    others_percent=100.0 * max(0.0, machine - own - cpu) / wall,
                    gc_full=stats["gc"]["gen2"]["count"],
                    gc_max_ms=max(g["max_ms"] for g in stats["gc"].values()),
                    preempted_per_s=stats["preempted"] / wall,
                    kernel_share=stats["kernel_cpu"] / cpu if cpu else 0.0,
                )
            )
        sender_stats = sender.clock.stats()
        result.sender_p99 = sender_stats.p99 * 1e3
        result.sender_skipped = sender_stats.skipped
        sender.stop()
        await asyncio.sleep(0.3)  # let the last packets land before counting
        totals = await switch.command("stats")
        result.sent = sum(p.sent for p in phones)
        result.accepted = int(totals["rx_accepted"])
        result.legs = len(phones)
        assert first_jitter is not None
        result.concealed = sum(
            last_jitter[k] - first_jitter[k]
            for k in ("frames_concealed", "frames_silent", "frames_lost")
        )
        result.late = last_jitter["late"] - first_jitter["late"]
        result.dropped = sum(1 for p in phones if p.dropped)
        result.bit_exact, result.tones_ok = _audio_check(phones)
        await switch.stop()
    finally:
        switch.kill()
        for phone in phones:
            for transport in (phone.transport, phone.rtcp_transport):
                if transport is not None:
                    transport.close()
        if bank is not None:
            bank.close()
    return result


# --- report ------------------------------------------------------------------------------------


def table(results: Sequence[SizeResult]) -> str:
    base = results[0]
    header = (
        "| calls | rec | clock p50 ms | clock p99 ms | clock max ms | precise p99 ms | "
        "tick p50 ms | tick p99 ms | switch CPU % | "
        f"CPU ms per call-s | CPU/call vs {base.calls} | loss up % | loss down % | "
        "bit-exact % | tones ok |"
    )
    lines = [header, "|" + "|".join("---:" for _ in range(header.count("|") - 1)) + "|"]
    for r in results:
        per_call = r.median("cpu_ms_per_call_second")
        ratio = per_call / base.median("cpu_ms_per_call_second")
        lines.append(
            f"| {r.calls} | {'yes' if r.record else 'no'} | {r.median('p50'):.2f} | "
            f"{r.median('p99'):.2f} | {r.median('max'):.2f} | {r.median('precise_p99'):.2f} | "
            f"{r.median('tick_p50'):.2f} | {r.median('tick_p99'):.2f} | "
            f"{r.median('cpu_percent'):.0f} | "
            f"{per_call:.2f} | {ratio:.2f} | {100 * r.up_loss:.3f} | "
            f"{100 * r.down_loss:.3f} | {100 * r.bit_exact:.1f} | {r.tones_ok}/{r.legs} |"
        )
    return "\n".join(lines)


def verdict(r: SizeResult) -> str:
    # The stricter of the clock's own (whole-millisecond) figure and the precise one.
    p99 = max(r.median("p99"), r.median("precise_p99"))
    lossless = r.sent > 0 and r.accepted >= r.sent and r.down_loss == 0.0
    skipped = sum(w.skipped for w in r.windows)
    # A skipped tick sends nothing on any leg: 20 ms of audio lost everywhere.
    met = p99 < TARGET_P99_MS and lossless and r.dropped == 0 and skipped == 0
    return (
        f"{r.calls} calls ({'recording' if r.record else 'not recording'}): p99 lateness "
        f"{p99:.2f} ms (target < {TARGET_P99_MS:g} ms), loss up {100 * r.up_loss:.3f} % / "
        f"down {100 * r.down_loss:.3f} %, skipped ticks {skipped} (target 0): "
        f"{'MET' if met else 'NOT MET'}"
    )


def details(r: SizeResult) -> str:
    skipped = sum(w.skipped for w in r.windows)
    return (
        f"  {r.calls} calls: switch priority {r.priority}, CPU {r.cpus}, "
        f"setup {r.setup_seconds:.1f} s, "
        f"{len(r.windows)} windows, "
        f"switch ticks skipped {skipped}, jitter-buffer concealed/silent/lost frames "
        f"{r.concealed}, late packets {r.late}, calls dropped {r.dropped}, "
        f"sender clock p99 {r.sender_p99:.2f} ms (skipped {r.sender_skipped}); "
        f"CPU % of one core: phones {r.median('generator_percent'):.0f}, "
        f"other processes {r.median('others_percent'):.0f}; switch CPU in kernel "
        f"{100 * r.median('kernel_share'):.0f} %, preempted "
        f"{r.median('preempted_per_s'):.0f}/s; switch GC: "
        f"{sum(w.gc_full for w in r.windows)} full collections, longest pause "
        f"{max(w.gc_max_ms for w in r.windows):.1f} ms"
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.media_load", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--calls", type=int, nargs="+", default=[10, 100, 300])
    parser.add_argument("--seconds", type=float, default=20.0, help="measured seconds per size")
    parser.add_argument("--windows", type=int, default=4, help="the seconds split in windows")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of media before")
    parser.add_argument("--phases", type=int, default=4, help="send slots per 20 ms")
    parser.add_argument(
        "--record", action=argparse.BooleanOptionalAction, default=True, help="record every leg"
    )
    parser.add_argument(
        "--realtime",
        action="store_true",
        help="run the switch and the phones at SCHED_RR priority (as media servers deploy)",
    )
    parser.add_argument(
        "--pin",
        action="store_true",
        help="switch on the first CPU, phones on the others (helps on an otherwise idle "
        "machine, hurts when other processes need the switch's CPU)",
    )
    parser.set_defaults(switch_cpu=None)
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    return parser


async def _main(args: argparse.Namespace) -> int:
    results: list[SizeResult] = []
    cpus = sorted(os.sched_getaffinity(0))
    if args.pin and len(cpus) >= 2:
        # The phones stand in for other machines: their CPU must not be the switch's, or
        # every datagram the switch sends wakes a phone that preempts the switch.
        args.switch_cpu = cpus[0]
        os.sched_setaffinity(0, set(cpus[1:]))
        print(f"switch on CPU {cpus[0]}, phones on CPU {cpus[1:]}", file=sys.stderr)
    if args.realtime:
        print(f"phones run at {realtime_priority()}", file=sys.stderr)
    for calls in args.calls:
        print(f"running {calls} calls for {args.seconds:g} s ...", file=sys.stderr, flush=True)
        try:
            results.append(await run_size(calls, args))
        except (SetupError, TimeoutError) as exc:
            print(f"setup failed at {calls} calls: {exc!r}", file=sys.stderr)
            return 1
    print(table(results))
    print()
    for r in results:
        print(details(r))
    print()
    for r in results:
        print(verdict(r))
    if args.json is not None:
        args.json.write_text(
            json.dumps(
                [r.__dict__ | {"windows": [w.__dict__ for w in r.windows]} for r in results],
                indent=2,
            )
        )
    broken = [r.calls for r in results if r.tones_ok < r.legs]
    if broken:
        print(f"audio did not flow on every leg at {broken} calls", file=sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.windows < 1 or args.seconds <= 0 or args.phases < 1:
        print("--windows, --seconds and --phases must be positive", file=sys.stderr)
        return 2
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    os.environ.setdefault("PYTHONHASHSEED", "0")
    return asyncio.run(_main(args))


if __name__ == "__main__":
    sys.exit(main())
