"""Real softphones against `qconnect serve` (issue 2, "Must show"): linphonec
and baresip register with the right password and are refused with a wrong
one; a baresip phone calls a linphonec phone through the switch and each
side's recording holds the speech the other side played."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from media.analysis import load_wav, two_way

from .audio import SpeechWav
from .clients import Baresip, Linphone
from .conftest import require
from .switch_process import SwitchProcess

pytestmark = [pytest.mark.interop, pytest.mark.timeout(60)]

TALK_SECONDS = 8.5  # a whole sentence after the first, see test_clients_direct


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
