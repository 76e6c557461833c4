"""Call recorder: stereo (left heard, right said) and a valid WAV on disk after every flush."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from media.recorder import FRAME_SAMPLES, CallRecorder, RecorderError

Pcm = npt.NDArray[np.int16]


def read_stereo(path: Path) -> tuple[Pcm, Pcm]:
    with wave.open(str(path), "rb") as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (2, 2, 8000)
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, 2)
    return data[:, 0].astype(np.int16), data[:, 1].astype(np.int16)


def frame(value: int) -> Pcm:
    return np.full(FRAME_SAMPLES, value, dtype=np.int16)


def test_left_is_heard_right_is_said_and_none_is_silence(tmp_path: Path) -> None:
    path = tmp_path / "leg.wav"
    with CallRecorder(path) as rec:
        rec.write(heard=frame(100), said=frame(-200))
        rec.write(heard=None, said=frame(7))
        rec.write(heard=frame(9), said=None)
        assert rec.frames_written == 3 and rec.seconds == pytest.approx(0.06)
    heard, said = read_stereo(path)
    np.testing.assert_array_equal(heard, np.concatenate([frame(100), frame(0), frame(9)]))
    np.testing.assert_array_equal(said, np.concatenate([frame(-200), frame(7), frame(0)]))


def test_file_is_a_readable_wav_mid_recording_and_loses_at_most_a_second(tmp_path: Path) -> None:
    path = tmp_path / "crash.wav"
    rec = CallRecorder(path)  # default: flush every 50 ticks = 1 s
    assert read_stereo(path)[0].size == 0  # valid (empty) WAV from the start
    for tick in range(50):
        rec.write(heard=frame(tick), said=frame(-tick))
    heard, said = read_stereo(path)  # another process opens it while recording goes on
    assert len(heard) == 50 * FRAME_SAMPLES
    np.testing.assert_array_equal(heard[::FRAME_SAMPLES], np.arange(50))
    np.testing.assert_array_equal(said[::FRAME_SAMPLES], -np.arange(50))
    for tick in range(50, 99):
        rec.write(heard=frame(tick), said=None)
    # 49 more ticks are buffered, not yet on disk; the file is still a valid WAV,
    # so a crash now would lose under a second.
    assert len(read_stereo(path)[0]) == 50 * FRAME_SAMPLES
    rec.close()
    assert len(read_stereo(path)[0]) == 99 * FRAME_SAMPLES


def test_flush_interval_and_close_write_everything(tmp_path: Path) -> None:
    path = tmp_path / "short.wav"
    rec = CallRecorder(path, flush_every=5, fsync=True)
    for _ in range(12):
        rec.write(frame(1), frame(2))
    assert len(read_stereo(path)[0]) == 10 * FRAME_SAMPLES
    rec.close()
    rec.close()  # idempotent
    assert rec.closed
    assert len(read_stereo(path)[0]) == 12 * FRAME_SAMPLES
    with pytest.raises(RecorderError):
        rec.write(frame(1), frame(2))


def test_header_sizes_are_exact(tmp_path: Path) -> None:
    path = tmp_path / "h.wav"
    with CallRecorder(path) as rec:
        rec.write(frame(1), frame(2))
    raw = path.read_bytes()
    data_bytes = FRAME_SAMPLES * 2 * 2
    assert len(raw) == 44 + data_bytes
    assert int.from_bytes(raw[4:8], "little") == 36 + data_bytes
    assert raw[36:40] == b"data" and int.from_bytes(raw[40:44], "little") == data_bytes


def test_bad_frames_are_rejected(tmp_path: Path) -> None:
    with CallRecorder(tmp_path / "bad.wav") as rec:
        with pytest.raises(RecorderError):
            rec.write(np.zeros(80, np.int16), None)
    with pytest.raises(RecorderError):
        CallRecorder(tmp_path / "x.wav", flush_every=0)
