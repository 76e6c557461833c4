"""Synthetic recordings for the lab tests: shipped WAVs and tones placed at known
offsets, sent through a G.711 µ-law round trip like a real call leg."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from media.analysis import load_wav
from media.g711 import ulaw_decode, ulaw_encode
from media.prompts import prompt_path
from media.tones import ToneSpec, tone_samples
from telephony.lab.assertions import Recording

RATE = 8000
Floats = npt.NDArray[np.float64]


def clip(name: str) -> Floats:
    """A shipped prompt (or ``beep`` / ``hold_music``) as float samples."""
    samples, rate = load_wav(prompt_path(name))
    assert rate == RATE
    return samples.astype(np.float64)


def tone(freq: float, seconds: float, level_dbfs: float = -13.0) -> Floats:
    pcm = tone_samples(ToneSpec((freq,), level_dbfs=level_dbfs), 0, int(seconds * RATE))
    return pcm.astype(np.float64) / 32768.0


def music(seconds: float, offset: float = 0.0) -> Floats:
    """Hold music as a looping player plays it, starting ``offset`` s into the loop."""
    loop = clip("hold_music")
    start = int(offset * RATE) % len(loop)
    reps = int(np.ceil((start + seconds * RATE) / len(loop))) + 1
    return np.tile(loop, reps)[start : start + int(seconds * RATE)]


def mix(total: float, items: Sequence[tuple[float, Floats]], noise_db: float = -60.0) -> Floats:
    """``total`` seconds with each (start, samples) added in, a little noise, and a
    µ-law round trip (what a phone records from a G.711 leg)."""
    out = np.zeros(int(total * RATE))
    for start, samples in items:
        i = int(round(start * RATE))
        n = max(0, min(len(samples), len(out) - i))
        out[i : i + n] += samples[:n]
    rng = np.random.default_rng(7)
    out += rng.normal(0.0, 10 ** (noise_db / 20), len(out))
    pcm = np.clip(np.rint(out * 32767), -32768, 32767).astype(np.int16)
    return ulaw_decode(ulaw_encode(pcm)).astype(np.float64) / 32768.0


def recording(
    party: str, total: float, items: Sequence[tuple[float, Floats]], start: float = 0.0
) -> Recording:
    """A recording whose sample 0 is heard at run time ``start``; item times are run times."""
    return Recording(party, mix(total, [(t - start, s) for t, s in items]), start=start)
