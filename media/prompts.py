"""Prompt synthesis: text -> espeak-ng -> pydub -> 8 kHz mono 16-bit WAV.

``qconnect prompts build`` calls :func:`build_prompts` for the prompts of a
config and :func:`build_default_audio` for the built-in demo lab, whose
output is shipped in ``media/audio/`` so the demo runs without espeak-ng.

Deterministic regeneration: espeak-ng produces identical bytes for the same
text, voice and espeak-ng version (no randomness, no timestamps); the pydub
post-processing (trim, anti-aliased resample, normalise) and the numpy tone
synthesis are pure arithmetic; WAVs are written with a canonical 44-byte
header and the manifest with sorted keys.  So running the build twice with
the same espeak-ng gives byte-identical files (``tests/media/test_prompts.py``
checks it); a different espeak-ng release may pronounce differently, which
is why the generated files are committed rather than rebuilt at install.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any, TextIO, cast

from pydub import AudioSegment
from pydub.effects import normalize
from pydub.silence import detect_leading_silence

from media.player import segment_pcm, to_telephony
from media.tones import beep, hold_music, write_wav

__all__ = [
    "BEEP_FREQ_HZ",
    "BEEP_MS",
    "DEFAULT_AUDIO_DIR",
    "HOLD_MUSIC_SECONDS",
    "MANIFEST",
    "PromptError",
    "build_default_audio",
    "build_prompts",
    "default_prompts",
    "espeak_version",
    "load_manifest",
    "prompt_path",
    "slug",
    "synthesise",
]

DEFAULT_AUDIO_DIR = Path(__file__).resolve().parent / "audio"
MANIFEST = "manifest.json"
BEEP_FREQ_HZ = 1000.0
BEEP_MS = 200.0
HOLD_MUSIC_SECONDS = 20.0

_ESPEAK = "espeak-ng"


class PromptError(RuntimeError):
    """A prompt cannot be synthesised (espeak-ng missing or failing, empty text)."""


def default_prompts() -> dict[str, str]:
    """The built-in demo lab's prompts: name -> text."""
    return {
        "Welcome": "Welcome to Example Corp. Please hold while we connect you.",
        "Transferring to agent": "Transferring to agent.",
        "On hold": "You are on hold.",
        "BasicQueue": "BasicQueue",
        "PasswordReset": "PasswordReset",
        "Internal transfer": "This is an internal call transferred from another agent.",
        "Connecting to agent": "Your call is now being connected to an agent.",
        "Closed": "We are closed. Please call again during business hours.",
        "Nobody available": "Sorry, nobody is available to take your call right now.",
        # What the default flows and the demo inbound flow say (flows/defaults, demo_flows),
        # shipped so the demo lab never needs espeak-ng at run time.
        "Agent not available": "The agent is not available.",
        "Transfer failed": "The transfer failed.",
        "Now transferring": "Now transferring your call.",
        "Queue closed": "This queue is closed now. Goodbye.",
        "No agents staffed": "No agents are staffed in this queue. Goodbye.",
        "Queue transfer failed": "The transfer to the queue failed. Goodbye.",
        "Cannot take call": "We cannot take your call right now. Goodbye.",
    }


def slug(name: str) -> str:
    """File stem for a prompt name: ``"BasicQueue"`` -> ``basic_queue``, ``"On hold"`` -> ``on_hold``."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name.strip())
    stem = re.sub(r"[^a-z0-9]+", "_", spaced.lower()).strip("_")
    if not stem:
        raise PromptError(f"prompt name {name!r} has no letters or digits to name a file by")
    return stem


def _espeak() -> str:
    exe = shutil.which(_ESPEAK)
    if exe is None:
        raise PromptError("espeak-ng is not installed (apt-get install espeak-ng)")
    return exe


@lru_cache(maxsize=4)
def _voices(exe: str) -> frozenset[str]:
    """Every name espeak-ng accepts for ``-v``: languages, voice names, voice files."""
    done = subprocess.run([exe, "--voices"], capture_output=True, text=True, check=False)
    names: set[str] = set()
    for line in done.stdout.splitlines()[1:]:
        cols = line.split()
        if len(cols) >= 5:
            names.update({cols[1].lower(), cols[3].lower(), cols[4].lower()})
            names.add(cols[4].rsplit("/", 1)[-1].lower())
    return frozenset(names)


def espeak_version() -> str:
    """The installed espeak-ng's version line (output is reproducible per version)."""
    exe = _espeak()
    done = subprocess.run([exe, "--version"], capture_output=True, text=True, check=False)
    return done.stdout.strip()


def synthesise(
    text: str,
    path: str | Path,
    voice: str = "en-us",
    *,
    speed_wpm: int = 160,
    pitch: int = 50,
    headroom_db: float = 1.0,
    silence_dbfs: float = -50.0,
) -> Path:
    """Speak ``text`` with espeak-ng into ``path`` as an 8 kHz mono 16-bit WAV.

    Post-processing with pydub: trim leading and trailing silence (quieter
    than ``silence_dbfs``) so a prompt starts the instant it is played,
    convert to telephony format, then peak-normalise to ``-headroom_db``.
    """
    if not text.strip():
        raise PromptError("cannot synthesise an empty prompt")
    exe = _espeak()
    if voice.split("+", 1)[0].lower() not in _voices(exe):
        # espeak-ng silently falls back to its default voice for an unknown
        # name, which would ship prompts in the wrong language.
        raise PromptError(f"espeak-ng has no voice {voice!r} (see espeak-ng --voices)")
    with tempfile.TemporaryDirectory(prefix="qconnect-tts-") as tmp:
        raw = Path(tmp) / "speech.wav"
        # Text on stdin, not argv: a prompt starting with "-" is not an option.
        done = subprocess.run(
            [exe, "-v", voice, "-s", str(speed_wpm), "-p", str(pitch), "-w", str(raw), "--stdin"],
            input=text.encode("utf-8"),
            capture_output=True,
            check=False,
        )
        if done.returncode != 0 or not raw.exists():
            err = done.stderr.decode("utf-8", "replace").strip()
            raise PromptError(f"espeak-ng failed for voice {voice!r}: {err or done.returncode}")
        speech = AudioSegment.from_wav(str(raw))
    speech = _trim(speech, silence_dbfs)
    if len(speech) == 0:
        raise PromptError(f"espeak-ng produced only silence for {text!r}")
    speech = normalize(to_telephony(speech), headroom=headroom_db)
    return write_wav(path, segment_pcm(speech))


