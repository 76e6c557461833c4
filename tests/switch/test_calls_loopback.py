"""The switch over real loopback sockets, driven by scripted phones on our own stack."""

from __future__ import annotations

import asyncio
import random
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

from media.analysis import goertzel
from media.rtcp import Goodbye, SenderReport
from telephony.center.config import demo_lab
from telephony.lab.phone import CallFailed, CallState, Phone, PhoneCall
from telephony.switch.server import Switch, SwitchSettings
from telephony.transport.base import Address

USERS = {"john": "john", "maria": "maria", "customer": "customer"}
RATE = 8000


def tone(freq: float, seconds: float, level: float = 8000.0) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (level * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def rtp_range() -> tuple[int, int]:
    # Tests run in parallel workers: give each switch its own slice of ports.
    base = 30000 + random.randrange(0, 300) * 100
    return base, base + 99


@pytest.fixture
async def switch(tmp_path: Path) -> AsyncIterator[Switch]:
    settings = SwitchSettings(sip_port=0, rtp_ports=rtp_range(), rtp_timeout=2.0, data_dir=tmp_path)
    sw = Switch(settings, demo_lab())
    await sw.start()
    yield sw
    await sw.stop()


async def make_phone(sw: Switch, user: str, transport: str = "udp", **kw: object) -> Phone:
    phone = Phone(user, USERS[user], Address(transport, "127.0.0.1", sw.endpoint.port), **kw)  # type: ignore[arg-type]
    await phone.start()
    response = await phone.register()
    assert response.status == 200, response
    return phone


def energy_at(samples: np.ndarray, freq: float) -> float:
    return goertzel(samples.astype(np.float32) / 32768.0, RATE, freq)


async def test_register_right_and_wrong_password(switch: Switch) -> None:
    good = Phone("john", "john", Address("udp", "127.0.0.1", switch.endpoint.port))
    await good.start()
    assert (await good.register()).status == 200
    wrong = Phone("maria", "not-maria", Address("udp", "127.0.0.1", switch.endpoint.port))
    await wrong.start()
    refused = await wrong.register()
    unknown = Phone("nobody", "x", Address("udp", "127.0.0.1", switch.endpoint.port))
    await unknown.start()
    refused_unknown = await unknown.register()
    # No user enumeration: a wrong password and an unknown user get the same answer.
    assert refused.status == refused_unknown.status == 401
    assert len(refused.headers.lines("WWW-Authenticate")) == len(
        refused_unknown.headers.lines("WWW-Authenticate")
    )
    assert switch.registrar.lookup("maria", switch.endpoint.now()) == []
    assert len(switch.registrar.lookup("john", switch.endpoint.now())) == 1
    for p in (good, wrong, unknown):
        await p.stop()


async def test_options_answered_over_udp_and_tcp(switch: Switch) -> None:
    port = switch.endpoint.port
    request = (
        f"OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/{{t}} 127.0.0.1:9;rport;branch=z9hG4bKopt{{t}}\r\n"
        "Max-Forwards: 70\r\nFrom: <sip:probe@127.0.0.1>;tag=1\r\nTo: <sip:127.0.0.1>\r\n"
        "Call-ID: opt-{t}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    )
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.settimeout(2)
    udp.sendto(request.replace("{t}", "UDP").encode(), ("127.0.0.1", port))
    data = await asyncio.get_running_loop().run_in_executor(None, udp.recv, 65535)
    assert data.startswith(b"SIP/2.0 200 ")
    udp.close()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request.replace("{t}", "TCP").encode())
    line = await asyncio.wait_for(reader.readline(), 2)
    assert line.startswith(b"SIP/2.0 200 ")
    writer.close()


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_call_bridges_audio_both_ways_bit_exact(switch: Switch, transport: str) -> None:
    john = await make_phone(switch, "john", transport)
    maria = await make_phone(switch, "maria", transport, auto_answer=True)
    call = await john.call("maria")
    assert call.state is CallState.ESTABLISHED
    incoming = await asyncio.wait_for(maria.incoming.get(), 2)
    await asyncio.wait_for(incoming.established.wait(), 2)
    call.media.play(tone(600, 3.0))
    incoming.media.play(tone(1400, 3.0))
    await asyncio.sleep(1.5)
    heard_by_maria = incoming.heard()
    heard_by_john = call.heard()
    assert energy_at(heard_by_maria, 600) > 10 * energy_at(heard_by_maria, 1400)
    assert energy_at(heard_by_john, 1400) > 10 * energy_at(heard_by_john, 600)
    # Bit-exact: the G.711 payloads Maria got while John's tone played are the ones John
    # sent, in order: decode -> mix -> encode through the bridge changes no bit.
    silence = {bytes([0xFF]) * 160, bytes([0x7F]) * 160}
    sent = call.media.raw_sent
    got = [p for p in incoming.media.raw_received if p not in silence]
    assert len(got) > 30
    start = sent.index(got[0])
    assert sent[start : start + len(got)] == got
    await call.hangup()
    assert await incoming.wait_ended(3) == "remote hangup"
    await john.stop()
    await maria.stop()


async def test_ringing_then_cancel_reaches_callee(switch: Switch) -> None:
    john = await make_phone(switch, "john")
    maria = await make_phone(switch, "maria")
    calling = asyncio.create_task(john.call("maria"))
    ringing = await asyncio.wait_for(maria.incoming.get(), 2)
    await asyncio.sleep(0.2)
    outgoing = next(iter(john.calls.values()))
    await john.cancel(outgoing)
    with pytest.raises(CallFailed) as failed:
        await asyncio.wait_for(calling, 5)
    assert failed.value.status == 487
    assert await ringing.wait_ended(3) == "cancelled"
    await john.stop()
    await maria.stop()


async def test_busy_callee_is_reported_to_caller(switch: Switch) -> None:
    john = await make_phone(switch, "john")
    maria = await make_phone(switch, "maria")
    maria.on_call = lambda call: call.reject(486)
    with pytest.raises(CallFailed) as failed:
        await john.call("maria")
    assert failed.value.status == 486
    await john.stop()
    await maria.stop()


async def test_unknown_and_unregistered_targets(switch: Switch) -> None:
    john = await make_phone(switch, "john")
    with pytest.raises(CallFailed) as unknown:
        await john.call("nobody")
    assert unknown.value.status == 404
    with pytest.raises(CallFailed) as offline:
        await john.call("customer")
    assert offline.value.status == 480
    await john.stop()


async def test_callee_hangup_ends_caller_leg(switch: Switch) -> None:
    john = await make_phone(switch, "john", "tcp")
    maria = await make_phone(switch, "maria", "udp", auto_answer=True)
    call = await john.call("maria")
    incoming = await asyncio.wait_for(maria.incoming.get(), 2)
    await asyncio.wait_for(incoming.established.wait(), 2)
    await incoming.hangup()
    assert await call.wait_ended(3) == "remote hangup"
    assert not switch.b2bua.calls
    await john.stop()
    await maria.stop()


async def test_silent_call_is_torn_down(switch: Switch) -> None:
    john = await make_phone(switch, "john")
    maria = await make_phone(switch, "maria", auto_answer=True)
    call = await john.call("maria")
    incoming = await asyncio.wait_for(maria.incoming.get(), 2)
    call.media.sending = False
    incoming.media.sending = False
    # rtp_timeout is 2 s in this fixture: both phones get a BYE from the switch.
    assert await call.wait_ended(6) == "remote hangup"
    assert await incoming.wait_ended(2) == "remote hangup"
    await john.stop()
    await maria.stop()


async def test_hold_from_phone_is_answered_in_dialog(switch: Switch) -> None:
    john = await make_phone(switch, "john")
    maria = await make_phone(switch, "maria", auto_answer=True)
    call = await john.call("maria")
    response = await call.hold()
    assert response.status == 200
    assert b"a=recvonly" in response.body
    response = await call.resume()
    assert response.status == 200 and b"a=sendrecv" in response.body
    await call.hangup()
    await john.stop()
    await maria.stop()


async def established_pair(switch: Switch) -> tuple[Phone, Phone, PhoneCall, PhoneCall]:
    john = await make_phone(switch, "john")
    maria = await make_phone(switch, "maria", auto_answer=True)
    call = await john.call("maria")
    incoming = await asyncio.wait_for(maria.incoming.get(), 2)
    await asyncio.wait_for(incoming.established.wait(), 2)
    return john, maria, call, incoming


async def test_dtmf_rfc4733_and_info_reach_the_switch_and_go_out(switch: Switch) -> None:
    john, maria, call, incoming = await established_pair(switch)
    (bridged,) = switch.b2bua.calls
    heard: list[str] = []
    bridged.caller.media.on_digit = lambda digit: heard.append(digit.digit)
    call.send_dtmf("12#")
    assert (await call.send_info_dtmf("7")).status == 200
    for _ in range(50):
        if len(heard) >= 4:
            break
        await asyncio.sleep(0.1)
    # The INFO overtakes the RTP digits still being played out; each way keeps its order.
    assert sorted(heard) == sorted(["1", "2", "#", "7"]), heard
    assert [d for d in heard if d != "7"] == ["1", "2", "#"], heard
    # And out: the switch plays a digit to Maria's phone as RFC 4733 events.
    bridged.callee.media.send_dtmf("5")
    for _ in range(30):
        if incoming.media.dtmf_heard:
            break
        await asyncio.sleep(0.1)
    assert incoming.media.dtmf_heard == ["5"]
    await call.hangup()
    await john.stop()
    await maria.stop()


async def test_switch_sends_rtcp_reports_about_what_it_receives(switch: Switch) -> None:
    john, maria, call, incoming = await established_pair(switch)
    call.media.play(tone(600, 6.0))
    reports: list[SenderReport] = []
    for _ in range(60):
        reports = [p for p in call.media.rtcp_received if isinstance(p, SenderReport)]
        if reports:
            break
        await asyncio.sleep(0.1)
    assert reports, "no RTCP sender report within 6 s"
    (block,) = reports[0].reports
    assert block.ssrc == call.media.ssrc  # about John's stream
    assert block.cumulative_lost == 0 and block.fraction_lost == 0
    assert reports[0].packet_count > 0
    # John hangs up: the switch ends Maria's leg with an RTCP BYE before its SIP BYE.
    await call.hangup()
    await incoming.wait_ended(3)
    assert any(isinstance(p, Goodbye) for p in incoming.media.rtcp_received)
    await john.stop()
    await maria.stop()
