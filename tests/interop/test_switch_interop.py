"""Real softphones against `qconnect serve` (issue 2, "Must show"): linphonec
and baresip register with the right password and are refused with a wrong
one; a baresip phone calls a linphonec phone through the switch and each
side's recording holds the speech the other side played."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from media.analysis import load_wav, two_way

from .audio import SpeechWav
from .clients import Baresip, Linphone, free_port, free_port_range
from .conftest import require

pytestmark = [pytest.mark.interop, pytest.mark.timeout(60)]

TALK_SECONDS = 8.5  # a whole sentence after the first, see test_clients_direct


class SwitchProcess:
    """`qconnect serve` as a subprocess on free ports, logging to a file."""

    def __init__(self, workdir: Path) -> None:
        self.sip_port = free_port()
        self.rtp_ports = free_port_range(200)
        self.data_dir = workdir / "switch-data"
        self.log_path = workdir / "switch.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.sip_port}"

    def command(self) -> list[str]:
        script = Path(sys.executable).with_name("qconnect")
        base = [str(script)] if script.exists() else [sys.executable, "-m", "telephony.cli"]
        lo, hi = self.rtp_ports
        return [
            *base,
            "serve",
            "--bind",
            "127.0.0.1",
            "--advertise",
            "127.0.0.1",
            "--sip-port",
            str(self.sip_port),
            "--rtp-ports",
            f"{lo}-{hi}",
            "--data-dir",
            str(self.data_dir),
            # Tests run in parallel: no fixed HTTP port, no embedded broker on 1883.
            "--http-port",
            "0",
            "--mqtt",
            "off",
        ]

    def start(self, within: float = 15.0) -> None:
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                self.command(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"qconnect serve exited with {self.proc.returncode}\n{self.log_tail()}")
            if self.options_status() == 200:
                return
        pytest.fail(f"qconnect serve did not answer OPTIONS within {within}s\n{self.log_tail()}")

    def options_status(self, wait: float = 0.3) -> int | None:
        """Send one OPTIONS over UDP (RFC 3261 11) and return the final status."""
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("127.0.0.1", 0))
            sock.settimeout(wait)
            local = sock.getsockname()[1]
            call_id = secrets.token_hex(8)
            request = (
                f"OPTIONS sip:{self.address} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP 127.0.0.1:{local};branch=z9hG4bK{secrets.token_hex(6)};rport\r\n"
                "Max-Forwards: 70\r\n"
                f"From: <sip:probe@127.0.0.1>;tag={secrets.token_hex(4)}\r\n"
                f"To: <sip:{self.address}>\r\n"
                f"Call-ID: {call_id}@127.0.0.1\r\n"
                "CSeq: 1 OPTIONS\r\n"
                "Content-Length: 0\r\n\r\n"
            )
            sock.sendto(request.encode(), ("127.0.0.1", self.sip_port))
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                try:
                    data = sock.recv(65535)
                except (TimeoutError, ConnectionRefusedError):
                    return None
                status_line = data.split(b"\r\n", 1)[0].split()
                if call_id.encode() in data and len(status_line) >= 2 and status_line[1].isdigit():
                    if int(status_line[1]) >= 200:
                        return int(status_line[1])
            return None

    def log_tail(self, lines: int = 80) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()[-lines:]
        except FileNotFoundError:
            return "(no switch log)"
        return f"----- {self.log_path}\n" + "\n".join(text)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def switch(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[SwitchProcess]:
    process = SwitchProcess(tmp_path)
    process.start()
    yield process
    process.stop()
    report = getattr(request.node, "rep_call", None)
    if (report is not None and report.failed) or os.environ.get("QCONNECT_SHOW_SWITCH_LOG"):
        print(process.log_tail(200))


Phones = Callable[[Any], Any]


async def test_linphone_registers_with_right_password(
    tmp_path: Path, switch: SwitchProcess, phones: Phones
) -> None:
    require("linphonec")
    phone = phones(Linphone(tmp_path, "john"))
    await phone.start()
    await phone.register("john", "john", switch.address)
    event = await phone.wait_registered(within=10)
    assert event.detail == f"sip:john@{switch.address}"


async def test_linphone_refused_with_wrong_password(
    tmp_path: Path, switch: SwitchProcess, phones: Phones
) -> None:
    require("linphonec")
    phone = phones(Linphone(tmp_path, "john"))
    await phone.start()
    await phone.register("john", "not-johns-password", switch.address)
    await phone.wait_registration_failed(within=10)
    await asyncio.sleep(1.0)
    assert not phone.saw("registered")


async def test_baresip_registers_with_right_password(
    tmp_path: Path, switch: SwitchProcess, phones: Phones, voices: tuple[SpeechWav, SpeechWav]
) -> None:
    require("baresip")
    phone = phones(
        Baresip(
            tmp_path, "john", source=voices[0].looped, registrar=switch.address, password="john"
        )
    )
    await phone.start()
    await phone.wait_registered(within=10)


async def test_baresip_refused_with_wrong_password_or_unknown_user(
    tmp_path: Path, switch: SwitchProcess, phones: Phones, voices: tuple[SpeechWav, SpeechWav]
) -> None:
    require("baresip")
    source = voices[0].looped
    wrong = phones(
        Baresip(
            tmp_path, "wrong", source=source, user="john", registrar=switch.address, password="x"
        )
    )
    unknown = phones(
        Baresip(
            tmp_path,
            "unknown",
            source=source,
            user="nobody",
            registrar=switch.address,
            password="x",
        )
    )
    await wrong.start()
    await unknown.start()
    refused_wrong = await wrong.wait_registration_failed(within=10)
    refused_unknown = await unknown.wait_registration_failed(within=10)
    # Issue 2: a wrong password and an unknown user get the same answer.
    assert refused_wrong.detail == refused_unknown.detail, (refused_wrong, refused_unknown)
    assert not wrong.saw("REGISTER_OK") and not unknown.saw("REGISTER_OK")


async def test_baresip_calls_linphone_through_the_switch(
    tmp_path: Path, switch: SwitchProcess, phones: Phones, voices: tuple[SpeechWav, SpeechWav]
) -> None:
    require("baresip", "linphonec")
    john_says, maria_says = voices
    maria = phones(Linphone(tmp_path, "maria", play=maria_says.looped, auto_answer=True))
    john = phones(
        Baresip(
            tmp_path,
            "john",
            source=john_says.looped,
            registrar=switch.address,
            password="john",
        )
    )
    await maria.start()
    await maria.register("maria", "maria", switch.address)
    await john.start()
    await maria.wait_registered(within=10)
    await john.wait_registered(within=10)

    await john.dial(f"sip:maria@{switch.address}")
    await maria.wait_event("incoming", within=10)
    await john.wait_established(within=10)
    await maria.wait_established(within=10)
    await asyncio.sleep(TALK_SECONDS)
    await john.hangup()
    await john.wait_closed(within=10)
    await maria.wait_closed(within=10)

    john_heard, rate = load_wav(john.heard)
    maria_heard, maria_rate = load_wav(maria.heard)
    assert rate == maria_rate == 8000
    result = two_way(
        john_heard,
        maria_heard,
        john_says.reference()[0],
        maria_says.reference()[0],
        rate,
        threshold=0.5,
    )
    print(f"two-way evidence: {result}")
    assert result, f"two-way audio through the switch failed: {result}"