def _trim(segment: AudioSegment, silence_dbfs: float) -> AudioSegment:
    start = detect_leading_silence(segment, silence_threshold=silence_dbfs, chunk_size=5)
    end = detect_leading_silence(segment.reverse(), silence_threshold=silence_dbfs, chunk_size=5)
    return cast(AudioSegment, segment[start : max(start, len(segment) - end)])


class _Progress:
    """A one-line progress bar on a terminal, one line per step otherwise (CI logs)."""

    def __init__(self, total: int, label: str, stream: TextIO | None = None) -> None:
        self.total = total
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.done = 0
        self.tty = self.stream.isatty()

    def step(self, what: str) -> None:
        self.done += 1
        width = 24
        filled = width * self.done // max(self.total, 1)
        bar = "#" * filled + "-" * (width - filled)
        line = f"{self.label} [{bar}] {self.done}/{self.total} {what}"
        if self.tty:
            end = "\n" if self.done >= self.total else ""
            self.stream.write(f"\r\x1b[K{line}{end}")
        else:
            self.stream.write(line + "\n")
        self.stream.flush()


def build_prompts(
    prompts: Mapping[str, str],
    out_dir: str | Path,
    progress: bool = True,
    *,
    voice: str = "en-us",
    manifest: bool = True,
    stream: TextIO | None = None,
) -> dict[str, Path]:
    """Synthesise every ``name -> text`` into ``out_dir/<slug(name)>.wav``.

    Shows a progress bar (on ``stream``, default stderr) unless ``progress``
    is false; with ``manifest`` writes ``out_dir/manifest.json``
    (name -> {file, text}).  Returns name -> path.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, str] = {}
    for name in prompts:
        stem = slug(name)
        clash = next((other for other, f in files.items() if f == f"{stem}.wav"), None)
        if clash is not None:
            raise PromptError(f"prompts {clash!r} and {name!r} would both be {stem}.wav")
        files[name] = f"{stem}.wav"
    bar = _Progress(len(prompts), "prompts", stream) if progress else None
    built: dict[str, Path] = {}
    for name, text in prompts.items():
        built[name] = synthesise(text, out / files[name], voice)
        if bar is not None:
            bar.step(files[name])
    if manifest:
        write_manifest(
            out, {name: {"file": files[name], "text": prompts[name]} for name in prompts}
        )
    return built


def build_default_audio(
    out_dir: str | Path = DEFAULT_AUDIO_DIR,
    progress: bool = True,
    *,
    beep_freq_hz: float = BEEP_FREQ_HZ,
    beep_ms: float = BEEP_MS,
    hold_music_seconds: float = HOLD_MUSIC_SECONDS,
    stream: TextIO | None = None,
) -> dict[str, Path]:
    """Generate the demo lab's audio: every default prompt, ``beep.wav``, ``hold_music.wav``.

    Writes the manifest (name -> {file, text}; beep and hold music have
    ``text: null`` plus their parameters).  Returns name -> path.
    """
    out = Path(out_dir)
    prompts = default_prompts()
    built = build_prompts(prompts, out, progress, manifest=False, stream=stream)
    built["beep"] = beep(out / "beep.wav", freq=beep_freq_hz, ms=beep_ms)
    built["hold_music"] = hold_music(out / "hold_music.wav", seconds=hold_music_seconds)
    entries: dict[str, dict[str, Any]] = {
        name: {"file": built[name].name, "text": text} for name, text in prompts.items()
    }
    entries["beep"] = {
        "file": "beep.wav",
        "text": None,
        "frequency_hz": beep_freq_hz,
        "ms": beep_ms,
    }
    entries["hold_music"] = {"file": "hold_music.wav", "text": None, "seconds": hold_music_seconds}
    write_manifest(out, entries)
    return built


def write_manifest(out_dir: Path, entries: Mapping[str, Mapping[str, Any]]) -> Path:
    path = out_dir / MANIFEST
    path.write_text(json.dumps(entries, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path


def load_manifest(audio_dir: str | Path = DEFAULT_AUDIO_DIR) -> dict[str, dict[str, Any]]:
    path = Path(audio_dir) / MANIFEST
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise PromptError(f"{path}: cannot read prompt manifest: {exc}") from exc
    if not isinstance(data, dict):
        raise PromptError(f"{path}: manifest must be a JSON object")
    return cast(dict[str, dict[str, Any]], data)


def prompt_path(name: str, audio_dir: str | Path = DEFAULT_AUDIO_DIR) -> Path:
    """The WAV for prompt ``name`` (or ``beep`` / ``hold_music``) per the manifest."""
    entries = load_manifest(audio_dir)
    try:
        return Path(audio_dir) / str(entries[name]["file"])
    except KeyError:
        raise PromptError(f"no prompt named {name!r} in {Path(audio_dir) / MANIFEST}") from None
