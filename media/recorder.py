"""Per-leg call recorder: a stereo WAV, left = what the party heard, right = what it said.

Each media tick the engine hands the recorder the leg's two frames: the
bridge's mix for the leg (heard) and the frame the leg sent into the bridge
(said); a missing frame is silence, so both channels stay aligned on the
media clock and a prompt found at t seconds in the left channel really
played t seconds into the call.

Crash safety: samples are buffered in memory and appended to the file at
least once a second of audio (50 ticks), and after each append the RIFF and
``data`` chunk sizes in the header are rewritten, so at every moment
between appends the file on disk is a complete, valid WAV of everything up
to the last flush.  A crash loses at most the unflushed second.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import BinaryIO

import numpy as np
import numpy.typing as npt

__all__ = ["CallRecorder", "RecorderError", "FRAME_SAMPLES", "SAMPLE_RATE"]

SAMPLE_RATE = 8000
FRAME_SAMPLES = 160
_CHANNELS = 2
_BYTES_PER_SAMPLE = 2
_HEADER_BYTES = 44


class RecorderError(RuntimeError):
    """The recording cannot be written (closed recorder, bad frame, disk error)."""


def _header(data_bytes: int) -> bytes:
    # Canonical PCM WAVE header: RIFF chunk, 16-byte 'fmt ' chunk (format 1 =
    # PCM), then the 'data' chunk size; sizes are little-endian uint32.
    block_align = _CHANNELS * _BYTES_PER_SAMPLE
    return struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF",
        36 + data_bytes,
        b"WAVE",
        b"fmt ",
        16,
        1,
        _CHANNELS,
        SAMPLE_RATE,
        SAMPLE_RATE * block_align,
        block_align,
        8 * _BYTES_PER_SAMPLE,
        b"data",
        data_bytes,
    )


class CallRecorder:
    """Record one leg as a stereo 8 kHz 16-bit WAV, flushing as it goes.

    ``flush_every`` is in ticks (frames); the default 50 ticks = 1 s.
    ``fsync`` additionally forces each flush to the disk (survives a power
    loss, not just a process crash) at the price of a syscall per second.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        flush_every: int = 50,
        fsync: bool = False,
    ) -> None:
        if flush_every < 1:
            raise RecorderError(f"flush_every must be at least one tick, got {flush_every}")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._flush_every = flush_every
        self._fsync = fsync
        self._pending: list[npt.NDArray[np.int16]] = []
        self._data_bytes = 0
        self._frames = 0
        self._file: BinaryIO | None = open(self.path, "wb")  # closed in close()
        self._file.write(_header(0))
        self._file.flush()

    @property
    def closed(self) -> bool:
        return self._file is None

    @property
    def frames_written(self) -> int:
        """Ticks recorded so far (flushed or pending)."""
        return self._frames

    @property
    def seconds(self) -> float:
        return self._frames * FRAME_SAMPLES / SAMPLE_RATE

    def write(
        self,
        heard: npt.ArrayLike | None,
        said: npt.ArrayLike | None,
    ) -> None:
        """Record one tick; ``None`` for either side means it was silent."""
        if self._file is None:
            raise RecorderError(f"{self.path}: recorder is closed")
        stereo = np.zeros((FRAME_SAMPLES, _CHANNELS), dtype="<i2")
        for channel, frame in ((0, heard), (1, said)):
            if frame is None:
                continue
            samples = np.asarray(frame)
            if samples.shape != (FRAME_SAMPLES,):
                raise RecorderError(
                    f"{self.path}: frame must be {FRAME_SAMPLES} samples, got {samples.shape}"
                )
            stereo[:, channel] = samples
        self._pending.append(stereo)
        self._frames += 1
        if len(self._pending) >= self._flush_every:
            self.flush()

    def flush(self) -> None:
        """Append buffered audio and rewrite the header so the file is a valid WAV now."""
        f = self._file
        if f is None:
            return
        try:
            if self._pending:
                data = np.concatenate(self._pending).tobytes()
                self._pending.clear()
                f.seek(0, os.SEEK_END)
                f.write(data)
                self._data_bytes += len(data)
            f.seek(0)
            f.write(_header(self._data_bytes))
            f.flush()
            if self._fsync:
                os.fsync(f.fileno())
        except OSError as exc:
            raise RecorderError(f"{self.path}: cannot write recording: {exc}") from exc

    def close(self) -> None:
        """Flush everything and close the file; closing twice is harmless."""
        if self._file is None:
            return
        try:
            self.flush()
        finally:
            self._file.close()
            self._file = None

    def __enter__(self) -> CallRecorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
