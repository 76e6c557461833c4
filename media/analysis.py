"""Audio analysis for tests and the lab harness: what does a recording *contain*?

Golden-audio assertions never compare WAV bytes (timing, jitter and G.711 make
them differ); they ask questions a listener would:

* is this known prompt in the recording, and when does it start?
  (:func:`locate`, :func:`find_all` — normalised cross-correlation, i.e. a
  matched filter, so the answer does not depend on gain);
* is there a tone of *f* Hz, and from when to when? (:func:`goertzel`,
  :func:`detect_tone`);
* is this stretch speech, music, a tone or silence? (:func:`classify`);
* did each party of a call hear the other? (:func:`two_way`).

Only numpy is used; every function is pure (samples in, numbers out).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, NamedTuple

import numpy as np
import numpy.typing as npt

__all__ = [
    "AnalysisError",
    "Match",
    "Segment",
    "Label",
    "TwoWay",
    "load_wav",
    "locate",
    "find_all",
    "goertzel",
    "detect_tone",
    "classify",
    "two_way",
]

Samples = npt.NDArray[np.float32]
Label = Literal["speech", "music", "silence", "tone"]

# WAVE format tags (RFC 2361 / mmreg.h) this reader understands.
_PCM = 0x0001
_IEEE_FLOAT = 0x0003
_ALAW = 0x0006
_MULAW = 0x0007
_EXTENSIBLE = 0xFFFE


class AnalysisError(ValueError):
    """A WAV cannot be read or an analysis was asked something meaningless."""


@dataclass(frozen=True, slots=True)
class Match:
    """Where a reference starts in a recording (seconds; negative when the
    recording begins part-way through the reference) and how well it matched
    (Pearson correlation over the overlap, in [-1, 1])."""

    offset_s: float
    score: float


class Segment(NamedTuple):
    """A stretch of a recording with one label: (label, start_s, end_s)."""

    label: Label
    start_s: float
    end_s: float


@dataclass(frozen=True, slots=True)
class TwoWay:
    """Evidence of a two-way audio check: what A heard of B and B heard of A."""

    a_heard_b: Match
    b_heard_a: Match
    threshold: float

    @property
    def ok(self) -> bool:
        return self.a_heard_b.score >= self.threshold and self.b_heard_a.score >= self.threshold

    def __bool__(self) -> bool:
        return self.ok


# --------------------------------------------------------------------------- WAV


def load_wav(path: str | Path, channel: int | None = None) -> tuple[Samples, int]:
    """Read a WAV as float32 in [-1, 1] and its sample rate.

    ``channel=None`` averages all channels to mono; ``channel=i`` selects one
    (recorders write stereo with left = heard, right = said). Handles PCM
    8/16/24/32-bit, IEEE float, G.711 µ-law/A-law and WAVE_FORMAT_EXTENSIBLE.
    A data chunk whose size field was never patched (recorder killed mid-call,
    size 0 or 0xFFFFFFFF) is read to the end of the file.
    """
    raw = Path(path).read_bytes()
    if len(raw) < 12 or raw[:4] != b"RIFF" or raw[8:12] != b"WAVE":
        raise AnalysisError(f"{path}: not a RIFF/WAVE file")
    fmt: tuple[int, int, int, int] | None = None
    data: bytes | None = None
    pos = 12
    while pos + 8 <= len(raw):
        chunk_id = raw[pos : pos + 4]
        (size,) = struct.unpack_from("<I", raw, pos + 4)
        body = pos + 8
        if chunk_id == b"fmt ":
            tag, channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", raw, body)
            if tag == _EXTENSIBLE and size >= 40:
                (tag,) = struct.unpack_from("<H", raw, body + 24)
            fmt = (tag, channels, rate, bits)
        elif chunk_id == b"data":
            end = body + size
            if size == 0 or end > len(raw):
                end = len(raw)
            data = raw[body:end]
            break
        pos = body + size + (size & 1)  # chunks are word aligned (RIFF spec)
    if fmt is None or data is None:
        raise AnalysisError(f"{path}: missing fmt or data chunk")
    tag, channels, rate, bits = fmt
    if channels < 1:
        raise AnalysisError(f"{path}: {channels} channels")
    flat = _decode(data, tag, bits, path)
    flat = flat[: len(flat) - len(flat) % channels]
    frames = flat.reshape(-1, channels)
    if channel is None:
        mono = frames.mean(axis=1)
    elif 0 <= channel < channels:
        mono = frames[:, channel]
    else:
        raise AnalysisError(f"{path}: no channel {channel} (has {channels})")
    return np.ascontiguousarray(mono, dtype=np.float32), rate


def _decode(data: bytes, tag: int, bits: int, path: str | Path) -> npt.NDArray[np.float64]:
    if tag == _PCM and bits == 8:
        return (np.frombuffer(data, np.uint8).astype(np.float64) - 128.0) / 128.0
    if tag == _PCM and bits == 16:
        usable = len(data) - len(data) % 2
        return np.frombuffer(data[:usable], "<i2").astype(np.float64) / 32768.0
    if tag == _PCM and bits == 24:
        usable = len(data) - len(data) % 3
        b = np.frombuffer(data[:usable], np.uint8).reshape(-1, 3).astype(np.int32)
        v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        v = np.where(v >= 1 << 23, v - (1 << 24), v)
        return v.astype(np.float64) / float(1 << 23)
    if tag == _PCM and bits == 32:
        usable = len(data) - len(data) % 4
        return np.frombuffer(data[:usable], "<i4").astype(np.float64) / float(1 << 31)
    if tag == _IEEE_FLOAT and bits in (32, 64):
        dtype = "<f4" if bits == 32 else "<f8"
        usable = len(data) - len(data) % (bits // 8)
        return np.frombuffer(data[:usable], dtype).astype(np.float64)
    if tag in (_MULAW, _ALAW) and bits == 8:
        table = _ULAW_TABLE if tag == _MULAW else _ALAW_TABLE
        return table[np.frombuffer(data, np.uint8)]
    raise AnalysisError(f"{path}: unsupported WAV encoding tag={tag:#x} bits={bits}")


def _ulaw_table() -> npt.NDArray[np.float64]:
    # ITU-T G.711 µ-law expansion (bias 0x84, bits inverted on the wire).
    u = ~np.arange(256, dtype=np.int32) & 0xFF
    exponent = (u >> 4) & 0x07
    mantissa = u & 0x0F
    magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84
    return np.where(u & 0x80, -magnitude, magnitude).astype(np.float64) / 32768.0


def _alaw_table() -> npt.NDArray[np.float64]:
    # ITU-T G.711 A-law expansion (even bits inverted on the wire).
    a = np.arange(256, dtype=np.int32) ^ 0x55
    exponent = (a >> 4) & 0x07
    mantissa = a & 0x0F
    magnitude = np.where(
        exponent == 0, (mantissa << 4) + 8, ((mantissa << 4) + 0x108) << (exponent - 1)
    )
    return np.where(a & 0x80, magnitude, -magnitude).astype(np.float64) / 32768.0


_ULAW_TABLE = _ulaw_table()
_ALAW_TABLE = _alaw_table()


# ----------------------------------------------------------- cross-correlation


def _as_f64(x: npt.ArrayLike) -> npt.NDArray[np.float64]:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 1:
        raise AnalysisError(f"expected mono samples, got shape {arr.shape}")
    return arr


def _ncc(
    needle: npt.NDArray[np.float64], haystack: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """Pearson correlation of ``needle`` with every same-length window of
    ``haystack`` (len(haystack) - len(needle) + 1 values), by FFT.

    The window mean is removed exactly (sliding sums), so DC offsets and gain
    do not matter; windows with (almost) no energy score 0 rather than
    amplifying FFT round-off into spurious peaks.
    """
    n, m = len(needle), len(haystack)
    centred = needle - needle.mean()
    needle_norm = float(np.sqrt(np.dot(centred, centred)))
    lags = m - n + 1
    if needle_norm == 0.0:
        return np.zeros(lags)
    size = 1 << int(np.ceil(np.log2(n + m - 1)))
    spectrum = np.fft.rfft(haystack, size) * np.conj(np.fft.rfft(centred, size))
    numerator = np.fft.irfft(spectrum, size)[:lags]
    csum = np.concatenate(([0.0], np.cumsum(haystack)))
    csum2 = np.concatenate(([0.0], np.cumsum(haystack * haystack)))
    window_sum = csum[n:] - csum[:lags]
    window_energy = csum2[n:] - csum2[:lags] - window_sum * window_sum / n
    # -60 dB below the loudest window counts as silence: no correlation there.
    floor = max(float(window_energy.max(initial=0.0)) * 1e-6, 1e-12 * n)
    valid = window_energy > floor
    scores = np.zeros(lags)
    scores[valid] = numerator[valid] / (needle_norm * np.sqrt(window_energy[valid]))
    return np.clip(scores, -1.0, 1.0)


def locate(reference: npt.ArrayLike, recording: npt.ArrayLike, rate: int) -> Match:
    """Where ``reference`` best matches inside ``recording``.

    The shorter signal slides along the longer one, so a prompt can be found
    in a long recording (offset >= 0: the prompt starts ``offset_s`` into the
    recording) and a short recording can be placed inside a long, looped
    source (offset <= 0). The score is the Pearson correlation at the best
    lag: 1.0 for an exact copy at any gain, ~0.99 after a G.711 round trip,
    near 0 for unrelated audio.
    """
    ref, rec = _as_f64(reference), _as_f64(recording)
    if len(ref) == 0 or len(rec) == 0:
        raise AnalysisError("cannot locate with an empty signal")
    if len(ref) <= len(rec):
        scores = _ncc(ref, rec)
        lag = int(np.argmax(scores))
        return Match(offset_s=lag / rate, score=float(scores[lag]))
    scores = _ncc(rec, ref)
    lag = int(np.argmax(scores))
    return Match(offset_s=-lag / rate, score=float(scores[lag]))


def find_all(
    reference: npt.ArrayLike, recording: npt.ArrayLike, rate: int, threshold: float = 0.6
) -> list[Match]:
    """Every occurrence of ``reference`` in ``recording`` scoring at least
    ``threshold``, in time order. Occurrences closer than the reference's
    own length are one occurrence (the best-scoring lag wins)."""
    ref, rec = _as_f64(reference), _as_f64(recording)
    if len(ref) == 0 or len(ref) > len(rec):
        return []
    scores = _ncc(ref, rec)
    work = scores.copy()
    n = len(ref)
    found: list[Match] = []
    while True:
        lag = int(np.argmax(work))
        if work[lag] < threshold:
            break
        found.append(Match(offset_s=lag / rate, score=float(scores[lag])))
        work[max(0, lag - n + 1) : lag + n] = -np.inf
    return sorted(found, key=lambda match: match.offset_s)


# ------------------------------------------------------------------------ tones


def _goertzel_frames(
    frames: npt.NDArray[np.float64], rate: int, freq: float
) -> npt.NDArray[np.complex128]:
    """DFT value at ``freq`` of each row of ``frames`` by the Goertzel
    recurrence (vectorised across rows): X = sum_n x[n] e^{-i w n}."""
    w = 2.0 * np.pi * freq / rate
    coeff = 2.0 * np.cos(w)
    s1 = np.zeros(frames.shape[0])
    s2 = np.zeros(frames.shape[0])
    for column in frames.T:
        s0 = column + coeff * s1 - s2
        s2, s1 = s1, s0
    # y = s[N-1] - e^{-iw} s[N-2] = sum x[n] e^{iw(N-1-n)}; rotate back to n = 0.
    y = s1 - np.exp(-1j * w) * s2
    return np.asarray(y * np.exp(-1j * w * (frames.shape[1] - 1)), dtype=np.complex128)


def goertzel(samples: npt.ArrayLike, rate: int, freq: float) -> float:
    """Power of the ``freq`` Hz component of ``samples``, scaled so that a
    sine of amplitude A (exactly periodic in the block) gives A**2 / 2, the
    same units as mean square."""
    x = _as_f64(samples)
    if len(x) == 0:
        return 0.0
    # Goertzel over fixed-size blocks, recombined with each block's phase, so
    # a long signal costs a short Python loop.
    block = 256
    padded = np.concatenate((x, np.zeros(-len(x) % block)))
    frames = padded.reshape(-1, block)
    partial = _goertzel_frames(frames, rate, freq)
    starts = np.arange(frames.shape[0]) * block
    total = complex(np.sum(partial * np.exp(-2j * np.pi * freq * starts / rate)))
    return 2.0 * abs(total) ** 2 / (len(x) ** 2)


def _frames(x: npt.NDArray[np.float64], size: int, hop: int) -> npt.NDArray[np.float64]:
    if len(x) < size:
        x = np.concatenate((x, np.zeros(size - len(x))))
    count = 1 + (len(x) - size) // hop
    index = np.arange(size)[None, :] + hop * np.arange(count)[:, None]
    frames: npt.NDArray[np.float64] = x[index]
    return frames


def detect_tone(
    samples: npt.ArrayLike,
    rate: int,
    freq: float,
    min_duration: float = 0.1,
    *,
    frame: float = 0.04,
    hop: float = 0.01,
    min_ratio: float = 0.2,
    min_level_db: float = -50.0,
) -> list[tuple[float, float]]:
    """Intervals (start_s, end_s) where a ``freq`` Hz tone is present for at
    least ``min_duration`` seconds.

    A frame holds the tone when that component carries at least ``min_ratio``
    of the frame's power (0.2 keeps two equal tones mixed, as in a 3-party
    conference, each detectable while speech and noise stay well below) and
    is louder than ``min_level_db`` dBFS. A Hann window keeps neighbouring
    tones and speech harmonics from leaking in.
    """
    x = _as_f64(samples)
    if len(x) == 0:
        return []
    size = max(8, int(round(frame * rate)))
    step = max(1, int(round(hop * rate)))
    frames = _frames(x, size, step)
    window = np.hanning(size)
    spectrum = _goertzel_frames(frames * window, rate, freq)
    amplitude = 2.0 * np.abs(spectrum) / window.sum()
    tone_power = amplitude**2 / 2.0
    frame_power = np.mean(frames * frames, axis=1)
    level_floor = 10.0 ** (min_level_db / 10.0)
    present = (tone_power >= min_ratio * np.maximum(frame_power, 1e-20)) & (
        tone_power >= level_floor
    )
    intervals: list[tuple[float, float]] = []
    start: int | None = None
    for i, on in enumerate([*present.tolist(), False]):
        if on and start is None:
            start = i
        elif not on and start is not None:
            # A frame is on when roughly its middle half holds the tone, so
            # frame centres are the best edge estimates.
            begin = (start * step + size / 2) / rate
            end = ((i - 1) * step + size / 2) / rate
            begin, end = max(0.0, begin - hop / 2), min(len(x) / rate, end + hop / 2)
            # A tone already on in the first frame (or still on in the last)
            # runs from the start (to the end) as far as the recording shows.
            if start == 0:
                begin = 0.0
            if i == len(present):
                end = len(x) / rate
            if end - begin >= min_duration:
                intervals.append((begin, end))
            start = None
    return intervals


# -------------------------------------------------------------- classification


def _music_votes(x: npt.NDArray[np.float64], rate: int) -> int:
    """How many of five features say "music" rather than "speech" (0-5).

    Speech alternates voiced vowels, noisy fricatives and short pauses at the
    syllable rate (~4 Hz); music, even polyphonic and through G.711, holds
    steady spectral lines for the length of a note. Each feature alone errs
    on some material; the vote does not (thresholds set on espeak-ng voices
    against synthesised melodies and chords, both raw and µ-law coded).
    """
    sub_size = max(16, int(0.04 * rate))
    sub = _frames(x, sub_size, sub_size // 2)
    sub_power = np.mean(sub * sub, axis=1)
    # Loudness relative to the frame's peak, so quiet music is still music.
    loud = sub_power > max(float(sub_power.max()) * 1e-3, 1e-9)
    pairs = loud[1:] & loud[:-1]
    if loud.mean() < 0.6 or pairs.sum() < 3:
        # Music plays on; a frame mostly quiet around a few sounds is speech.
        return 0
    window = np.hanning(sub_size)
    magnitude = np.abs(np.fft.rfft(sub * window, axis=1))
    unit = magnitude / (np.linalg.norm(magnitude, axis=1, keepdims=True) + 1e-20)
    # 1. Spectral stationarity: consecutive 40 ms spectra stay alike in a note.
    similarity = np.sum(unit[1:] * unit[:-1], axis=1)
    stationary = float(np.median(similarity[pairs])) > 0.9
    # 2. Spectral flatness: fricatives are noise-like; music stays peaky.
    power = magnitude[loud] ** 2 + 1e-20
    flatness = np.exp(np.mean(np.log(power), axis=1)) / np.mean(power, axis=1)
    peaky = float(np.percentile(flatness, 90)) < 0.02
    # 3. Zero-crossing rate varies between voiced and unvoiced speech sounds.
    crossings = np.mean(np.abs(np.diff(np.signbit(sub).astype(np.int8), axis=1)), axis=1)
    even_zcr = float(np.std(crossings[loud])) < 0.04
    # 4. Energy dips between syllables and words.
    few_dips = float(np.mean(sub_power < 0.1 * np.median(sub_power[loud]))) < 0.1
    # 5. Energy modulation depth (std of log power over loud sub-frames).
    level = np.log10(sub_power[loud])
    even_level = float(np.std(level)) < 0.45
    return int(stationary) + int(peaky) + int(even_zcr) + int(few_dips) + int(even_level)


def _classify_frame(x: npt.NDArray[np.float64], rate: int, silence_db: float) -> Label:
    power = float(np.mean(x * x))
    if power <= 10.0 ** (silence_db / 10.0):
        return "silence"
    # Tone: one spectral line carries nearly all the energy of the frame.
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x)))) ** 2
    total = float(spectrum.sum()) + 1e-20
    peak = int(np.argmax(spectrum))
    if float(spectrum[max(0, peak - 3) : peak + 4].sum()) / total > 0.9:
        return "tone"
    return "music" if _music_votes(x, rate) >= 3 else "speech"


def classify(
    samples: npt.ArrayLike, rate: int, frame: float = 0.5, *, silence_db: float = -45.0
) -> list[Segment]:
    """Label consecutive ``frame``-second stretches as speech, music, tone or
    silence and merge equal neighbours into segments.

    Features, each chosen to survive gain changes and G.711: level (silence
    below ``silence_db`` dBFS), spectral concentration (a tone is one line),
    energy dips between syllables, and pitch stability (music holds notes at a
    fixed pitch, speech intonation glides).
    """
    x = _as_f64(samples)
    size = max(1, int(round(frame * rate)))
    segments: list[Segment] = []
    for begin in range(0, len(x), size):
        chunk = x[begin : begin + size]
        if len(chunk) < size // 2 and segments:
            # A short tail belongs to the previous stretch.
            last = segments[-1]
            segments[-1] = Segment(last.label, last.start_s, len(x) / rate)
            continue
        label = _classify_frame(chunk, rate, silence_db)
        start, end = begin / rate, (begin + len(chunk)) / rate
        if segments and segments[-1].label == label:
            segments[-1] = Segment(label, segments[-1].start_s, end)
        else:
            segments.append(Segment(label, start, end))
    return segments


# ---------------------------------------------------------------- two-way audio


def two_way(
    rec_a: npt.ArrayLike,
    rec_b: npt.ArrayLike,
    played_by_a: npt.ArrayLike,
    played_by_b: npt.ArrayLike,
    rate: int,
    threshold: float = 0.5,
) -> TwoWay:
    """Did A hear what B played and B hear what A played?

    ``rec_a`` is what phone A recorded (heard); ``played_by_a`` what A sent.
    Truthy when both directions score at least ``threshold``; the returned
    matches say where and how well, for the failure message.
    """
    return TwoWay(
        a_heard_b=locate(played_by_b, rec_a, rate),
        b_heard_a=locate(played_by_a, rec_b, rate),
        threshold=threshold,
    )
