"""`qconnect serve` as a subprocess on free ports, for the interop tests."""

from __future__ import annotations

import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .clients import free_port, free_port_range


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
