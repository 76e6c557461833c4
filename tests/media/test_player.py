"""Players: sample-accurate queues and loops, completion events, rate conversion, tones."""

from __future__ import annotations

import os
import wave
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from media.player import (
    FRAME_SAMPLES,
    SAMPLE_RATE,
    Clip,
    PlaybackCancelled,
    PlaybackEvent,
    PlaybackFinished,
    PlaybackStarted,
    PlayerError,
    Silence,
    TonePlayer,
    WavPlayer,
    load_pcm,
)
from media.tones import RINGBACK_US, write_wav

Pcm = npt.NDArray[np.int16]


def ramp_wav(path: Path, n: int, offset: int = 1) -> Pcm:
    """A WAV whose samples are offset, offset+1, ... so positions are recognisable."""
    samples = (np.arange(n) + offset).astype(np.int16)
    write_wav(path, samples)
    return samples


def must(frame: Pcm | None) -> Pcm:
    assert frame is not None
    return frame


def drain(player: WavPlayer | TonePlayer) -> list[PlaybackEvent]:
    events = []
    while (event := player.next_event()) is not None:
        events.append(event)
    return events


def play_all(player: WavPlayer | TonePlayer, max_ticks: int = 10_000) -> Pcm:
    frames = []
    for tick in range(max_ticks):
        frame = player.read_frame(tick)
        if frame is None:
            break
        assert frame.shape == (FRAME_SAMPLES,) and frame.dtype == np.int16
        frames.append(frame)
    return np.concatenate(frames) if frames else np.zeros(0, np.int16)


def dominant_hz(signal: Pcm, rate: int = SAMPLE_RATE) -> float:
    spectrum = np.abs(np.fft.rfft(signal.astype(np.float64) * np.hanning(len(signal))))
    return float(np.fft.rfftfreq(len(signal), 1 / rate)[int(np.argmax(spectrum))])


def band_power(signal: Pcm, lo: float, hi: float, rate: int = SAMPLE_RATE) -> float:
    spectrum = np.abs(np.fft.rfft(signal.astype(np.float64) * np.hanning(len(signal)))) ** 2
    freqs = np.fft.rfftfreq(len(signal), 1 / rate)
    return float(spectrum[(freqs >= lo) & (freqs <= hi)].sum())


def test_queue_plays_a_then_b_sample_accurately_with_tick_stamped_events(tmp_path: Path) -> None:
    a = ramp_wav(tmp_path / "a.wav", 250, offset=1)
    b = ramp_wav(tmp_path / "b.wav", 100, offset=1000)
    player = WavPlayer()
    player.play(tmp_path / "a.wav")
    player.play(tmp_path / "b.wav")
    frames = [player.read_frame(tick) for tick in range(100, 104)]
    assert frames[3] is None  # 350 samples fill ticks 100..102, then the queue is empty
    audio = np.concatenate([f for f in frames if f is not None])
    np.testing.assert_array_equal(audio[:350], np.concatenate([a, b]))  # no gap between items
    np.testing.assert_array_equal(audio[350:], np.zeros(130))  # last frame padded
    assert drain(player) == [
        PlaybackStarted(Clip(tmp_path / "a.wav"), 100),
        PlaybackFinished(Clip(tmp_path / "a.wav"), 100, 101),
        PlaybackStarted(Clip(tmp_path / "b.wav"), 101),
        PlaybackFinished(Clip(tmp_path / "b.wav"), 101, 102),
    ]
    assert not player.playing


def test_looping_clip_repeats_seamlessly_until_stopped(tmp_path: Path) -> None:
    clip = ramp_wav(tmp_path / "loop.wav", 75)
    player = WavPlayer()
    player.play(tmp_path / "loop.wav", loop=True)
    audio = np.concatenate([must(player.read_frame()) for _ in range(7)])
    np.testing.assert_array_equal(audio, np.tile(clip, 15)[: 7 * FRAME_SAMPLES])
    events = drain(player)
    finished = [e for e in events if isinstance(e, PlaybackFinished)]
    assert len(finished) == 7 * FRAME_SAMPLES // 75  # one per completed iteration
    player.stop()
    last = drain(player)
    assert len(last) == 1 and isinstance(last[0], PlaybackFinished) and last[0].interrupted
    assert player.read_frame() is None and not player.playing


def test_interrupt_skips_the_current_item_and_stop_cancels_the_queue(tmp_path: Path) -> None:
    ramp_wav(tmp_path / "long.wav", 8000)
    ramp_wav(tmp_path / "next.wav", 160, offset=5000)
    player = WavPlayer()
    player.play(tmp_path / "long.wav")
    player.play(tmp_path / "next.wav")
    player.play(tmp_path / "long.wav")
    player.read_frame(10)
    player.read_frame(11)
    player.interrupt()  # barge-in: on to next.wav
    frame = player.read_frame(12)
    assert frame is not None and int(frame[0]) == 5000
    player.stop()
    assert drain(player) == [
        PlaybackStarted(Clip(tmp_path / "long.wav"), 10),
        PlaybackFinished(Clip(tmp_path / "long.wav"), 10, 11, interrupted=True),
        PlaybackStarted(Clip(tmp_path / "next.wav"), 12),
        PlaybackFinished(Clip(tmp_path / "next.wav"), 12, 12),
        PlaybackCancelled(Clip(tmp_path / "long.wav")),
    ]


