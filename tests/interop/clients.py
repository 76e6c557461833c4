"""asyncio drivers for real softphones, run headless: baresip and linphonec.

Each instance lives in its own directory (config, HOME, logs, recordings) and
on its own free ports, so tests run in parallel with other tests. Findings
behind the choices below are in tests/interop/README.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import re
import shutil
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

__all__ = [
    "Baresip",
    "ClientError",
    "Linphone",
    "PhoneEvent",
    "free_port",
    "free_port_pair",
    "free_port_range",
]


class ClientError(RuntimeError):
    """A real client did not do what the test asked, with its log tail."""


@dataclass(frozen=True, slots=True)
class PhoneEvent:
    """``fields``: everything else the client said with the event (baresip's
    call events carry ``peeruri``, ``peerdisplayname``, ``id``, ...)."""

    name: str
    detail: str
    at: float
    fields: Mapping[str, object] = field(default_factory=dict)


# ------------------------------------------------------------------ ports


def _bindable(port: int, kind: int) -> bool:
    with socket.socket(socket.AF_INET, kind) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port(kind: int = socket.SOCK_DGRAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def free_port_pair() -> int:
    """A port P with UDP and TCP free on both P and P+1 (baresip listens on
    SIP UDP+TCP at P and TLS at P+1)."""
    for _ in range(200):
        port = free_port()
        if port >= 65535:
            continue
        if all(
            _bindable(p, k)
            for p in (port, port + 1)
            for k in (socket.SOCK_DGRAM, socket.SOCK_STREAM)
        ):
            return port
    raise ClientError("no free SIP port pair")


def free_port_range(size: int = 20) -> tuple[int, int]:
    """An even-based range of ``size`` free UDP ports below the ephemeral range
    (RTP wants even ports, RTCP the odd one above)."""
    for _ in range(500):
        base = random.randrange(20000, 32000 - size, 2)
        if all(_bindable(p, socket.SOCK_DGRAM) for p in range(base, base + size)):
            return base, base + size - 1
    raise ClientError("no free RTP port range")


# ------------------------------------------------------------- processes


def _open_for_child(path: Path) -> BinaryIO:
    return open(path, "wb")  # noqa: SIM115 - handed to a child process / reader task


def _read_from(path: Path, position: int) -> bytes:
    try:
        with open(path, "rb") as f:
            f.seek(position)
            return f.read()
    except FileNotFoundError:
        return b""


class _Phone:
    """Event history shared by both drivers: events are kept, and each
    ``wait_event(name)`` returns the next one of that name not returned yet."""

    kind = "phone"

    def __init__(self, workdir: Path, name: str) -> None:
        self.name = name
        self.dir = workdir / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.events: list[PhoneEvent] = []
        self._consumed: dict[str, int] = {}
        self._changed = asyncio.Event()
        self._proc: asyncio.subprocess.Process | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._t0 = time.monotonic()

    def _emit(
        self, name: str, detail: str = "", fields: Mapping[str, object] | None = None
    ) -> None:
        self.events.append(PhoneEvent(name, detail, time.monotonic() - self._t0, fields or {}))
        self._changed.set()

    async def wait_event(self, *names: str, within: float = 10.0) -> PhoneEvent:
        """The next not-yet-returned event with one of ``names``."""
        deadline = time.monotonic() + within
        while True:
            for index, event in enumerate(self.events):
                if event.name in names and index >= self._consumed.get(event.name, 0):
                    self._consumed[event.name] = index + 1
                    return event
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ClientError(
                    f"{self.kind} {self.name}: no {'/'.join(names)} within {within}s; "
                    f"events so far: {[e.name for e in self.events]}\n{self.log_tail()}"
                )
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.5))

    def saw(self, name: str) -> bool:
        return any(e.name == name for e in self.events)

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    def log_files(self) -> list[Path]:
        return sorted(p for p in self.dir.glob("*.log") if p.is_file())

    def log_tail(self, lines: int = 60) -> str:
        out = []
        for path in self.log_files():
            text = path.read_text(errors="replace").splitlines()[-lines:]
            out.append(f"----- {path} (last {len(text)} lines)\n" + "\n".join(text))
        return "\n".join(out)

    async def _terminate(self, graceful: float = 3.0) -> None:
        proc = self._proc
        if proc is not None and proc.returncode is None:
            # Asked to quit already; then SIGTERM, then SIGKILL: never leave a
            # phone behind holding ports.
            for action in (None, proc.terminate, proc.kill):
                if action is not None:
                    with contextlib.suppress(ProcessLookupError):
                        action()
                try:
                    await asyncio.wait_for(proc.wait(), graceful if action is None else 2.0)
                    break
                except TimeoutError:
                    continue
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()


# ---------------------------------------------------------------- baresip


class Baresip(_Phone):
    """baresip 1.0 with the ``ctrl_tcp`` module: commands and events are JSON
    netstrings on one TCP connection; ``aufile`` is the microphone (a WAV);
    ``sndfile`` dumps what it decodes (``-dec.wav``, heard) and encodes
    (``-enc.wav``, sent).

    Events keep baresip's own names: REGISTER_OK, REGISTER_FAIL, CALL_INCOMING,
    CALL_RINGING, CALL_ESTABLISHED, CALL_CLOSED, CALL_DTMF_START, ...
    """

    kind = "baresip"

    def __init__(
        self,
        workdir: Path,
        name: str,
        *,
        source: Path,
        user: str | None = None,
        registrar: str | None = None,
        password: str | None = None,
        answermode: str = "manual",
        codecs: str = "PCMU,PCMA",
        sip_trace: bool = False,
    ) -> None:
        super().__init__(workdir, name)
        self.sip_trace = sip_trace
        self.source = source
        self.user = user or name
        self.registrar = registrar
        self.password = password
        self.answermode = answermode
        self.codecs = codecs
        self.sip_port = free_port_pair()
        self.ctrl_port = free_port(socket.SOCK_STREAM)
        self.rtp_ports = free_port_range(20)
        self.rec_dir = self.dir / "rec"
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._token = 0
        self._responses: dict[str, asyncio.Future[dict[str, object]]] = {}

    @property
    def uri(self) -> str:
        """Where to call this phone directly (no registrar)."""
        return f"sip:{self.user}@127.0.0.1:{self.sip_port}"

    @property
    def aor(self) -> str:
        return f"sip:{self.user}@{self.registrar}" if self.registrar else self.uri

    def _write_config(self) -> None:
        self.rec_dir.mkdir(exist_ok=True)
        lo, hi = self.rtp_ports
        config = f"""\
