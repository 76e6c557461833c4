"""Speech WAVs for real phones to play, made with espeak-ng and sox at test time."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from media.analysis import load_wav


@dataclass(frozen=True, slots=True)
class SpeechWav:
    """``clip``: the sentence once, the reference to look for in recordings.
    ``looped``: the sentence repeated with pauses, what a phone plays."""

    clip: Path
    looped: Path
    clip_seconds: float

    def reference(self) -> tuple[npt.NDArray[np.float32], int]:
        return load_wav(self.clip)


def speech_wav(text: str, path: Path, *, seconds: float = 60.0, voice: str = "en") -> SpeechWav:
    """Synthesise ``text`` to 8 kHz mono 16-bit at ``path`` (the looped file)
    and ``path.with_suffix('.clip.wav')`` (one sentence).

    The loop is longer than any call (``seconds``) because baresip's aufile
    source hangs the call up when it reaches end of file, and linphonec's
    file player falls silent.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = path.with_suffix(".raw.wav")
    clip = path.with_suffix(".clip.wav")
    subprocess.run(["espeak-ng", "-v", voice, "-w", str(raw), text], check=True)
    # Phone-band format, normalised to -3 dBFS so both parties sound alike.
    subprocess.run(
        ["sox", str(raw), "-r", "8000", "-c", "1", "-b", "16", str(clip), "norm", "-3"],
        check=True,
    )
    samples, rate = load_wav(clip)
    clip_seconds = len(samples) / rate
    pause = 0.4
    repeats = max(1, int(np.ceil(seconds / (clip_seconds + pause))))
    subprocess.run(
        ["sox", str(clip), str(path), "pad", "0", str(pause), "repeat", str(repeats - 1)],
        check=True,
    )
    raw.unlink(missing_ok=True)
    return SpeechWav(clip=clip, looped=path, clip_seconds=clip_seconds)
