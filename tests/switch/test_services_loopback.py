"""What phones hear from the switch's own media: a test line and a conference room.

Assertions are made on the phones' recordings (what they heard, when), by matched filtering
against the shipped WAVs and by tone detection.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

from media.analysis import detect_tone, load_wav, locate
from media.prompts import prompt_path
from telephony.center.config import (
    ConferenceService,
    InstanceConfig,
    PlaybackService,
    PromptStep,
    SilenceStep,
    demo_lab,
)
from telephony.lab.phone import CallState, Phone
from telephony.switch.server import Switch, SwitchSettings
from telephony.transport.base import Address

RATE = 8000
TOLERANCE = 0.060  # seconds: "found at the expected time (±60 ms)"


def lab() -> InstanceConfig:
    services = {
        "*601": PlaybackService(
            type="playback",
            play=[
                "Welcome",
                SilenceStep(silence=0.5),
                "Beep",
                SilenceStep(silence=0.5),
                PromptStep(prompt="Hold music", seconds=2.0),
            ],
        ),
        "*700": ConferenceService(type="conference"),
    }
    return demo_lab().model_copy(update={"services": services})


@pytest.fixture
async def switch(tmp_path: Path) -> AsyncIterator[Switch]:
    base = 40000 + random.randrange(0, 200) * 100
    settings = SwitchSettings(sip_port=0, rtp_ports=(base, base + 99), data_dir=tmp_path)
    sw = Switch(settings, lab())
    await sw.start()
    yield sw
    await sw.stop()


async def phone(sw: Switch, user: str) -> Phone:
    p = Phone(user, user, Address("udp", "127.0.0.1", sw.endpoint.port))
    await p.start()
    assert (await p.register()).status == 200
    return p


def reference(name: str) -> np.ndarray:
    samples, rate = load_wav(prompt_path(name))
    assert rate == RATE
    return samples


def tone(freq: float, seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (6000 * np.sin(2 * np.pi * freq * t)).astype(np.int16)


async def test_test_line_plays_prompt_beep_and_music_on_time(switch: Switch) -> None:
    john = await phone(switch, "john")
    call = await john.call("*601")
    assert call.state is CallState.ESTABLISHED
    assert await call.wait_ended(20) == "remote hangup"
    heard = call.heard().astype(np.float64) / 32768.0
    welcome, beep, music = reference("Welcome"), reference("beep"), reference("hold_music")

    found_welcome = locate(welcome, heard, RATE)
    assert found_welcome.score > 0.9, found_welcome
    beep_at = found_welcome.offset_s + len(welcome) / RATE + 0.5
    found_beep = locate(beep, heard, RATE)
    assert found_beep.score > 0.9, found_beep
    assert abs(found_beep.offset_s - beep_at) <= TOLERANCE, (found_beep, beep_at)
    music_at = found_beep.offset_s + len(beep) / RATE + 0.5
    found_music = locate(music[: 2 * RATE], heard, RATE)
    assert found_music.score > 0.8, found_music
    assert abs(found_music.offset_s - music_at) <= TOLERANCE, (found_music, music_at)
    await john.stop()


async def test_three_party_conference_each_hears_exactly_the_other_two(switch: Switch) -> None:
    freqs = {"john": 500.0, "maria": 900.0, "customer": 1300.0}
    phones = {user: await phone(switch, user) for user in freqs}
    calls = {user: await p.call("*700") for user, p in phones.items()}
    for user, call in calls.items():
        call.media.play(tone(freqs[user], 4.0))
    await asyncio.sleep(2.5)
    for user, call in calls.items():
        heard = call.heard().astype(np.float64) / 32768.0
        last = heard[-RATE:]  # the last second: everyone has joined and is playing
        present = {f for f in freqs.values() if detect_tone(last, RATE, f, min_duration=0.5)}
        others = {f for u, f in freqs.items() if u != user}
        assert present == others, (user, present)
    for call in calls.values():
        await call.hangup()
    for p in phones.values():
        await p.stop()


async def test_every_leg_is_recorded_heard_left_said_right(switch: Switch, tmp_path: Path) -> None:
    john = await phone(switch, "john")
    call = await john.call("*700")
    call.media.play(tone(700, 2.0))
    await asyncio.sleep(1.5)
    await call.hangup()
    await asyncio.sleep(0.2)
    recordings = sorted((tmp_path / "recordings").glob("*.wav"))
    assert len(recordings) == 1 and "john" in recordings[0].name
    said, _ = load_wav(recordings[0], channel=1)
    heard, _ = load_wav(recordings[0], channel=0)
    assert detect_tone(said, RATE, 700, min_duration=0.5)
    assert not detect_tone(heard, RATE, 700, min_duration=0.1)  # alone in the room: silence
    await john.stop()
