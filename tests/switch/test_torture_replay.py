"""Every RFC 4475 torture message sent to a running switch over UDP and TCP.

After each one the switch must still answer OPTIONS: bad input gets an answer (or is
dropped when it cannot be answered) and never takes the switch down. Messages the RFC says a
server answers with a particular code get that code.
"""

from __future__ import annotations

import asyncio
import random
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from telephony.center.config import demo_lab
from telephony.sip.parser import parse_message
from telephony.switch.server import Switch, SwitchSettings
from tests.sip.torture import load_index, message

CASES = load_index()
# Over TCP, framing decides before parsing (RFC 3261 18.3): these get no answer at all or a
# framing error instead of the parser's status (see tests/sip/torture/index.json notes).
TCP_FRAMING = {"clerr.dat", "inv2543.dat", "ncl.dat", "mcl01.dat", "dblreq.dat"}


def _switch_in_thread(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A switch in a thread of its own with its own loop (the cases use blocking sockets)."""
    ready = threading.Event()
    loop = asyncio.new_event_loop()
    holder: dict[str, object] = {}

    async def run() -> None:
        try:
            base = 45000 + random.randrange(0, 100) * 50
            data_dir = Path(tmp_path_factory.mktemp("sw"))
            settings = SwitchSettings(sip_port=0, rtp_ports=(base, base + 49), data_dir=data_dir)
            sw = Switch(settings, demo_lab())
            await sw.start()
        except BaseException as exc:
            holder["error"] = exc
            ready.set()
            raise
        holder["stop"] = stop = asyncio.Event()
        holder["port"] = sw.endpoint.port
        ready.set()
        await stop.wait()
        await sw.stop()

    thread = threading.Thread(target=loop.run_until_complete, args=(run(),), daemon=True)
    thread.start()
    assert ready.wait(10), "switch did not start"
    if "error" in holder:
        raise AssertionError(f"switch failed to start: {holder['error']!r}")
    port = holder["port"]
    assert isinstance(port, int)
    yield port
    stop = holder["stop"]
    assert isinstance(stop, asyncio.Event)
    loop.call_soon_threadsafe(stop.set)
    thread.join(10)
    loop.close()


# A fresh switch per case: several RFC 4475 messages share a branch, sent-by and method
# (z9hG4bKkdjuw), so on one switch a later one is rightly absorbed as a retransmission of an
# earlier one's server transaction (RFC 3261 17.2.3) and answered to the earlier source.
@pytest.fixture
def udp_switch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    yield from _switch_in_thread(tmp_path_factory)


@pytest.fixture
def tcp_switch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    yield from _switch_in_thread(tmp_path_factory)


@pytest.fixture(scope="module")
def one_switch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    yield from _switch_in_thread(tmp_path_factory)


def options(port: int, transport: str, n: int) -> bytes:
    return (
        f"OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/{transport} 127.0.0.1:9;rport;branch=z9hG4bKprobe{transport}{n}\r\n"
        "Max-Forwards: 70\r\nFrom: <sip:probe@127.0.0.1>;tag=p\r\nTo: <sip:127.0.0.1>\r\n"
        f"Call-ID: probe-{transport}-{n}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    ).encode()


def udp_exchange(port: int, data: bytes, wait: float) -> list[bytes]:
    """Send one datagram; collect answers until a final one (or `wait` of silence)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(wait)
        sock.sendto(data, ("127.0.0.1", port))
        answers = []
        try:
            while True:
                answer = sock.recv(65535)
                answers.append(answer)
                if (status_of(answer) or 0) >= 200:
                    break
        except TimeoutError:
            pass
        return answers


def status_of(data: bytes) -> int | None:
    if not data.startswith(b"SIP/2.0 "):
        return None
    return int(data[8:11])


def with_rport(data: bytes) -> bytes:
    """Point the answer at our socket: add `rport` to the first Via value (RFC 3581), as a
    NATed client would; everything else is sent byte for byte (folding included)."""
    head, sep, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    for i, line in enumerate(lines):
        if line[:1] in (b" ", b"\t") or line.split(b":", 1)[0].strip().lower() not in (
            b"via",
            b"v",
        ):
            continue
        end = i + 1
        while end < len(lines) and lines[end][:1] in (b" ", b"\t"):
            end += 1
        block = b"\r\n".join(lines[i:end])
        colon = block.index(b":") + 1
        cuts = [k for k in (block.find(b";", colon), block.find(b",", colon)) if k >= 0]
        block = block[: min(cuts)] + b";rport" + block[min(cuts) :] if cuts else block + b";rport"
        lines[i:end] = block.split(b"\r\n")
        break
    return b"\r\n".join(lines) + sep + body


@pytest.mark.parametrize("case", CASES, ids=[c["file"] for c in CASES])
def test_udp_torture_then_options(udp_switch: int, case: dict[str, object]) -> None:
    switch_port = udp_switch
    data = with_rport(message(str(case["file"])))
    answers = [
        a for a in udp_exchange(switch_port, data, 0.4) if status_of(a) and status_of(a) != 100
    ]
    expected = case["expected"]
    if case["kind"] == "response":
        assert answers == []  # a response is never answered
    elif expected == "invalid":
        assert [status_of(a) for a in answers] in ([400], []), answers
    elif isinstance(expected, int):
        assert [status_of(a) for a in answers] == [expected], answers
    else:
        # Valid: parsed and handled — answered by something other than 400.
        assert answers, "a valid request got no answer"
        assert all(status_of(a) != 400 for a in answers), answers
        parse_message(answers[0])
    probe = udp_exchange(switch_port, options(switch_port, "UDP", hash(case["file"]) % 10**6), 1.0)
    assert any(status_of(a) == 200 for a in probe), "the switch stopped answering OPTIONS"


@pytest.mark.parametrize(
    "case", [c for c in CASES if c["kind"] == "request"], ids=lambda c: c["file"]
)
async def test_tcp_torture_then_options(tcp_switch: int, case: dict[str, object]) -> None:
    switch_port = tcp_switch
    reader, writer = await asyncio.open_connection("127.0.0.1", switch_port)
    writer.write(message(str(case["file"])))
    await writer.drain()
    first = b""
    try:
        while (status_of(first) or 100) == 100:
            first = await asyncio.wait_for(reader.read(65535), 0.5)
            if not first:
                break
    except TimeoutError:
        pass
    writer.close()
    expected = case["expected"]
    if case["file"] not in TCP_FRAMING:
        if expected == "invalid":
            assert status_of(first) in (400, None), first[:80]
        elif isinstance(expected, int):
            assert status_of(first) == expected, first[:80]
        else:
            assert first and status_of(first) != 400, first[:80]
    reader, writer = await asyncio.open_connection("127.0.0.1", switch_port)
    writer.write(options(switch_port, "TCP", 1))
    line = await asyncio.wait_for(reader.readline(), 2)
    writer.close()
    assert line.startswith(b"SIP/2.0 200 "), line


async def test_one_switch_survives_every_message_over_udp_and_tcp(one_switch: int) -> None:
    """All 49 messages at one running switch, over UDP and over TCP, then OPTIONS still 200."""
    loop = asyncio.get_running_loop()
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for case in CASES:
        udp.sendto(message(str(case["file"])), ("127.0.0.1", one_switch))
    udp.close()
    for case in CASES:
        _, writer = await asyncio.open_connection("127.0.0.1", one_switch)
        writer.write(message(str(case["file"])))
        await writer.drain()
        writer.close()
    await asyncio.sleep(0.3)
    probe = await loop.run_in_executor(
        None, udp_exchange, one_switch, options(one_switch, "UDP", 0), 2.0
    )
    assert any(status_of(a) == 200 for a in probe)
    reader, writer = await asyncio.open_connection("127.0.0.1", one_switch)
    writer.write(options(one_switch, "TCP", 0))
    line = await asyncio.wait_for(reader.readline(), 2)
    writer.close()
    assert line.startswith(b"SIP/2.0 200 ")
