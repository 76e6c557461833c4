"""Synthesised telephony audio: call-progress tones, the beep and hold music.

Everything here is pure numpy at 8 kHz, mono, int16, computed from sample
indexes alone (no randomness, no clock), so the same parameters give the same
samples and :func:`write_wav` gives the same bytes every time.  Keeping every
partial below 4 kHz means nothing aliases at 8 kHz, and 300-3400 Hz is the
band a G.711 phone reproduces anyway (ITU-T G.712).
"""

from __future__ import annotations

import wave
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

__all__ = [
    "SAMPLE_RATE",
    "BUSY_US",
    "DIAL_TONE_US",
    "RINGBACK_US",
    "ToneSpec",
    "beep",
    "beep_samples",
    "hold_music",
    "hold_music_samples",
    "raised_cosine_ramp",
    "tone_samples",
    "write_wav",
]

SAMPLE_RATE = 8000
_FULL_SCALE = 32767.0

Pcm = npt.NDArray[np.int16]


@dataclass(frozen=True, slots=True)
class ToneSpec:
    """A call-progress tone: summed sines gated by an on/off cadence.

    ``cadence`` alternates on and off durations in seconds and repeats
    (``(2.0, 4.0)`` is North American ringback); empty means continuous.
    ``level_dbfs`` is the peak of the summed waveform.
    """

    frequencies: tuple[float, ...]
    cadence: tuple[float, ...] = ()
    level_dbfs: float = -13.0
    ramp_ms: float = 5.0

    def __post_init__(self) -> None:
        if not self.frequencies:
            raise ValueError("a tone needs at least one frequency")
        if any(not 0 < f < SAMPLE_RATE / 2 for f in self.frequencies):
            raise ValueError(f"tone frequencies must lie in (0, 4000) Hz: {self.frequencies}")
        if any(d < 0 for d in self.cadence) or (self.cadence and sum(self.cadence) <= 0):
            raise ValueError(f"cadence durations must be non-negative: {self.cadence}")
        if self.level_dbfs > 0:
            raise ValueError(f"tone level must be <= 0 dBFS, got {self.level_dbfs}")


# ITU-T E.180 Supplement 2 (North America).
DIAL_TONE_US = ToneSpec((350.0, 440.0))
RINGBACK_US = ToneSpec((440.0, 480.0), cadence=(2.0, 4.0))
BUSY_US = ToneSpec((480.0, 620.0), cadence=(0.5, 0.5))


def raised_cosine_ramp(n: int) -> npt.NDArray[np.float64]:
    """A 0 -> 1 raised-cosine (Hann half) ramp of ``n`` samples, excluding both ends' clicks."""
    if n <= 0:
        return np.ones(0)
    return 0.5 - 0.5 * np.cos(np.pi * (np.arange(n) + 0.5) / n)


def tone_samples(spec: ToneSpec, start: int, count: int, sample_rate: int = SAMPLE_RATE) -> Pcm:
    """Samples ``start .. start+count`` of ``spec``, phase-continuous across calls.

    A player asks for one 20 ms frame at a time; computing from the absolute
    sample index keeps the sines and the cadence continuous across frames.
    """
    n = np.arange(start, start + count, dtype=np.float64)
    amplitude = 10 ** (spec.level_dbfs / 20) * _FULL_SCALE / len(spec.frequencies)
    wave_ = np.zeros(count)
    for f in spec.frequencies:
        wave_ += np.sin(2 * np.pi * f * n / sample_rate)
    gate = _cadence_gate(spec, n, sample_rate)
    return np.rint(wave_ * gate * amplitude).astype(np.int16)


def _cadence_gate(
    spec: ToneSpec, n: npt.NDArray[np.float64], sample_rate: int
) -> npt.NDArray[np.float64]:
    if not spec.cadence:
        return np.ones_like(n)
    bounds = np.concatenate(([0.0], np.cumsum(spec.cadence))) * sample_rate
    cycle = bounds[-1]
    t = np.mod(n, cycle)
    segment = np.searchsorted(bounds, t, side="right") - 1
    on = segment % 2 == 0
    # Raised-cosine edges so the cadence does not click (each edge a few ms).
    ramp = max(spec.ramp_ms * sample_rate / 1000, 1.0)
    since = t - bounds[segment]
    until = bounds[segment + 1] - t
    edge = np.clip(np.minimum(since + 0.5, until - 0.5) / ramp, 0.0, 1.0)
    return np.where(on, 0.5 - 0.5 * np.cos(np.pi * edge), 0.0)


