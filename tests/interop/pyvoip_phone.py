"""A pyVoIP 1.6.8 phone for interop tests: registers with the switch, answers
incoming calls in pyVoIP's own callback thread, plays 8-bit audio and keeps
what it heard.

pyVoIP is a threaded library (see ../shared/interop/NOTES.md): a SIP receive
loop, one RTP sender and one receiver per call, a re-REGISTER timer and one
thread per incoming call running our callback. All of them are non-daemon
threads, so a phone that is not stopped keeps the test process alive;
`PyVoipPhone.stop` stops every one and `leftover_threads()` lets a test prove
it. What pyVoIP 1.6.8 gets wrong, and what the switch changed for it, is
listed in test_pyvoip.py.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from pyVoIP.VoIP import CallState, InvalidStateError, PhoneStatus, VoIPCall, VoIPPhone

from .clients import ClientError, free_port

RATE = 8000

# pyVoIP names its threads; these are the ones a phone and its calls start.
_PYVOIP_THREADS = ("SIP Recieve", "SIP Register", "RTP Receiver", "RTP Transmitter", "Phone Call")


def rtp_port_range(size: int = 4) -> tuple[int, int]:
    """Free UDP ports for pyVoIP's RTP, from the ephemeral range.

    pyVoIP binds a random port of its range without checking it is free, and
    `qconnect serve` reserves its RTP range (clients.free_port_range, below
    32000) but binds a port only when a leg needs it, so a range picked the same
    way could be taken by the switch's own leg to this phone. A base the kernel
    hands out for port 0 is outside every such range.
    """
    for _ in range(200):
        base = free_port()
        if base + size > 65536:
            continue
        if all(_bindable(port) for port in range(base, base + size)):
            return base, base + size - 1
    raise ClientError("no free RTP ports for pyVoIP")


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def u8_tone(freq: float, seconds: float, level: float = 0.5) -> bytes:
    """A sine as pyVoIP's audio API takes it: 8-bit unsigned linear, 8 kHz, 128 = silence."""
    t = np.arange(int(seconds * RATE)) / RATE
    return (128 + 127 * level * np.sin(2 * np.pi * freq * t)).round().astype(np.uint8).tobytes()


def u8_to_float(audio: bytes) -> npt.NDArray[np.float64]:
    """pyVoIP's 8-bit unsigned linear back to [-1, 1] floats for media.analysis."""
    return (np.frombuffer(audio, dtype=np.uint8).astype(np.float64) - 128.0) / 128.0


@dataclass(eq=False)
class AnsweredCall:
    """One incoming call pyVoIP answered: what it heard once the call ended."""

    call: VoIPCall
    answered_at: float
    heard: bytes = b""
    ended: threading.Event = field(default_factory=threading.Event)

    @property
    def state(self) -> CallState:
        return self.call.state

    def hangup(self) -> None:
        """pyVoIP's own hang-up (a BYE to the switch)."""
        self.call.hangup()


class PyVoipPhone:
    """`VoIPPhone` on free ports of 127.0.0.1, registered with `qconnect serve`.

    Incoming calls are answered (pyVoIP runs `_on_call` one second after its
    180), `play` is written into the call, and when the call ends everything
    received is read back with `read_audio` into `AnsweredCall.heard`.
    """

    def __init__(self, user: str, password: str, switch_port: int, *, play: bytes = b"") -> None:
        self.user = user
        self.sip_port = free_port()
        self.rtp_ports = rtp_port_range()
        self.play = play
        self.answered: list[AnsweredCall] = []
        self._answered_event = threading.Event()
        self._stopping = threading.Event()
        self.phone = VoIPPhone(
            "127.0.0.1",
            switch_port,
            user,
            password,
            myIP="127.0.0.1",
            callCallback=self._on_call,
            sipPort=self.sip_port,
            rtpPortLow=self.rtp_ports[0],
            rtpPortHigh=self.rtp_ports[1],
        )
        # pyVoIP waits this long for each REGISTER answer, also in stop()'s
        # de-REGISTER; 30 s (its default) would outlast the test's timeout if
        # the switch were gone.
        self.phone.sip.register_timeout = 5

    # --- life cycle (blocking: call through asyncio.to_thread from async tests) ---

    def start(self) -> None:
        """Bind and send the first REGISTER. pyVoIP does not raise on a refused
        REGISTER: it retries in timer threads and reports through `status`."""
        self.phone.start()

    @property
    def status(self) -> PhoneStatus:
        return self.phone.get_status()

    def wait_status(self, *wanted: PhoneStatus, within: float = 15.0) -> PhoneStatus:
        """Poll until the phone reaches one of `wanted`; return the status seen last."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            status = self.status
            if status in wanted:
                return status
            time.sleep(0.02)
        return self.status

    def wait_answered(self, within: float = 10.0) -> AnsweredCall:
        if not self._answered_event.wait(within):
            raise AssertionError(f"pyVoIP {self.user} answered no call within {within}s")
        return self.answered[-1]

    def stop(self) -> None:
        """Hang up, de-REGISTER, close every socket and wait for pyVoIP's threads."""
        self._stopping.set()
        if self.phone.NSD or self.phone.sip.NSD:
            self.phone.stop()
        self._join_threads(within=5.0)

    def _join_threads(self, within: float) -> None:
        deadline = time.monotonic() + within
        for thread in leftover_threads():
            thread.join(max(0.0, deadline - time.monotonic()))

    # --- pyVoIP's callback thread, one per incoming call ---

    def _on_call(self, call: VoIPCall) -> None:
        try:
            call.answer()
        except InvalidStateError:
            return  # cancelled during pyVoIP's one-second delay
        answered = AnsweredCall(call, time.monotonic())
        self.answered.append(answered)
        self._answered_event.set()
        if self.play:
            call.write_audio(self.play)
        while call.state is CallState.ANSWERED and not self._stopping.is_set():
            time.sleep(0.02)
        # The receive buffer is indexed by RTP timestamp from the first packet;
        # reading the call's length (plus slack) returns all of it, padded with
        # 8-bit silence past the last packet.
        length = int((time.monotonic() - answered.answered_at + 1.0) * RATE)
        answered.heard = call.read_audio(length, blocking=False)
        answered.ended.set()


def leftover_threads() -> list[threading.Thread]:
    """pyVoIP threads still alive (a phone that was not stopped keeps the process alive)."""
    return [
        t
        for t in threading.enumerate()
        if t is not threading.current_thread() and t.name.startswith(_PYVOIP_THREADS)
    ]
