"""Shared helpers for contact-center call-flow tests with scripted phones over loopback."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import numpy as np

from media.analysis import detect_tone, load_wav, locate
from media.prompts import prompt_path
from telephony.center.config import InstanceConfig, demo_lab
from telephony.lab.phone import Phone, PhoneCall
from telephony.switch.server import Switch, SwitchSettings
from telephony.transport.base import Address

RATE = 8000


async def running_switch(
    tmp_path: Path, config: InstanceConfig | None = None
) -> AsyncIterator[Switch]:
    base = 30000 + random.randrange(0, 300) * 100
    config = config or demo_lab().model_copy(update={"ring_timeout": 3.0})
    sw = Switch(SwitchSettings(sip_port=0, rtp_ports=(base, base + 99), data_dir=tmp_path), config)
    await sw.start()
    yield sw
    await sw.stop()


async def phone(sw: Switch, user: str, **kw: Any) -> Phone:
    p = Phone(user, user, Address("udp", "127.0.0.1", sw.endpoint.port), **kw)
    await p.start()
    assert (await p.register()).status == 200
    return p


def ref(name: str) -> np.ndarray:
    return load_wav(prompt_path(name))[0]


def tone(freq: float, seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (6000 * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def heard(call: PhoneCall, since: float | None = None) -> np.ndarray:
    """What the phone heard, as floats; `since` = seconds into the recording."""
    samples = call.heard().astype(np.float64) / 32768.0
    return samples if since is None else samples[int(since * RATE) :]


def seconds_heard(call: PhoneCall) -> float:
    return len(call.heard()) / RATE


def has_tone(samples: np.ndarray, freq: float, min_duration: float = 0.5) -> bool:
    return bool(detect_tone(samples, RATE, freq, min_duration=min_duration))


def found(
    name: str, samples: np.ndarray, threshold: float = 0.9, seconds: float | None = None
) -> bool:
    reference = ref(name)
    if seconds is not None:
        reference = reference[: int(seconds * RATE)]
    return locate(reference, samples, RATE).score >= threshold


async def wait_for(predicate: Callable[[], bool], within: float, what: str) -> None:
    for _ in range(int(within / 0.05)):
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def banners(events: list[dict[str, Any]], agent: str, party: str | None = None) -> list[str]:
    return [
        e["banner"]
        for e in events
        if e["type"] == "banner"
        and e.get("agent") == agent
        and (party is None or e.get("party") == party)
    ]


def contact_of(events: list[dict[str, Any]], agent: str) -> str:
    """The newest contact offered to `agent`."""
    return [e["contact"] for e in events if e["type"] == "offerCreated" and e["agent"] == agent][-1]