def test_stop_before_start_reports_cancelled_items(tmp_path: Path) -> None:
    ramp_wav(tmp_path / "x.wav", 400)
    player = WavPlayer()
    player.play(tmp_path / "x.wav")
    player.enqueue(Silence(1.0))
    player.stop()
    assert drain(player) == [
        PlaybackCancelled(Clip(tmp_path / "x.wav")),
        PlaybackCancelled(Silence(1.0)),
    ]
    assert player.read_frame() is None


def test_announcement_every_ten_seconds_is_prompt_plus_silence_loop(tmp_path: Path) -> None:
    prompt = ramp_wav(tmp_path / "on_hold.wav", 12_000)  # 1.5 s
    player = WavPlayer()
    player.play_every(tmp_path / "on_hold.wav", period=10.0)
    audio = np.concatenate([must(player.read_frame(t)) for t in range(1500)])
    period = 10 * SAMPLE_RATE
    for k in range(3):
        np.testing.assert_array_equal(audio[k * period : k * period + len(prompt)], prompt)
        assert not audio[k * period + len(prompt) : (k + 1) * period].any()
    starts = [e.tick for e in drain(player) if isinstance(e, PlaybackStarted)]
    assert starts[0::2] == [0, 500, 1000]  # the prompt starts every 500 ticks = 10 s


def test_44k1_stereo_24bit_wav_is_converted_to_8k_mono_without_aliasing(tmp_path: Path) -> None:
    rate = 44_100
    t = np.arange(rate) / rate  # 1 s
    # 1 kHz in both channels plus 6 kHz, which a converter without an
    # anti-alias filter would fold down to 2 kHz.
    left = 0.4 * np.sin(2 * np.pi * 1000 * t) + 0.3 * np.sin(2 * np.pi * 6000 * t)
    right = 0.4 * np.sin(2 * np.pi * 1000 * t)
    stereo = np.stack([left, right], axis=1).reshape(-1)
    ints = np.rint(stereo * (2**23 - 1)).astype(np.int32)
    raw = ints.astype("<i4").view(np.uint8).reshape(-1, 4)[:, :3].tobytes()  # 24-bit LE
    path = tmp_path / "hifi.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(3)
        w.setframerate(rate)
        w.writeframes(raw)

    pcm = load_pcm(path)
    assert pcm.dtype == np.int16
    assert abs(len(pcm) - SAMPLE_RATE) <= 2
    assert dominant_hz(pcm) == pytest.approx(1000, abs=5)
    level = float(np.sqrt(np.mean(pcm[400:-400].astype(np.float64) ** 2)))
    assert level == pytest.approx(0.4 / np.sqrt(2) * 32767, rel=0.05)
    # The 6 kHz alias at 2 kHz is at least 40 dB below the 1 kHz tone.
    assert band_power(pcm, 1900, 2100) < band_power(pcm, 900, 1100) * 1e-4

    player = WavPlayer()
    player.play(path)
    np.testing.assert_array_equal(play_all(player)[: len(pcm)], pcm)


def test_converted_samples_are_cached_per_path_and_refreshed_when_the_file_changes(
    tmp_path: Path,
) -> None:
    path = tmp_path / "p.wav"
    ramp_wav(path, 160)
    first = load_pcm(path)
    assert load_pcm(path) is first
    assert not first.flags.writeable  # shared between players: must not be mutated
    ramp_wav(path, 320)
    os.utime(path, ns=(1, 1))  # a distinct mtime even on coarse-clock filesystems
    assert len(load_pcm(path)) == 320


def test_unreadable_files_fail_when_queued_not_mid_call(tmp_path: Path) -> None:
    player = WavPlayer()
    with pytest.raises(PlayerError):
        player.play(tmp_path / "missing.wav")
    (tmp_path / "junk.wav").write_bytes(b"RIFF not really")
    with pytest.raises(PlayerError):
        player.play(tmp_path / "junk.wav")
    write_wav(tmp_path / "empty.wav", np.zeros(0, np.int16))
    with pytest.raises(PlayerError):
        player.play(tmp_path / "empty.wav", loop=True)
    assert not player.playing


def test_tone_player_cadence_frequencies_and_duration() -> None:
    player = TonePlayer(RINGBACK_US.frequencies, cadence=RINGBACK_US.cadence, seconds=7.0)
    audio = play_all(player)
    assert len(audio) == 7 * SAMPLE_RATE
    on = audio[: 2 * SAMPLE_RATE]
    off = audio[int(2.01 * SAMPLE_RATE) : int(5.99 * SAMPLE_RATE)]
    assert not off.any()
    assert band_power(on, 430, 450) > 1e3 * band_power(on, 600, 4000)
    assert band_power(on, 470, 490) > 1e3 * band_power(on, 600, 4000)
    second_burst = audio[6 * SAMPLE_RATE :]
    assert np.abs(second_burst).max() > 3000
    # Raised-cosine edges: no step at the start of a burst.
    assert abs(int(audio[0])) < 50
    events = drain(player)
    assert isinstance(events[-1], PlaybackFinished) and events[-1].end_tick == 349


def test_single_frequency_tone_and_bad_parameters() -> None:
    beep = play_all(TonePlayer(1000, seconds=0.2))
    assert len(beep) == 1600 and dominant_hz(beep) == pytest.approx(1000, abs=5)
    with pytest.raises(PlayerError):
        TonePlayer(5000)
    with pytest.raises(PlayerError):
        WavPlayer().enqueue(Silence(-1))
