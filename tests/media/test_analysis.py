"""media.analysis on synthesised signals and espeak-ng speech, raw and after
a G.711 µ-law round trip (the degradation every phone recording has)."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest

from media.analysis import (
    AnalysisError,
    Match,
    classify,
    detect_tone,
    find_all,
    goertzel,
    load_wav,
    locate,
    two_way,
)

RATE = 8000
SENTENCES = (
    "Thank you for calling. Please hold while we connect you to the next available agent.",
    "Press one for sales, press two for support, or stay on the line.",
    "Your call is important to us. The estimated wait time is four minutes.",
)


# ----------------------------------------------------------------- helpers


def ulaw_roundtrip(x: np.ndarray) -> np.ndarray:
    """G.711 µ-law encode then decode (ITU-T G.711, segment/bias form)."""
    pcm = np.clip(np.round(np.asarray(x) * 32768.0), -32768, 32767).astype(np.int32)
    sign = pcm < 0
    magnitude = np.minimum(np.abs(pcm), 32635) + 0x84
    exponent = np.floor(np.log2(magnitude)).astype(np.int32) - 7
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    code = ~((sign.astype(np.int32) << 7) | (exponent << 4) | mantissa) & 0xFF
    # decode
    u = ~code & 0xFF
    e, m = (u >> 4) & 0x07, u & 0x0F
    value = (((m << 3) + 0x84) << e) - 0x84
    return np.where(u & 0x80, -value, value).astype(np.float64) / 32768.0


def sine(freq: float, seconds: float, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return amplitude * np.sin(2 * np.pi * freq * t)


def melody(seconds: float, seed: int = 1) -> np.ndarray:
    """Plucked notes of a C major scale with harmonics: music, not a bare sine."""
    rng = np.random.default_rng(seed)
    scale = [261.63, 293.66, 329.63, 349.23, 392.0, 440.0, 493.88, 523.25]
    notes = []
    note = 0.25
    t = np.arange(int(note * RATE)) / RATE
    for _ in range(int(seconds / note)):
        f = scale[rng.integers(0, len(scale))]
        tone = sum(0.6**h * np.sin(2 * np.pi * f * (h + 1) * t) for h in range(4))
        envelope = np.minimum(1.0, t / 0.01) * np.exp(-3 * t)
        notes.append(0.3 * tone * envelope)
    return np.concatenate(notes)


def chords(seconds: float, seed: int = 2) -> np.ndarray:
    """Sustained triads (polyphony defeats pitch trackers, not the classifier)."""
    rng = np.random.default_rng(seed)
    roots = [130.81, 146.83, 164.81, 174.61, 196.0, 220.0]
    length = 0.5
    t = np.arange(int(length * RATE)) / RATE
    out = []
    for _ in range(int(seconds / length)):
        root = roots[rng.integers(0, len(roots))]
        phase = 2 * np.pi * root * t
        tone = sum(np.sin(r * phase) + 0.4 * np.sin(2 * r * phase) for r in (1, 1.26, 1.5, 2))
        envelope = np.minimum(1.0, t / 0.02) * np.minimum(1.0, (length - t) / 0.05)
        out.append(0.08 * tone * envelope)
    return np.concatenate(out)


def write_wav(path: Path, samples: np.ndarray, rate: int = RATE, channels: int = 1) -> None:
    pcm = np.clip(np.round(samples * 32767), -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())


def _need(tool: str) -> None:
    if shutil.which(tool) is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{tool} is required (CI=true): run scripts/install-system-deps.sh")
        pytest.skip(f"{tool} not installed")


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> list[np.ndarray]:
    """espeak-ng sentences in a few voices, as 8 kHz mono 16-bit like a prompt."""
    _need("espeak-ng")
    _need("sox")
    folder = tmp_path_factory.mktemp("speech")
    out = []
    for i, (text, voice) in enumerate(zip(SENTENCES, ("en", "en+f3", "en-us"), strict=True)):
        raw, wav = folder / f"raw{i}.wav", folder / f"s{i}.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-w", str(raw), text], check=True)
        subprocess.run(["sox", str(raw), "-r", "8000", "-c", "1", "-b", "16", str(wav)], check=True)
        samples, rate = load_wav(wav)
        assert rate == RATE
        out.append(samples.astype(np.float64))
    return out


# ----------------------------------------------------------------- load_wav


def test_load_wav_mono_16bit(tmp_path: Path) -> None:
    x = sine(440, 0.5)
    write_wav(tmp_path / "a.wav", x)
    samples, rate = load_wav(tmp_path / "a.wav")
    assert rate == RATE and samples.dtype == np.float32
    assert np.max(np.abs(samples - x)) < 1e-4


def test_load_wav_stereo_channels(tmp_path: Path) -> None:
    left, right = sine(440, 0.2), sine(1000, 0.2, 0.25)
    write_wav(tmp_path / "s.wav", np.stack([left, right], axis=1).reshape(-1), channels=2)
    heard, _ = load_wav(tmp_path / "s.wav", channel=0)
    said, _ = load_wav(tmp_path / "s.wav", channel=1)
    mixed, _ = load_wav(tmp_path / "s.wav")
    assert np.max(np.abs(heard - left)) < 1e-4
    assert np.max(np.abs(said - right)) < 1e-4
    assert np.max(np.abs(mixed - (left + right) / 2)) < 1e-4
    with pytest.raises(AnalysisError):
        load_wav(tmp_path / "s.wav", channel=2)


def _riff(
    fmt_tag: int, channels: int, rate: int, bits: int, data: bytes, size: int | None
) -> bytes:
    block = channels * bits // 8
    fmt = struct.pack("<HHIIHH", fmt_tag, channels, rate, rate * block, block, bits)
    data_size = len(data) if size is None else size
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    body += b"LIST" + struct.pack("<I", 3) + b"abc\x00"  # odd chunk: padding honoured
    body += b"data" + struct.pack("<I", data_size) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


def test_load_wav_float_ulaw_and_unpatched_size(tmp_path: Path) -> None:
    x = sine(300, 0.1)
    (tmp_path / "f.wav").write_bytes(_riff(3, 1, RATE, 32, x.astype("<f4").tobytes(), None))
    samples, _ = load_wav(tmp_path / "f.wav")
    assert np.max(np.abs(samples - x)) < 1e-6

    # 0xFF is µ-law zero, 0x80 the largest positive value.
    (tmp_path / "u.wav").write_bytes(_riff(7, 1, RATE, 8, bytes([0xFF, 0x80, 0x00]), None))
    samples, _ = load_wav(tmp_path / "u.wav")
    assert samples[0] == 0.0 and samples[1] > 0.97 and samples[2] < -0.97

    # A recorder killed mid-call leaves the data size at 0: read to EOF.
    pcm = (x * 32767).astype("<i2").tobytes()
    (tmp_path / "k.wav").write_bytes(_riff(1, 1, RATE, 16, pcm, 0))
    samples, _ = load_wav(tmp_path / "k.wav")
    assert len(samples) == len(x)


def test_load_wav_rejects_garbage(tmp_path: Path) -> None:
    (tmp_path / "x.wav").write_bytes(b"not a wav at all")
    with pytest.raises(AnalysisError):
        load_wav(tmp_path / "x.wav")


# ------------------------------------------------------------------ locate


def test_locate_prompt_in_noise_any_gain(speech: list[np.ndarray]) -> None:
    rng = np.random.default_rng(7)
    prompt = speech[0]
    recording = 0.01 * rng.standard_normal(int(8 * RATE))
    at = int(1.234 * RATE)
    recording[at : at + len(prompt)] += 0.2 * prompt
    match = locate(prompt, recording, RATE)
    assert abs(match.offset_s - 1.234) <= 1 / RATE
    assert match.score > 0.8  # the noise is only ~6 dB below the speech
    louder = locate(prompt, 5 * recording, RATE)
    assert louder.offset_s == match.offset_s
    assert louder.score == pytest.approx(match.score)


def test_locate_survives_g711(speech: list[np.ndarray]) -> None:
    prompt = speech[1]
    recording = np.concatenate([np.zeros(RATE // 2), prompt, np.zeros(RATE)])
    match = locate(prompt, ulaw_roundtrip(0.5 * recording), RATE)
    assert match.offset_s == pytest.approx(0.5, abs=1 / RATE)
    assert match.score > 0.95


def test_locate_unrelated_speech_scores_low(speech: list[np.ndarray]) -> None:
    recording = np.concatenate([np.zeros(RATE // 4), speech[2], np.zeros(RATE // 4)])
    assert locate(speech[0][: len(speech[2])], recording, RATE).score < 0.3
    assert locate(sine(440, 1.0), recording, RATE).score < 0.3


def test_locate_short_recording_inside_long_source(speech: list[np.ndarray]) -> None:
    # A phone plays a looped source; its far end records 1.5 s from the middle.
    source = np.concatenate([speech[0], speech[1]])
    recording = ulaw_roundtrip(source[int(2.0 * RATE) : int(3.5 * RATE)])
    match = locate(source, recording, RATE)
    assert match.offset_s == pytest.approx(-2.0, abs=1 / RATE)
    assert match.score > 0.95


def test_find_all_every_occurrence(speech: list[np.ndarray]) -> None:
    beep = sine(1000, 0.2) * np.hanning(int(0.2 * RATE))
    recording = np.zeros(6 * RATE)
    for at in (0.5, 2.25, 4.0):
        start = int(at * RATE)
        recording[start : start + len(beep)] += beep
    recording[int(3.0 * RATE) : int(3.0 * RATE) + len(speech[0][:RATE])] += speech[0][:RATE]
    found = find_all(beep, ulaw_roundtrip(recording), RATE, threshold=0.8)
    assert [round(m.offset_s, 3) for m in found] == [0.5, 2.25, 4.0]
    assert all(isinstance(m, Match) and m.score > 0.9 for m in found)
    assert find_all(beep, np.zeros(RATE), RATE) == []


def test_empty_signal_is_an_error() -> None:
    with pytest.raises(AnalysisError):
        locate(np.zeros(0), np.zeros(10), RATE)


# ------------------------------------------------------------------- tones


def test_goertzel_measures_one_component() -> None:
    x = sine(1000, 0.5, amplitude=0.5) + sine(440, 0.5, amplitude=0.1)
    assert goertzel(x, RATE, 1000) == pytest.approx(0.125, rel=0.01)
    assert goertzel(x, RATE, 440) == pytest.approx(0.005, rel=0.02)
    assert goertzel(x, RATE, 2500) < 1e-5
    assert goertzel(np.zeros(0), RATE, 1000) == 0.0


def test_detect_tone_beep_in_speech(speech: list[np.ndarray]) -> None:
    recording = np.concatenate([speech[0], np.zeros(RATE)])
    start, end = 1.0, 1.25
    recording[int(start * RATE) : int(end * RATE)] = sine(1000, end - start, 0.3)
    intervals = detect_tone(ulaw_roundtrip(recording), RATE, 1000, min_duration=0.1)
    assert len(intervals) == 1
    assert intervals[0][0] == pytest.approx(start, abs=0.02)
    assert intervals[0][1] == pytest.approx(end, abs=0.02)
    assert detect_tone(recording, RATE, 1000, min_duration=0.5) == []
    assert detect_tone(speech[1], RATE, 1000) == []


def test_detect_tone_in_a_three_party_mix() -> None:
    # Each conference party hears the other two tones, never its own.
    heard = ulaw_roundtrip(sine(440, 2.0, 0.2) + sine(660, 2.0, 0.2))
    assert detect_tone(heard, RATE, 440, 1.5) == [(0.0, 2.0)]
    assert detect_tone(heard, RATE, 660, 1.5) == [(0.0, 2.0)]
    assert detect_tone(heard, RATE, 880) == []


def test_detect_tone_ignores_faint_tones() -> None:
    assert detect_tone(sine(1000, 1.0, 0.001), RATE, 1000) == []


# ---------------------------------------------------------- classification


def labels(samples: np.ndarray) -> list[str]:
    return [label for label, _, _ in classify(samples, RATE)]


@pytest.mark.parametrize("degrade", [lambda x: x, ulaw_roundtrip, lambda x: 0.1 * x])
def test_classify_each_kind(speech: list[np.ndarray], degrade) -> None:  # type: ignore[no-untyped-def]
    assert labels(degrade(np.zeros(2 * RATE))) == ["silence"]
    assert labels(degrade(sine(440, 2.0))) == ["tone"]
    assert labels(degrade(melody(4.0))) == ["music"]
    assert labels(degrade(chords(4.0))) == ["music"]
    for sentence in speech:
        found = classify(degrade(sentence), RATE)
        speaking = sum(end - start for label, start, end in found if label == "speech")
        assert not [s for s in found if s.label in ("music", "tone")]
        assert speaking >= 0.8 * len(sentence) / RATE


def test_classify_segments_a_call(speech: list[np.ndarray]) -> None:
    prompt = speech[0][: 3 * RATE]
    prompt = np.concatenate([prompt, np.zeros(3 * RATE - len(prompt))])
    call = np.concatenate([np.zeros(RATE), prompt, sine(1000, 0.5, 0.3), melody(3.0)])
    found = classify(ulaw_roundtrip(call), RATE)
    assert [s.label for s in found][:1] == ["silence"]
    # The prompt may end in a pause (silence); after it come the beep then music.
    kinds = [s.label for s in found if s.label != "silence"]
    assert kinds[-2:] == ["tone", "music"]
    tone = next(s for s in found if s.label == "tone")
    assert (tone.start_s, tone.end_s) == (4.0, 4.5)
    assert found[-1].end_s == pytest.approx(len(call) / RATE)


# ------------------------------------------------------------- two-way audio


def test_two_way_both_directions(speech: list[np.ndarray]) -> None:
    a_says, b_says = speech[0], speech[1]
    pad = np.zeros(RATE // 3)
    rec_a = ulaw_roundtrip(np.concatenate([pad, 0.7 * b_says, pad]))
    rec_b = ulaw_roundtrip(np.concatenate([pad, pad, 0.4 * a_says]))
    result = two_way(rec_a, rec_b, a_says, b_says, RATE)
    assert result and result.ok
    assert result.a_heard_b.offset_s == pytest.approx(1 / 3, abs=1e-3)
    assert result.b_heard_a.score > 0.95

    # One-way audio: B heard only silence and its own echo.
    silent_b = ulaw_roundtrip(np.concatenate([pad, 0.3 * b_says, pad]))
    failed = two_way(rec_a, silent_b, a_says, b_says, RATE)
    assert not failed
    assert failed.a_heard_b.score > 0.95 and failed.b_heard_a.score < 0.5