sip_listen       127.0.0.1:{self.sip_port}
audio_source     aufile,{self.source}
audio_player     aufile,{self.dir / "player.wav"}
rtp_ports        {lo}-{hi}
rtp_timeout      0
module_path      /usr/lib/baresip/modules
module           g711.so
module           aufile.so
module           sndfile.so
module           ctrl_tcp.so
module_app       account.so
module_app       menu.so
ctrl_tcp_listen  127.0.0.1:{self.ctrl_port}
snd_path         {self.rec_dir}
"""
        (self.dir / "config").write_text(config)
        # A registering account is added over ctrl_tcp once connected (see
        # start()): one from this file registers before anyone can hear its
        # REGISTER_OK/REGISTER_FAIL event.
        accounts = "" if self.registrar else self.account_line() + "\n"
        (self.dir / "accounts").write_text(accounts)
        (self.dir / "contacts").write_text("")

    def account_line(self) -> str:
        params = [f"answermode={self.answermode}", f"audio_codecs={self.codecs}"]
        if self.registrar:
            # RFC 3261 10.2: register the AOR at the registrar, authenticating
            # with the same user name.
            line = f"<sip:{self.user}@{self.registrar};transport=udp>"
            if self.password is not None:
                params.append(f"auth_pass={self.password}")
            params.append("regint=300")
        else:
            line = f"<{self.uri}>"
            params.append("regint=0")
        return line + ";" + ";".join(params)

    async def start(self) -> None:
        if shutil.which("baresip") is None:
            raise ClientError("baresip is not installed")
        self._write_config()
        log = _open_for_child(self.dir / "baresip.log")
        env = dict(os.environ, HOME=str(self.dir))
        # -t: baresip quits by itself even if this test process dies; -s
        # writes every SIP message sent and received to the log.
        self._proc = await asyncio.create_subprocess_exec(
            "baresip",
            "-f",
            str(self.dir),
            "-t",
            "300",
            *(["-s"] if self.sip_trace else []),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
            env=env,
        )
        log.close()
        deadline = time.monotonic() + 10
        while True:
            try:
                self._reader, self._writer = await asyncio.open_connection(
                    "127.0.0.1", self.ctrl_port
                )
                break
            except OSError:
                if not self.running or time.monotonic() > deadline:
                    raise ClientError(
                        f"baresip {self.name} ctrl_tcp never listened\n{self.log_tail()}"
                    ) from None
                await asyncio.sleep(0.1)
        self._tasks.append(asyncio.create_task(self._read_loop()))
        if self.registrar:
            await self.command("uanew", self.account_line())

    async def _read_loop(self) -> None:
        assert self._reader is not None
        buffer = b""
        while True:
            chunk = await self._reader.read(65536)
            if not chunk:
                self._emit("CTRL_CLOSED")
                return
            buffer += chunk
            while True:
                colon = buffer.find(b":")
                if colon < 0:
                    break
                length = int(buffer[:colon])
                end = colon + 1 + length
                if len(buffer) < end + 1:
                    break
                payload, buffer = buffer[colon + 1 : end], buffer[end + 1 :]
                self._dispatch(json.loads(payload))

    def _dispatch(self, message: dict[str, object]) -> None:
        if message.get("response"):
            token = str(message.get("token"))
            future = self._responses.pop(token, None)
            if future is not None and not future.done():
                future.set_result(message)
            return
        if message.get("event"):
            kind = str(message.get("type"))
            param = message.get("param", "")
            self._emit(
                kind,
                json.dumps(message) if kind.startswith("CALL_RTCP") else str(param),
                message,
            )

    async def command(self, command: str, params: str = "", within: float = 5.0) -> str:
        """Send a menu command; return its response text or raise ClientError."""
        if self._writer is None:
            raise ClientError(f"baresip {self.name} not started")
        self._token += 1
        token = f"t{self._token}"
        future: asyncio.Future[dict[str, object]] = asyncio.get_running_loop().create_future()
        self._responses[token] = future
        body = json.dumps({"command": command, "params": params, "token": token}).encode()
        self._writer.write(str(len(body)).encode() + b":" + body + b",")
        await self._writer.drain()
        reply = await asyncio.wait_for(future, within)
        if not reply.get("ok"):
            raise ClientError(f"baresip {self.name}: {command} {params!r} failed: {reply}")
        return str(reply.get("data", ""))

    async def wait_registered(self, within: float = 10.0) -> PhoneEvent:
        event = await self.wait_event("REGISTER_OK", "REGISTER_FAIL", within=within)
        if event.name != "REGISTER_OK":
            raise ClientError(f"baresip {self.name} registration failed: {event.detail}")
        return event

    async def wait_registration_failed(self, within: float = 10.0) -> PhoneEvent:
        event = await self.wait_event("REGISTER_OK", "REGISTER_FAIL", within=within)
        if event.name != "REGISTER_FAIL":
            raise ClientError(f"baresip {self.name} registered although it should not")
        return event

    async def dial(self, uri: str) -> None:
        await self.command("dial", uri)

    async def accept(self) -> None:
        await self.command("accept")

    async def hangup(self) -> None:
        await self.command("hangup")

    async def hold(self) -> None:
        await self.command("hold")

    async def resume(self) -> None:
        await self.command("resume")

    async def send_dtmf(self, digits: str) -> None:
        for digit in digits:
            await self.command("sndcode", digit)

    async def wait_established(self, within: float = 10.0) -> PhoneEvent:
        event = await self.wait_event("CALL_ESTABLISHED", "CALL_CLOSED", within=within)
        if event.name != "CALL_ESTABLISHED":
            raise ClientError(f"baresip {self.name}: call closed: {event.detail}")
        return event

    async def wait_closed(self, within: float = 10.0) -> PhoneEvent:
        return await self.wait_event("CALL_CLOSED", within=within)

    def recordings(self) -> tuple[Path, Path]:
        """(heard, sent) WAVs of the latest call (sndfile ``-dec``/``-enc``)."""
        heard = sorted(self.rec_dir.glob("*-dec.wav"), key=lambda p: p.stat().st_mtime)
        sent = sorted(self.rec_dir.glob("*-enc.wav"), key=lambda p: p.stat().st_mtime)
        if not heard or not sent:
            raise ClientError(f"baresip {self.name}: no recordings in {self.rec_dir}")
        return heard[-1], sent[-1]

    @property
    def heard(self) -> Path:
        return self.recordings()[0]

    @property
    def sent(self) -> Path:
        return self.recordings()[1]

    async def stop(self) -> None:
        if self.running and self._writer is not None:
            with contextlib.suppress(Exception):
                await self.command("quit", within=2.0)
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(Exception):
                await self._writer.wait_closed()
        await self._terminate()


# --------------------------------------------------------------- linphonec

_REGISTRATION = re.compile(
    r"for identity \[(?P<identity>[^\]]*)\] moving from state \[\w+\] to \[(?P<state>\w+)\]"
)
_PASSWORD_PROMPT = re.compile(r"Password for .+ on .+: ?$")
_STDOUT_EVENTS = (
    (re.compile(r"Receiving new incoming call from (?P<d>.+), assigned id \d+"), "incoming"),
    (re.compile(r"Call \d+ to (?P<d>.+) ringing\."), "ringing"),
    (re.compile(r"Call \d+ with (?P<d>.+) early media\."), "early_media"),
    (re.compile(r"Call \d+ with (?P<d>.+) connected\."), "connected"),
    (re.compile(r"Media streams established with (?P<d>.+)\."), "streams"),
    (re.compile(r"Call \d+ with (?P<d>.+) is now paused\."), "paused"),
    (re.compile(r"Call \d+ has been paused by (?P<d>.+)\."), "paused_by_remote"),
    (re.compile(r"Resuming call \d+ with (?P<d>.+)\."), "resuming"),
    (re.compile(r"Call \d+ with (?P<d>.+) ended \((?P<r>.*)\)\."), "ended"),
    (re.compile(r"Call \d+ with (?P<d>.+) error\."), "error"),
    (re.compile(r"Receiving tone (?P<d>.) from"), "dtmf"),
)


class Linphone(_Phone):
    """linphonec (Debian linphone-cli, liblinphone 5.1) driven on stdin.

    Chosen over linphone-daemon because only linphonec can record what the
    phone hears (``soundcard use files`` + ``record``). Call events come from
    its console lines; registration states from its log file, where
    liblinphone writes every account state change.

    Events: registered, registration_failed, incoming, ringing, connected,
    streams, paused, paused_by_remote, resuming, dtmf, ended, error, password_prompt.
    """

    kind = "linphonec"

    def __init__(
        self,
        workdir: Path,
        name: str,
        *,
        play: Path | None = None,
        record: Path | None = None,
        auto_answer: bool = False,
    ) -> None:
        super().__init__(workdir, name)
        self.play_file = play
        self.record_file = record if record is not None else self.dir / "heard.wav"
        self.auto_answer = auto_answer
        self.sip_port = free_port()
        self.rtp_port = free_port_range(4)[0]
        self.home = self.dir / "home"
        self.log_path = self.dir / "linphone.log"
        self.console_path = self.dir / "console.log"
        self.user = name

    @property
    def uri(self) -> str:
        return f"sip:{self.user}@127.0.0.1:{self.sip_port}"

    def _write_config(self) -> Path:
        # liblinphone opens $HOME/.local/share/linphone/linphone.db at start;
        # without that directory it never opens a SIP listening point.
        (self.home / ".local" / "share" / "linphone").mkdir(parents=True, exist_ok=True)
        rc = self.dir / "linphonerc"
        rc.write_text(
            f"""\
