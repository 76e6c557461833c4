"""Generated audio: espeak-ng prompts, the beep, hold music, determinism, the shipped set."""

from __future__ import annotations

import io
import json
import shutil
import wave
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from media.prompts import (
    DEFAULT_AUDIO_DIR,
    PromptError,
    build_default_audio,
    build_prompts,
    default_prompts,
    espeak_version,
    load_manifest,
    prompt_path,
    slug,
    synthesise,
)
from media.tones import beep, beep_samples, hold_music, hold_music_samples

Pcm = npt.NDArray[np.int16]

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng missing")

# The shipped speech WAVs were generated with this espeak-ng; another release
# may pronounce differently, so byte-equality with the shipped files is only
# asserted when the same version is installed.
SHIPPED_ESPEAK = "eSpeak NG text-to-speech: 1.51"


def read_mono(path: Path) -> Pcm:
    with wave.open(str(path), "rb") as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 8000)
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.int16)


def spectrum(x: Pcm) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    mag = np.abs(np.fft.rfft(x.astype(np.float64) * np.hanning(len(x)))).astype(np.float64)
    return np.fft.rfftfreq(len(x), 1 / 8000).astype(np.float64), mag


def test_slugs_name_files_after_prompts() -> None:
    assert slug("Welcome") == "welcome"
    assert slug("Transferring to agent") == "transferring_to_agent"
    assert slug("BasicQueue") == "basic_queue"
    assert slug("PasswordReset") == "password_reset"
    assert slug("  On hold! ") == "on_hold"
    with pytest.raises(PromptError):
        slug("!!!")


@needs_espeak
def test_synthesise_gives_trimmed_normalised_8k_mono_speech(tmp_path: Path) -> None:
    out = synthesise("Transferring to agent.", tmp_path / "t.wav")
    pcm = read_mono(out)
    assert 0.8 < len(pcm) / 8000 < 3.0
    peak = int(np.abs(pcm.astype(np.int32)).max())
    assert peak == pytest.approx(32767 * 10 ** (-1 / 20), rel=0.02)  # normalised to -1 dBFS
    # Trimmed: speech energy within the first and last 30 ms.
    assert np.abs(pcm[:240]).max() > 300
    assert np.abs(pcm[-240:]).max() > 100
    freqs, mag = spectrum(pcm)
    assert mag[(freqs > 200) & (freqs < 3400)].sum() > 20 * mag[freqs > 3800].sum()


@needs_espeak
def test_synthesis_is_deterministic(tmp_path: Path) -> None:
    a = synthesise("You are on hold.", tmp_path / "a.wav")
    b = synthesise("You are on hold.", tmp_path / "b.wav")
    assert a.read_bytes() == b.read_bytes()


def test_synthesise_rejects_empty_text_and_unknown_voice(tmp_path: Path) -> None:
    with pytest.raises(PromptError):
        synthesise("   ", tmp_path / "x.wav")
    if shutil.which("espeak-ng"):
        with pytest.raises(PromptError):
            synthesise("hello", tmp_path / "y.wav", voice="no-such-voice-xx")


@needs_espeak
def test_build_prompts_shows_progress_and_writes_a_manifest(tmp_path: Path) -> None:
    stream = io.StringIO()
    built = build_prompts(
        {"Welcome": "Welcome.", "BasicQueue": "BasicQueue"}, tmp_path, stream=stream
    )
    assert built == {
        "Welcome": tmp_path / "welcome.wav",
        "BasicQueue": tmp_path / "basic_queue.wav",
    }
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2 and "1/2" in lines[0] and "2/2 basic_queue.wav" in lines[1]
    assert json.loads((tmp_path / "manifest.json").read_text()) == {
        "BasicQueue": {"file": "basic_queue.wav", "text": "BasicQueue"},
        "Welcome": {"file": "welcome.wav", "text": "Welcome."},
    }
    silent = io.StringIO()
    build_prompts({"Welcome": "Welcome."}, tmp_path / "quiet", progress=False, stream=silent)
    assert silent.getvalue() == ""
    with pytest.raises(PromptError):
        build_prompts({"On hold": "a", "on-hold": "b"}, tmp_path / "clash", progress=False)


