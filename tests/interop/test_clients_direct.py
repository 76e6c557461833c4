"""The client drivers proven without the switch: baresip and linphonec call
each other by direct IP URIs and each recording holds the other's speech."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from media.analysis import load_wav, locate

from .audio import SpeechWav
from .clients import Baresip, Linphone
from .conftest import require

pytestmark = [pytest.mark.interop, pytest.mark.timeout(60)]

# Long enough that every recording holds a whole sentence (~3.5 s + pause)
# after the first, which linphonec garbles while its jitter buffer settles.
TALK_SECONDS = 8.5


def assert_heard(recording: Path, said: SpeechWav, who: str) -> None:
    heard, rate = load_wav(recording)
    reference, ref_rate = said.reference()
    assert rate == ref_rate == 8000, f"{who}: {recording} at {rate} Hz"
    assert len(heard) / rate > said.clip_seconds, f"{who}: only {len(heard) / rate:.2f} s recorded"
    match = locate(reference, heard, rate)
    assert match.score > 0.5, f"{who} did not hear the other side: {match} in {recording}"


async def test_baresip_calls_linphone_directly(
    tmp_path: Path, phones: Callable[[Any], Any], voices: tuple[SpeechWav, SpeechWav]
) -> None:
    require("baresip", "linphonec")
    john_says, maria_says = voices
    maria = phones(Linphone(tmp_path, "maria", play=maria_says.looped, auto_answer=True))
    john = phones(Baresip(tmp_path, "john", source=john_says.looped))
    await maria.start()
    await john.start()

    await john.dial(maria.uri)
    await maria.wait_event("incoming")
    await john.wait_established()
    await maria.wait_established()
    await asyncio.sleep(TALK_SECONDS)
    await john.hangup()
    await john.wait_closed()
    await maria.wait_closed()

    assert_heard(john.heard, maria_says, "baresip john")
    assert_heard(maria.heard, john_says, "linphonec maria")
    # What baresip sent is its source, bit for bit up to G.711 coding.
    sent, rate = load_wav(john.sent)
    assert locate(load_wav(john_says.clip)[0], sent, rate).score > 0.95


async def test_linphone_calls_baresip_which_answers(
    tmp_path: Path, phones: Callable[[Any], Any], voices: tuple[SpeechWav, SpeechWav]
) -> None:
    require("baresip", "linphonec")
    maria_says, john_says = voices
    john = phones(Baresip(tmp_path, "john", source=john_says.looped, answermode="manual"))
    maria = phones(Linphone(tmp_path, "maria", play=maria_says.looped))
    await john.start()
    await maria.start()

    await maria.call(john.uri)
    await john.wait_event("CALL_INCOMING")
    await maria.wait_event("ringing")
    await john.accept()
    await maria.wait_established()
    await john.wait_established()
    await asyncio.sleep(TALK_SECONDS)
    await maria.terminate()
    await maria.wait_closed()
    await john.wait_closed()

    assert_heard(john.heard, maria_says, "baresip john")
    assert_heard(maria.heard, john_says, "linphonec maria")


async def test_dtmf_and_hold_both_ways(
    tmp_path: Path, phones: Callable[[Any], Any], voices: tuple[SpeechWav, SpeechWav]
) -> None:
    require("baresip", "linphonec")
    john_says, maria_says = voices
    maria = phones(Linphone(tmp_path, "maria", play=maria_says.looped, auto_answer=True))
    john = phones(Baresip(tmp_path, "john", source=john_says.looped))
    await maria.start()
    await john.start()
    await john.dial(maria.uri)
    await john.wait_established()
    await maria.wait_established()

    # RFC 4733 events each way, as the drivers report them.
    await john.send_dtmf("1")
    assert (await maria.wait_event("dtmf")).detail == "1"
    await maria.send_dtmf("#")
    assert (await john.wait_event("CALL_DTMF_START")).detail == "#"

    # Each phone's own hold button: a re-INVITE the other side sees.
    await maria.hold()
    await maria.wait_event("paused")
    await john.wait_event("CALL_REMOTE_SDP")
    await maria.resume()
    await maria.wait_event("resuming")
    await maria.wait_established()
    await john.hold()
    await maria.wait_event("paused_by_remote")
    await john.resume()
    await maria.wait_established()

    await maria.terminate()
    await john.wait_closed()
    await maria.wait_closed()
