"""Fixtures for tests with real clients: tool checks, and phones that are
always stopped (killed if need be) with their logs printed when a test fails."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from .audio import SpeechWav, speech_wav
from .clients import Baresip, Linphone
from .switch_process import SwitchProcess

P = TypeVar("P", Baresip, Linphone)

SENTENCE_A = "The quick brown fox jumps over the lazy dog near the river bank."
SENTENCE_B = "Seven silver spoons were found beside the old wooden table."


def require(*tools: str) -> None:
    """Real-client tests never skip silently in CI (issue 2): a missing tool
    fails there, and skips on a developer machine."""
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if not missing:
        return
    message = f"missing {', '.join(missing)}: run scripts/install-system-deps.sh"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


@pytest.fixture
async def phones(request: pytest.FixtureRequest) -> AsyncIterator[Callable[[P], P]]:
    """``phones(Baresip(...))`` registers a phone for teardown; on failure the
    tail of every phone's logs is printed."""
    started: list[Baresip | Linphone] = []

    def add(phone: P) -> P:
        started.append(phone)
        return phone

    yield add
    for phone in reversed(started):
        await phone.stop()
    failed = any(
        getattr(getattr(request.node, f"rep_{when}", None), "failed", False)
        for when in ("setup", "call")
    )
    if failed:
        for phone in started:
            print(f"===== {phone.kind} {phone.name} in {phone.dir}")
            print(f"events: {[(e.name, e.detail[:80], round(e.at, 2)) for e in phone.events]}")
            print(phone.log_tail(80))


@pytest.fixture(scope="module")
def voices(tmp_path_factory: pytest.TempPathFactory) -> tuple[SpeechWav, SpeechWav]:
    """Two different sentences, looped for a minute: what each side plays."""
    require("espeak-ng", "sox")
    folder: Path = tmp_path_factory.mktemp("voices")
    return (
        speech_wav(SENTENCE_A, folder / "a.wav", voice="en"),
        speech_wav(SENTENCE_B, folder / "b.wav", voice="en+f3"),
    )


@pytest.fixture
def switch(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[SwitchProcess]:
    """`qconnect serve` with the built-in demo lab on free ports; its log is printed when
    the test fails (or always with QCONNECT_SHOW_SWITCH_LOG=1)."""
    process = SwitchProcess(tmp_path)
    process.start()
    yield process
    process.stop()
    report = getattr(request.node, "rep_call", None)
    if (report is not None and report.failed) or os.environ.get("QCONNECT_SHOW_SWITCH_LOG"):
        print(process.log_tail(200))