def test_beep_frequency_length_and_soft_edges(tmp_path: Path) -> None:
    pcm = read_mono(beep(tmp_path / "beep.wav", freq=1400, ms=150))
    assert len(pcm) == 150 * 8
    freqs, mag = spectrum(pcm)
    assert freqs[int(np.argmax(mag))] == pytest.approx(1400, abs=10)
    assert abs(int(pcm[0])) < 200 and abs(int(pcm[-1])) < 200  # raised-cosine ramps
    assert int(np.abs(pcm.astype(np.int32)).max()) == pytest.approx(
        32767 * 10 ** (-6 / 20), rel=0.01
    )
    default = beep_samples()
    assert len(default) == 1600
    with pytest.raises(ValueError):
        beep_samples(freq=4500)


def test_hold_music_is_a_melody_not_a_tone_and_loops_seamlessly() -> None:
    pcm = hold_music_samples(seconds=20.0)
    assert len(pcm) == 20 * 8000 and len(pcm) % 160 == 0
    freqs, mag = spectrum(pcm)
    # Count distinct spectral peaks in the voice band within 30 dB of the strongest.
    band = (freqs > 80) & (freqs < 3400)
    m = mag * band
    is_peak = (m[1:-1] > m[:-2]) & (m[1:-1] > m[2:]) & (m[1:-1] > m.max() * 10 ** (-30 / 20))
    assert int(is_peak.sum()) >= 8
    # Several different notes over time: the dominant pitch changes from chord to chord.
    chords = pcm.reshape(8, -1)
    dominants = {round(float(spectrum(c)[0][np.argmax(spectrum(c)[1])])) for c in chords}
    assert len(dominants) >= 3
    # Seamless: the wrap-around step is no bigger than ordinary sample-to-sample steps.
    steps = np.abs(np.diff(pcm.astype(np.int32)))
    assert abs(int(pcm[0]) - int(pcm[-1])) <= np.percentile(steps, 99)
    # Deterministic to the byte.
    assert hold_music_samples(seconds=20.0).tobytes() == pcm.tobytes()


def test_generated_tones_are_byte_identical_across_runs(tmp_path: Path) -> None:
    a = hold_music(tmp_path / "a.wav", seconds=4)
    b = hold_music(tmp_path / "b.wav", seconds=4)
    assert a.read_bytes() == b.read_bytes()
    assert beep(tmp_path / "c.wav").read_bytes() == beep(tmp_path / "d.wav").read_bytes()


def test_shipped_demo_audio_is_complete_and_telephony_format() -> None:
    manifest = load_manifest()
    expected = set(default_prompts()) | {"beep", "hold_music"}
    assert set(manifest) == expected
    for name, text in default_prompts().items():
        assert manifest[name]["text"] == text
        assert manifest[name]["file"] == f"{slug(name)}.wav"
    for name in manifest:
        assert len(read_mono(prompt_path(name))) > 0
    assert prompt_path("Welcome") == DEFAULT_AUDIO_DIR / "welcome.wav"
    assert len(read_mono(prompt_path("hold_music"))) == 20 * 8000
    with pytest.raises(PromptError):
        prompt_path("No such prompt")


@needs_espeak
def test_regenerating_the_demo_audio_reproduces_the_shipped_bytes(tmp_path: Path) -> None:
    build_default_audio(tmp_path, progress=False)
    same_espeak = espeak_version().startswith(SHIPPED_ESPEAK)
    for shipped in sorted(DEFAULT_AUDIO_DIR.iterdir()):
        rebuilt = tmp_path / shipped.name
        assert rebuilt.exists(), shipped.name
        speech = shipped.suffix == ".wav" and shipped.stem not in ("beep", "hold_music")
        if speech and not same_espeak:
            continue
        assert rebuilt.read_bytes() == shipped.read_bytes(), shipped.name