[sip]
sip_port={self.sip_port}
sip_tcp_port=0
sip_tls_port=0
use_ipv6=0
guess_hostname=1
inc_timeout=60
[rtp]
audio_rtp_port={self.rtp_port}
video_rtp_port={self.rtp_port + 2}
[sound]
echocancellation=0
[video]
capture=0
display=0
"""
        )
        return rc

    async def start(self) -> None:
        if shutil.which("linphonec") is None:
            raise ClientError("linphonec is not installed")
        rc = self._write_config()
        console = _open_for_child(self.console_path)
        args = ["-c", str(rc), "-d", "6", "-l", str(self.log_path)]
        if self.auto_answer:
            args.append("-a")
        env = dict(os.environ, HOME=str(self.home))
        # stdin is a pipe: when this test process dies, linphonec reads EOF and quits.
        self._proc = await asyncio.create_subprocess_exec(
            "linphonec",
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=env,
        )
        self._tasks.append(asyncio.create_task(self._read_stdout(console)))
        self._tasks.append(asyncio.create_task(self._tail_log()))
        await self.send("soundcard use files")
        await self.wait_event("files_mode", within=10)
        if self.play_file is not None:
            await self.send(f"play {self.play_file}")
        await self.send(f"record {self.record_file}")

    async def _read_stdout(self, sink: BinaryIO) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        pending = b""
        prompted = False
        try:
            while True:
                chunk = await self._proc.stdout.read(4096)
                if not chunk:
                    self._emit("exited")
                    return
                sink.write(chunk)
                sink.flush()
                *lines, pending = (pending + chunk).split(b"\n")
                for line in lines:
                    self._console_line(line.decode(errors="replace").strip())
                if lines:
                    prompted = False
                # The password prompt waits on an unfinished line; whatever is
                # written next to stdin is taken as the password.
                partial = pending.decode(errors="replace")
                if not prompted and _PASSWORD_PROMPT.search(partial):
                    prompted = True
                    self._emit("password_prompt", partial.strip())
        finally:
            sink.close()

    def _console_line(self, text: str) -> None:
        if text.startswith("linphonec> "):
            text = text[len("linphonec> ") :]
        if "Using wav files instead of soundcard" in text:
            self._emit("files_mode")
        for pattern, name in _STDOUT_EVENTS:
            match = pattern.search(text)
            if match:
                self._emit(name, match.group("d"))

    async def _tail_log(self) -> None:
        position = 0
        pending = b""
        while True:
            chunk = _read_from(self.log_path, position)
            position += len(chunk)
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for raw in lines:
                match = _REGISTRATION.search(raw.decode(errors="replace"))
                if match is None:
                    continue
                state = match.group("state")
                if state == "LinphoneRegistrationOk":
                    self._emit("registered", match.group("identity"))
                elif state == "LinphoneRegistrationFailed":
                    self._emit("registration_failed", match.group("identity"))
                elif state == "LinphoneRegistrationCleared":
                    self._emit("unregistered", match.group("identity"))
            await asyncio.sleep(0.05)

    async def send(self, line: str) -> None:
        if self._proc is None or self._proc.stdin is None or not self.running:
            raise ClientError(f"linphonec {self.name} is not running\n{self.log_tail()}")
        self._proc.stdin.write(line.encode() + b"\n")
        await self._proc.stdin.drain()

    async def register(self, user: str, password: str, registrar: str) -> None:
        """REGISTER ``sip:user@registrar`` at ``registrar`` (host:port)."""
        self.user = user
        await self.send(f"register sip:{user}@{registrar} sip:{registrar} {password}")

    async def wait_registered(self, within: float = 10.0) -> PhoneEvent:
        event = await self.wait_event("registered", "registration_failed", within=within)
        if event.name != "registered":
            raise ClientError(f"linphonec {self.name} registration failed\n{self.log_tail()}")
        return event

    async def wait_registration_failed(self, within: float = 10.0) -> PhoneEvent:
        event = await self.wait_event("registered", "registration_failed", within=within)
        if event.name != "registration_failed":
            raise ClientError(f"linphonec {self.name} registered although it should not")
        return event

    async def call(self, uri: str) -> None:
        await self.send(f"call {uri}")

    async def answer(self) -> None:
        await self.send("answer")

    async def terminate(self) -> None:
        await self.send("terminate")

    async def hold(self) -> None:
        await self.send("pause")

    async def resume(self) -> None:
        await self.send("resume")

    async def send_dtmf(self, digits: str) -> None:
        # linphonec sends a console line made only of DTMF symbols as digits.
        await self.send(digits)

    async def play(self, path: Path) -> None:
        self.play_file = path
        await self.send(f"play {path}")

    async def record(self, path: Path) -> None:
        self.record_file = path
        await self.send(f"record {path}")

    async def wait_established(self, within: float = 10.0) -> PhoneEvent:
        event = await self.wait_event("streams", "ended", "error", within=within)
        if event.name != "streams":
            raise ClientError(f"linphonec {self.name}: call {event.name}: {event.detail}")
        return event

    async def wait_closed(self, within: float = 10.0) -> PhoneEvent:
        return await self.wait_event("ended", "error", within=within)

    @property
    def heard(self) -> Path:
        return self.record_file

    async def stop(self) -> None:
        graceful = 3.0
        if self.running:
            if self.saw("password_prompt"):
                # The console reads every line as another password now (each
                # answer re-prompts): "quit" would never be read. Signal instead.
                graceful = 0.0
            else:
                with contextlib.suppress(Exception):
                    await self.send("quit")
            if self._proc is not None and self._proc.stdin is not None:
                self._proc.stdin.close()
        await self._terminate(graceful)
