"""pyVoIP 1.6.8 as a client of `qconnect serve` (issue 7 item 6, the customer's
design card names pyVoIP): it registers with digest auth, a wrong password is
refused, and a call through the switch carries audio both ways and ends from
either side.

Findings (pyVoIP 1.6.8 against the switch):

* Its REGISTER's digest uri is `sip:<server>;transport=UDP` for Request-URI
  `sip:<server>`. RFC 3261 19.1.4 makes those the same URI (a parameter other
  than user/ttl/method/maddr present in only one URI is ignored); our digest
  check compared every parameter and refused pyVoIP with the right password.
  Fixed in telephony/sip/digest.py (`_same_uri_params`).
* It keeps only the first WWW-Authenticate and always answers MD5, so it
  answered our SHA-256 challenge's nonce with an MD5 digest (accepted only
  because our nonces are not tied to an algorithm). The registrar now offers
  MD5 alone to `User-Agent: pyVoIP 1.x`, as to baresip 1.x.
* A refused REGISTER does not raise: pyVoIP retries and, after
  REGISTER_FAILURE_THRESHOLD (3) refusals, stops itself with status FAILED.
* pyVoIP is the *called* phone here. It cannot place a call through an
  authenticating switch: it re-sends the challenged INVITE with the same Via
  branch (RFC 3261 8.1.1.7 wants a new one; our transaction layer rightly
  absorbs it as a retransmission, 17.2.3) and with digest uri
  `sip:<server>;transport=UDP` rather than the Request-URI `sip:john@<server>`
  (RFC 3261 22.4).
* Its BYE (and ACK) copy the Via of the request they answer instead of a Via
  of their own; the switch still ends the call.
* `from pyVoIP.SIP import ...` as the first pyVoIP import is a circular
  import; `import pyVoIP.VoIP` first.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import pytest

from media.analysis import detect_tone
from telephony.lab.phone import CallFailed, Phone, PhoneCall
from telephony.sip.digest import DigestServer, parse_challenge
from telephony.sip.message import Request
from telephony.sip.parser import parse_message
from telephony.switch.registrar import Registrar
from telephony.transport.base import Address

from .switch_process import SwitchProcess

if TYPE_CHECKING:
    from .pyvoip_phone import PyVoipPhone

pytestmark = [pytest.mark.interop, pytest.mark.timeout(60)]

RATE = 8000
JOHN_TONE = 600.0  # what the scripted phone plays
PYVOIP_TONE = 1400.0  # what pyVoIP plays; neither is a harmonic of the other
TALK_SECONDS = 3.0
MIN_TONE_SECONDS = 2.0  # of TALK_SECONDS: allows for call set-up and teardown edges


def require_module(name: str) -> None:
    """As conftest.require for tools: a missing pyVoIP fails in CI, skips elsewhere."""
    if importlib.util.find_spec(name) is not None:
        return
    message = f"missing Python package {name}: pip install -e '.[dev]'"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


PyVoipFactory = Callable[..., "PyVoipPhone"]


@pytest.fixture
async def pyvoip(switch: SwitchProcess) -> AsyncIterator[PyVoipFactory]:
    """``pyvoip(user, password, play=b"")`` makes a pyVoIP phone on free ports;
    every one is stopped after the test and must leave no thread behind (its
    threads are non-daemon: one left running would hang the test process)."""
    require_module("pyVoIP")
    from .pyvoip_phone import PyVoipPhone, leftover_threads

    made: list[PyVoipPhone] = []

    def make(user: str, password: str, *, play: bytes = b"") -> PyVoipPhone:
        phone = PyVoipPhone(user, password, switch.sip_port, play=play)
        made.append(phone)
        return phone

    yield make
    for phone in made:
        await asyncio.to_thread(phone.stop)
    assert not leftover_threads(), f"pyVoIP threads still running: {leftover_threads()}"


@pytest.fixture
async def john(switch: SwitchProcess) -> AsyncIterator[Phone]:
    """A scripted lab phone on our own stack, registered as john."""
    phone = Phone("john", "john", Address("udp", "127.0.0.1", switch.sip_port))
    await phone.start()
    response = await phone.register()
    assert response.status == 200, response
    yield phone
    await phone.stop()


def tone(freq: float, seconds: float, level: float = 8000.0) -> npt.NDArray[np.int16]:
    t = np.arange(int(seconds * RATE)) / RATE
    return (level * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def tone_seconds(samples: npt.NDArray[np.float64], freq: float) -> float:
    return sum(end - start for start, end in detect_tone(samples, RATE, freq, 0.2))


async def registered(phone: PyVoipPhone) -> None:
    from pyVoIP.VoIP import PhoneStatus

    await asyncio.to_thread(phone.start)
    status = await asyncio.to_thread(
        phone.wait_status, PhoneStatus.REGISTERED, PhoneStatus.FAILED, within=10
    )
    assert status is PhoneStatus.REGISTERED, f"pyVoIP {phone.user}: {status}"


async def call_pyvoip(john: Phone, phone: PyVoipPhone) -> PhoneCall:
    """john calls the pyVoIP phone through the switch and plays his tone."""
    call = await john.call(phone.user, timeout=10)
    call.media.play(tone(JOHN_TONE, 30.0))
    return call


# --- registration ---


@pytest.mark.parametrize(("password", "status"), [("customer", 200), ("wrong", 401)])
def test_pyvoip_register_bytes_against_the_registrar(password: str, status: int) -> None:
    """pyVoIP's own REGISTER generators against our Registrar, no sockets: the
    exact bytes 1.6.8 sends, and what it makes of our 401."""
    require_module("pyVoIP")
    # pyVoIP.SIP imported first is a circular import in 1.6.8; pyVoIP.VoIP first is not.
    import pyVoIP.VoIP  # noqa: F401
    from pyVoIP.SIP import SIPClient, SIPMessage

    registrar = Registrar(
        "qconnect", {"customer": "customer"}.get, DigestServer("qconnect", b"k" * 32)
    )
    # The message generators never touch `phone`; no socket is opened before start().
    client = SIPClient(
        "127.0.0.1",
        5060,
        "customer",
        password,
        phone=None,  # type: ignore[arg-type]
        myIP="127.0.0.1",
        myPort=5070,
    )
    source = ("udp", "127.0.0.1", 5070)
    first = parse_message(client.gen_first_response().encode())
    assert isinstance(first, Request)
    challenge = registrar.handle(first, source, now=1.0)
    assert challenge.status == 401
    # pyVoIP keeps only the first WWW-Authenticate and always answers MD5, so
    # MD5 is all it is offered (registrar.legacy_md5_only).
    offered = [
        parse_challenge(v).param("algorithm") for v in challenge.headers.lines("WWW-Authenticate")
    ]
    assert offered == ["MD5"]
    second = parse_message(client.gen_register(SIPMessage(challenge.to_bytes())).encode())
    assert isinstance(second, Request)
    # Its digest uri is `sip:127.0.0.1;transport=UDP` for Request-URI
    # `sip:127.0.0.1`: the same URI by RFC 3261 19.1.4.
    assert 'uri="sip:127.0.0.1;transport=UDP"' in (second.headers.get("Authorization") or "")
    assert str(second.uri) == "sip:127.0.0.1"
    assert registrar.handle(second, source, now=2.0).status == status
    assert len(registrar.lookup("customer", 2.0)) == (1 if status == 200 else 0)


async def test_pyvoip_registers_and_receives_calls(pyvoip: PyVoipFactory, john: Phone) -> None:
    customer = pyvoip("customer", "customer")
    await registered(customer)
    # The binding is live: a call to `customer` reaches pyVoIP, which answers.
    call = await call_pyvoip(john, customer)
    answered = await asyncio.to_thread(customer.wait_answered, 5)
    assert answered.call.request.headers["To"]["number"] == "customer"
    await call.hangup()


async def test_pyvoip_refused_with_wrong_password(pyvoip: PyVoipFactory, john: Phone) -> None:
    from pyVoIP.VoIP import PhoneStatus

    customer = pyvoip("customer", "not-the-password")
    # pyVoIP 1.6.8 does not raise: each 401 to its authorised REGISTER is an
    # InvalidAccountInfoError it catches and retries; after
    # REGISTER_FAILURE_THRESHOLD (3) of them it stops itself as FAILED.
    await asyncio.to_thread(customer.start)
    status = await asyncio.to_thread(
        customer.wait_status, PhoneStatus.REGISTERED, PhoneStatus.FAILED, within=10
    )
    assert status is PhoneStatus.FAILED
    # And the switch holds no binding for customer: a call to it is refused.
    with pytest.raises(CallFailed) as refused:
        await john.call("customer", timeout=5)
    assert refused.value.status == 480


# --- a call with audio both ways ---


@pytest.mark.parametrize("hung_up_by", ["john", "pyvoip"])
async def test_call_through_switch_two_way_audio(
    pyvoip: PyVoipFactory, john: Phone, hung_up_by: str
) -> None:
    from .pyvoip_phone import u8_to_float, u8_tone

    customer = pyvoip("customer", "customer", play=u8_tone(PYVOIP_TONE, 30.0))
    await registered(customer)
    call = await call_pyvoip(john, customer)
    answered = await asyncio.to_thread(customer.wait_answered, 5)
    await asyncio.sleep(TALK_SECONDS)

    if hung_up_by == "john":
        await call.hangup()
        assert await asyncio.to_thread(answered.ended.wait, 5), "pyVoIP's call did not end"
        assert answered.state.name == "ENDED"
    else:
        await asyncio.to_thread(answered.hangup)
        assert await call.wait_ended(5) == "remote hangup"
        assert await asyncio.to_thread(answered.ended.wait, 5)

    john_heard = call.heard().astype(np.float64) / 32768.0
    pyvoip_heard = u8_to_float(answered.heard)
    evidence = {
        "john hears pyVoIP": tone_seconds(john_heard, PYVOIP_TONE),
        "john hears himself": tone_seconds(john_heard, JOHN_TONE),
        "pyVoIP hears john": tone_seconds(pyvoip_heard, JOHN_TONE),
        "pyVoIP hears itself": tone_seconds(pyvoip_heard, PYVOIP_TONE),
    }
    print(f"tone seconds over a {TALK_SECONDS}s call: {evidence}")
    assert evidence["john hears pyVoIP"] >= MIN_TONE_SECONDS, evidence
    assert evidence["pyVoIP hears john"] >= MIN_TONE_SECONDS, evidence
    # Each side hears the other, not an echo of itself.
    assert evidence["john hears himself"] == 0.0, evidence
    assert evidence["pyVoIP hears itself"] == 0.0, evidence
