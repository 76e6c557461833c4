"""Turn the SSML of a prompt into what a player needs: speech and pauses.

Amazon Connect's Default agent hold speaks ``<speak>You are on hold <break
time="10s"/></speak>`` in a loop; the ``<break>`` is what makes it repeat
"every 10 s". Only ``<break>`` changes timing; the text of every other
element (``prosody``, ``emphasis``, ``say-as`` …) is spoken as plain text.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass

# SSML <break strength=…> durations, as Amazon Polly documents them.
_STRENGTH_SECONDS = {
    "none": 0.0,
    "x-weak": 0.0,
    "weak": 0.25,
    "medium": 0.5,
    "strong": 0.75,
    "x-strong": 1.0,
}
_TIME_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s)\s*$")


class SsmlError(ValueError):
    """The SSML is not well-formed."""


@dataclass(frozen=True, slots=True)
class Speech:
    text: str


@dataclass(frozen=True, slots=True)
class Pause:
    seconds: float


def _break_seconds(element: ET.Element) -> float:
    time = element.get("time")
    if time is not None:
        match = _TIME_RE.match(time)
        if match is None:
            raise SsmlError(f"bad <break time={time!r}>")
        value = float(match.group(1))
        return value / 1000.0 if match.group(2) == "ms" else value
    return _STRENGTH_SECONDS.get(element.get("strength", "medium"), 0.5)


def ssml_segments(ssml: str) -> tuple[Speech | Pause, ...]:
    """Speech and pauses in order; adjacent text is joined, whitespace collapsed."""
    try:
        root = ET.fromstring(ssml)
    except ET.ParseError as exc:
        raise SsmlError(f"SSML is not well-formed XML: {exc}") from None
    out: list[Speech | Pause] = []
    words: list[str] = []

    def flush() -> None:
        text = " ".join("".join(words).split())
        words.clear()
        if text:
            out.append(Speech(text))

    def walk(element: ET.Element) -> None:
        if element.tag == "break":
            flush()
            seconds = _break_seconds(element)
            if seconds > 0:
                out.append(Pause(seconds))
        elif element.text:
            words.append(element.text)
        for child in element:
            walk(child)
            if child.tail:
                words.append(child.tail)

    walk(root)
    flush()
    return tuple(out)