def beep_samples(
    freq: float = 1000.0,
    ms: float = 200.0,
    level_dbfs: float = -6.0,
    ramp_ms: float = 5.0,
    sample_rate: int = SAMPLE_RATE,
) -> Pcm:
    """A single sine burst with raised-cosine attack and release (no clicks)."""
    if not 0 < freq < sample_rate / 2:
        raise ValueError(f"beep frequency must lie in (0, {sample_rate // 2}) Hz, got {freq}")
    if ms <= 0:
        raise ValueError(f"beep length must be positive, got {ms} ms")
    count = round(ms * sample_rate / 1000)
    n = np.arange(count)
    signal = np.sin(2 * np.pi * freq * n / sample_rate) * 10 ** (level_dbfs / 20) * _FULL_SCALE
    ramp = raised_cosine_ramp(min(round(ramp_ms * sample_rate / 1000), count // 2))
    envelope = np.ones(count)
    envelope[: len(ramp)] = ramp
    envelope[count - len(ramp) :] = ramp[::-1]
    return np.rint(signal * envelope).astype(np.int16)


def beep(
    path: str | Path,
    freq: float = 1000.0,
    ms: float = 200.0,
    level_dbfs: float = -6.0,
) -> Path:
    """Write the beep WAV (8 kHz mono 16-bit) and return its path."""
    return write_wav(path, beep_samples(freq, ms, level_dbfs))


# -- hold music ----------------------------------------------------------------

# I - vi - IV - V in C major, twice, with the melody changing the second time.
# Each chord: (bass MIDI note, pad notes, arpeggio notes); 2.5 s per chord.
_PROGRESSION: tuple[tuple[int, tuple[int, ...], tuple[int, ...]], ...] = (
    (48, (60, 64, 67), (72, 76, 79, 76)),  # C
    (45, (57, 60, 64), (69, 72, 76, 72)),  # Am
    (41, (57, 60, 65), (69, 72, 77, 72)),  # F
    (43, (55, 59, 62), (67, 71, 74, 79)),  # G
    (48, (60, 64, 67), (76, 79, 84, 79)),  # C
    (45, (57, 60, 64), (76, 72, 69, 72)),  # Am
    (41, (57, 60, 65), (77, 72, 69, 72)),  # F
    (43, (55, 59, 62), (74, 71, 67, 71)),  # G, resolving back to C at the loop
)


def _midi_hz(note: int) -> float:
    return 440.0 * 2 ** ((note - 69) / 12)


def _add_wrapped(
    buffer: npt.NDArray[np.float64], start: int, signal: npt.NDArray[np.float64]
) -> None:
    """Mix ``signal`` into the circular ``buffer`` so tails past the end wrap to the start.

    Rendering the loop circularly is what makes it seamless: the release of
    the last chord sounds under the first, exactly as it will when looped.
    """
    length = len(buffer)
    idx = (start + np.arange(len(signal))) % length
    np.add.at(buffer, idx, signal)


def _voice(
    freq: float,
    count: int,
    harmonics: Sequence[float],
    attack: float,
    decay: float,
    sample_rate: int,
) -> npt.NDArray[np.float64]:
    """One note: a few harmonics (timbre) under an attack + exponential-decay envelope."""
    t = np.arange(count) / sample_rate
    tone = np.zeros(count)
    for k, weight in enumerate(harmonics, start=1):
        if freq * k < 0.45 * sample_rate:  # keep partials clear of Nyquist
            tone += weight * np.sin(2 * np.pi * freq * k * t)
    env = np.exp(-t / decay)
    n_attack = max(1, round(attack * sample_rate))
    env[:n_attack] *= raised_cosine_ramp(n_attack)
    # Fade the last 30 ms to zero so a note never ends on a step.
    n_release = min(count, round(0.03 * sample_rate))
    env[count - n_release :] *= raised_cosine_ramp(n_release)[::-1]
    result: npt.NDArray[np.float64] = tone * env
    return result


def hold_music_samples(
    seconds: float = 20.0, level_dbfs: float = -3.0, sample_rate: int = SAMPLE_RATE
) -> Pcm:
    """A gentle I-vi-IV-V loop: bass, a soft pad and an arpeggio, seamlessly loopable.

    The progression is stretched to ``seconds`` (rounded to whole 20 ms
    frames so a looping player lands on a frame boundary) and rendered
    circularly; the result is peak-normalised to ``level_dbfs``.
    """
    if seconds <= 0:
        raise ValueError(f"hold music length must be positive, got {seconds}")
    frame = sample_rate // 50
    length = max(frame, round(seconds * sample_rate / frame) * frame)
    out = np.zeros(length)
    chord_len = length / len(_PROGRESSION)
    for i, (bass, pad, arpeggio) in enumerate(_PROGRESSION):
        start = round(i * chord_len)
        span = round(chord_len)
        # Bass: warm, slow decay, rings slightly into the next chord.
        out_note = _voice(
            _midi_hz(bass), round(span * 1.15), (1.0, 0.5, 0.25), 0.02, 1.4, sample_rate
        )
        _add_wrapped(out, start, 0.55 * out_note)
        # Pad: soft attack, long sustain, overlaps into the next chord.
        for note in pad:
            voice = _voice(
                _midi_hz(note), round(span * 1.2), (1.0, 0.3, 0.12), 0.25, 3.0, sample_rate
            )
            _add_wrapped(out, start, 0.18 * voice)
        # Arpeggio: plucked notes, four per chord.
        step = span / len(arpeggio)
        for j, note in enumerate(arpeggio):
            pluck = _voice(
                _midi_hz(note), round(step * 1.8), (1.0, 0.45, 0.2, 0.1), 0.005, 0.35, sample_rate
            )
            _add_wrapped(out, start + round(j * step), 0.32 * pluck)
    peak = float(np.max(np.abs(out)))
    scale = 10 ** (level_dbfs / 20) * _FULL_SCALE / peak
    return np.rint(out * scale).astype(np.int16)


def hold_music(path: str | Path, seconds: float = 20.0, level_dbfs: float = -3.0) -> Path:
    """Write the hold-music loop WAV (8 kHz mono 16-bit) and return its path."""
    return write_wav(path, hold_music_samples(seconds, level_dbfs))


def write_wav(path: str | Path, samples: npt.ArrayLike, sample_rate: int = SAMPLE_RATE) -> Path:
    """Write mono int16 ``samples`` as a canonical 44-byte-header WAV (no metadata, no timestamps)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    pcm = np.asarray(samples, dtype="<i2")
    with wave.open(str(target), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(pcm.tobytes())
    return target
