"""Audio assertions: check a scenario's ``expect`` list against what a run recorded.

The runner (which drives scripted phones against a switch) fills a
:class:`RunRecord`; nothing here needs a switch, so every assertion is
tested on synthetic recordings. The contract with the runner:

* **Time** is seconds since the run started (t = 0, POSIX ``started_at``).
* :class:`Recording` — per party, what its phone *heard*: mono samples
  (int16 or float in [-1, 1]) at ``rate`` (8 kHz), and ``start``, the run
  time of sample 0 (the instant the phone's first RTP packet was placed).
  A party with several calls in one run gets one recording spanning them
  (silence between calls), or the runner keeps the longest; either way
  sample ``i`` is heard at ``start + i / rate``.
* :class:`TimelineEvent` — what happened when: banners (``kind="banner"``,
  ``party`` = the agent whose CCP shows it, ``data`` = connection, state),
  flow blocks, prompts played (``party`` = to whom), marks (the ``mark``
  steps; windows refer to them), the steps themselves and any other event.
  :meth:`TimelineEvent.from_event_json` converts the switch's MQTT/WebSocket
  event JSON (ARCHITECTURE.md) and the contact trace record's timeline entries.
* ``ctrs`` — the run's contact trace records (``GET /api/contacts/{id}``),
  in creation order.
* ``errors`` — steps that failed (a ``wait_for`` that timed out, a 409 from
  the API …); they fail the scenario next to the assertions.

:func:`evaluate` returns one :class:`AssertionResult` per expectation:
``ok``, a ``message`` that names the party, what was expected and, on
failure, **what was heard instead** (found by trying every other known
sound: the manifest's prompts, the beep, the hold music and each party's
own sound), and :class:`Evidence` (expected window, where and how well the
expected item matched, the alternatives) for the report.

How sounds are found (all with :mod:`media.analysis`):

* prompts, text and WAV clips: :func:`~media.analysis.locate` (normalised
  cross-correlation) in the window; the score is the Pearson correlation;
* the beep and tones: :func:`~media.analysis.detect_tone`;
* hold music and a party's looped WAV: each 0.5 s of the window is located
  inside the (tiled) loop, so music restarted at any point still matches;
* silence: the loudest 100 ms of the window in dBFS; when something else
  was there, :func:`~media.analysis.classify` names it if nothing known did.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from media.analysis import classify, detect_tone, load_wav, locate
from media.prompts import DEFAULT_AUDIO_DIR, load_manifest, prompt_path, synthesise
from media.tones import write_wav
from telephony.center.config import InstanceConfig

from .scenario import (
    BannerExpect,
    BannersExpect,
    CtrExpect,
    HeardExpect,
    HeardSpec,
    NotHeardExpect,
    QualityExpect,
    Scenario,
    SilenceExpect,
    Sound,
    TwoWayExpect,
    Window,
    expect_kind,
    resolve_time,
)

__all__ = [
    "AssertionResult",
    "Detection",
    "Evidence",
    "Recording",
    "Reference",
    "RunRecord",
    "ScenarioResult",
    "SoundLibrary",
    "TimelineEvent",
    "evaluate",
]

RATE = 8000
Floats = npt.NDArray[np.float64]

# Defaults, chosen on G.711 round trips of the shipped audio (a clean prompt
# scores ~0.99, unrelated speech < 0.35, a prompt under hold music ~0.7).
CLIP_MIN_SCORE = 0.6
LOOP_MIN_SCORE = 0.5
TONE_MIN_DURATION = 0.25
DURING_MAX_GAP_S = 1.0  # "throughout": at most this much missing (edges, switching) ...
DURING_MAX_GAP_SHARE = 0.2  # ... and at most this share of the window
_CHUNK_S = 0.5  # loop presence is judged per half second
_FRAME_S = 0.1  # silence: loudest 100 ms


# -- the run record ---------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Recording:
    """What one party's phone heard, placed on the run's clock."""

    party: str
    samples: Floats
    rate: int = RATE
    start: float = 0.0  # run time of sample 0
    path: Path | None = None  # the WAV it came from, if any

    def __post_init__(self) -> None:
        raw = np.asarray(self.samples)
        if raw.ndim != 1:
            raise ValueError(f"{self.party}: a recording is mono, got shape {raw.shape}")
        if raw.dtype == np.int16:
            values = raw.astype(np.float64) / 32768.0
        else:
            values = raw.astype(np.float64)
        object.__setattr__(self, "samples", values)

    @classmethod
    def from_wav(
        cls, party: str, path: str | Path, start: float = 0.0, channel: int | None = None
    ) -> Recording:
        samples, rate = load_wav(path, channel)
        return cls(party, samples.astype(np.float64), rate, start, Path(path))

    @property
    def duration(self) -> float:
        return len(self.samples) / self.rate

    @property
    def end(self) -> float:
        return self.start + self.duration

    def between(self, t0: float, t1: float) -> tuple[Floats, float]:
        """Samples heard in run time [t0, t1) and the run time of the first one."""
        first = max(0, int(round((t0 - self.start) * self.rate)))
        last = min(len(self.samples), int(round((t1 - self.start) * self.rate)))
        if last <= first:
            return np.zeros(0), t0
        return self.samples[first:last], self.start + first / self.rate


@dataclass(frozen=True, slots=True)
class TimelineEvent:
    """One thing that happened at run time ``t``.

    ``kind`` is ``banner`` (``party``: the agent; ``data``: ``connection``,
    ``state``), ``prompt`` (``party``: to whom; ``data``: ``what``, ``end``),
    ``flowBlock`` (``data``: ``flow``, ``block``, ``blockType``), ``mark``
    (``text``: its name), ``step`` (``text``: the step as written), ``call``,
    ``error`` or an event's own ``type``.
    """

    t: float
    kind: str
    party: str | None = None
    text: str = ""
    data: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def banner(
        cls, t: float, agent: str, connection: str, state: str, **data: Any
    ) -> TimelineEvent:
        return cls(
            t,
            "banner",
            agent,
            f"{connection}: {state}",
            {"connection": connection, "state": state, **data},
        )

    @classmethod
    def prompt(cls, t: float, what: str, to: str, end: float | None = None) -> TimelineEvent:
        return cls(t, "prompt", to, what, {"what": what, "end": end})

    @classmethod
    def flow_block(
        cls, t: float, flow: str, block: str, block_type: str = "", party: str | None = None
    ) -> TimelineEvent:
        data = {"flow": flow, "block": block, "blockType": block_type}
        return cls(t, "flowBlock", party, f"{flow}: {block}", data)

    @classmethod
    def mark(cls, t: float, name: str) -> TimelineEvent:
        return cls(t, "mark", None, name)

    @classmethod
    def from_event_json(cls, event: Mapping[str, Any], started_at: float) -> TimelineEvent:
        """A switch event (MQTT/WebSocket JSON, or a CTR timeline entry) on the run's clock.

        ``at`` may be ISO 8601 or POSIX seconds; ``started_at`` is the run's t = 0.
        """
        kind = str(event.get("type") or event.get("kind") or "event")
        at = event.get("t", event.get("at"))
        t = _posix(at) - started_at if at is not None else 0.0
        if kind in ("banner", "connectionAdded"):
            # A new connection appears with its first banner (Incoming, or Connected for
            # a quick connect's third party: seed scenario 1, step 1).
            agent = event.get("agent")
            return cls.banner(
                t,
                str(agent) if agent is not None else "",
                str(event.get("party", "")),
                str(event.get("banner", "")),
                contact=event.get("contact"),
                previous=event.get("previous"),
            )
        if kind == "prompt":
            end = event.get("end")
            return cls.prompt(
                t,
                str(event.get("what", "")),
                str(event.get("to", "")),
                _posix(end) - started_at if end is not None else None,
            )
        if kind == "flowBlock":
            return cls.flow_block(
                t,
                str(event.get("flow", "")),
                str(event.get("block", "")),
                str(event.get("blockType", "")),
                event.get("party"),
            )
        party = event.get("agent") or event.get("party")
        data = {k: v for k, v in event.items() if k not in ("type", "kind", "at", "t")}
        return cls(t, kind, str(party) if party is not None else None, _describe(data), data)

    def to_json(self) -> dict[str, Any]:
        return {
            "t": self.t,
            "kind": self.kind,
            "party": self.party,
            "text": self.text,
            "data": dict(self.data),
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> TimelineEvent:
        return cls(
            float(obj["t"]),
            str(obj["kind"]),
            obj.get("party"),
            str(obj.get("text", "")),
            dict(obj.get("data", {})),
        )


def _posix(at: Any) -> float:
    if isinstance(at, int | float):
        return float(at)
    return datetime.fromisoformat(str(at).replace("Z", "+00:00")).timestamp()


def _describe(data: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in data.items() if v is not None and k != "contact")


@dataclass
class RunRecord:
    """Everything a run left behind that the assertions look at."""

    recordings: dict[str, Recording] = field(default_factory=dict)
    timeline: list[TimelineEvent] = field(default_factory=list)
    ctrs: list[dict[str, Any]] = field(default_factory=list)
    started_at: float = 0.0  # POSIX time of t = 0
    errors: list[str] = field(default_factory=list)

    def marks(self) -> dict[str, float]:
        return {e.text: e.t for e in self.timeline if e.kind == "mark"}

    @property
    def end(self) -> float:
        """The run's last instant: its last event or the end of its longest recording."""
        ends = [r.end for r in self.recordings.values()] + [e.t for e in self.timeline]
        return max(ends, default=0.0)

    def banners(self, agent: str, connection: str | None = None) -> list[TimelineEvent]:
        """Banner changes ``agent``'s CCP showed, in time order."""
        found = [
            e
            for e in self.timeline
            if e.kind == "banner"
            and e.party == agent
            and (connection is None or e.data.get("connection") == connection)
        ]
        return sorted(found, key=lambda e: e.t)

    def save(self, directory: str | Path) -> Path:
        """Write ``record.json`` and one WAV per recording into ``directory``."""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        recordings = {}
        for party, rec in self.recordings.items():
            name = f"{_file_stem(party)}.wav"
            pcm = np.clip(np.rint(rec.samples * 32767.0), -32768, 32767).astype(np.int16)
            write_wav(out / name, pcm, rec.rate)
            recordings[party] = {"file": name, "start": rec.start, "rate": rec.rate}
        doc = {
            "startedAt": self.started_at,
            "recordings": recordings,
            "timeline": [e.to_json() for e in self.timeline],
            "ctrs": self.ctrs,
            "errors": self.errors,
        }
        path = out / "record.json"
        path.write_text(json.dumps(doc, indent=2, default=str) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, directory: str | Path) -> RunRecord:
        base = Path(directory)
        doc = json.loads((base / "record.json").read_text(encoding="utf-8"))
        recordings = {
            party: Recording.from_wav(party, base / entry["file"], float(entry["start"]))
            for party, entry in doc["recordings"].items()
        }
        return cls(
            recordings,
            [TimelineEvent.from_json(e) for e in doc["timeline"]],
            list(doc["ctrs"]),
            float(doc["startedAt"]),
            list(doc["errors"]),
        )


def _file_stem(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "party"


# -- results -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Detection:
    """Something found in a recording: a label, run time, score (correlation; None for
    tones, which have a duration instead) and end."""

    label: str
    at: float
    score: float | None = None
    end: float | None = None

    def describe(self) -> str:
        span = f"{self.at:.1f}-{self.end:.1f} s" if self.end is not None else f"{self.at:.1f} s"
        if self.score is None:
            return f"{self.label} ({span})"
        return f"{self.label} ({self.score:.2f} at {span})"

    def to_json(self) -> dict[str, Any]:
        return {"label": self.label, "at": self.at, "score": self.score, "end": self.end}


@dataclass(frozen=True, slots=True)
class Evidence:
    """What an assertion looked at and found (shown in the report, JSON in results)."""

    party: str | None = None
    expected: str = ""
    window: tuple[float, float] | None = None
    found: Detection | None = None  # the best match of what was expected, even if too weak
    threshold: float | None = None
    heard_instead: tuple[Detection, ...] = ()
    details: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "party": self.party,
            "expected": self.expected,
            "window": list(self.window) if self.window is not None else None,
            "found": self.found.to_json() if self.found is not None else None,
            "threshold": self.threshold,
            "heardInstead": [d.to_json() for d in self.heard_instead],
            "details": _jsonable(self.details),
        }


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, float | int | str | bool) or value is None:
        return value
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


@dataclass(frozen=True, slots=True)
class AssertionResult:
    ok: bool
    message: str
    evidence: Evidence = field(default_factory=Evidence)
    kind: str = ""  # heard, not_heard, silence, two_way, banner, banners, ctr, quality
    title: str = ""  # the expectation in words
    line: int | None = None  # where it is written in the scenario file

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "kind": self.kind,
            "title": self.title,
            "line": self.line,
            "message": self.message,
            "evidence": self.evidence.to_json(),
        }


@dataclass
class ScenarioResult:
    """One scenario's run: what the report and JUnit XML are made of."""

    scenario: Scenario
    record: RunRecord
    results: list[AssertionResult]
    duration: float = 0.0  # wall-clock seconds the run took
    error: str | None = None  # the run could not complete (it still has a record)

    @property
    def ok(self) -> bool:
        return self.error is None and not self.record.errors and all(r.ok for r in self.results)

    @property
    def file(self) -> str:
        source = self.scenario.source
        return str(source) if source is not None else self.scenario.name


# -- sounds ------------------------------------------------------------------------------------

RefKind = Literal["clip", "loop", "tone", "beep"]


@dataclass(frozen=True, eq=False)
class Reference:
    """A sound to look for: a clip (prompt, WAV), a loop (music, a party's looped WAV),
    a steady tone or a beep (a short tone burst)."""

    label: str
    kind: RefKind
    samples: Floats | None = None
    freq: float | None = None
    seconds: float = 0.0

    @cached_property
    def tiled(self) -> Floats:
        """A loop long enough to hold any chunk at any phase of it."""
        assert self.samples is not None
        # One loop plus a chunk's worth wrapped around: every phase is there, and the FFT
        # stays as short as it can be.
        tiled: Floats = np.resize(self.samples, len(self.samples) + int(_CHUNK_S * RATE) * 2)
        return tiled

    @cached_property
    def coarse(self) -> Floats:
        """:attr:`tiled` at a quarter of the rate, for a fast first search."""
        return _decimate(self.tiled)


_DECIMATE = 4


def _decimate(x: Floats) -> Floats:
    """Average each 4 samples: a crude low-pass and downsample, enough to find a loop's
    phase (music lives below 2 kHz) before the exact search at the full rate."""
    usable = len(x) - len(x) % _DECIMATE
    out: Floats = x[:usable].reshape(-1, _DECIMATE).mean(axis=1)
    return out


def _read(path: Path) -> Floats:
    samples, rate = load_wav(path)
    data = samples.astype(np.float64)
    if rate != RATE:
        # Linear interpolation is enough to match 8 kHz telephone audio by correlation.
        count = int(round(len(data) * RATE / rate))
        data = np.interp(np.arange(count) * rate / RATE, np.arange(len(data)), data)
    return data


def _normalise_text(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text).split()).casefold()


class SoundLibrary:
    """Every sound an assertion can name, loaded once per run.

    Prompts resolve against the instance config first (its own prompts: text,
    WAV or tone) and then the shipped manifest (``media/audio``). Text not in
    the manifest is synthesised into ``cache_dir`` (needs espeak-ng), as the
    switch does.
    """

    def __init__(
        self,
        config: InstanceConfig | None = None,
        *,
        audio_dir: Path = DEFAULT_AUDIO_DIR,
        cache_dir: Path | None = None,
    ) -> None:
        self.config = config
        self.audio_dir = Path(audio_dir)
        self.cache_dir = cache_dir
        self.manifest = load_manifest(self.audio_dir)
        beep = self.manifest.get("beep", {})
        self.beep_freq = float(beep.get("frequency_hz", 1000.0))
        self.beep_seconds = float(beep.get("ms", 200.0)) / 1000.0
        self._cache: dict[str, Reference] = {}

    def _clip(self, label: str, path: Path) -> Reference:
        key = f"clip:{path}"
        if key not in self._cache:
            samples = _read(path)
            self._cache[key] = Reference(label, "clip", samples, seconds=len(samples) / RATE)
        found = self._cache[key]
        return (
            found
            if found.label == label
            else Reference(label, "clip", found.samples, seconds=found.seconds)
        )

    def beep(self) -> Reference:
        clip = self._clip("beep", prompt_path("beep", self.audio_dir))
        return Reference("beep", "beep", clip.samples, self.beep_freq, self.beep_seconds)

    def music(self) -> Reference:
        key = "music"
        if key not in self._cache:
            samples = _read(prompt_path("hold_music", self.audio_dir))
            self._cache[key] = Reference("hold music", "loop", samples, seconds=len(samples) / RATE)
        return self._cache[key]

    def tone(self, freq: float, label: str | None = None) -> Reference:
        return Reference(label or f"{freq:g} Hz tone", "tone", freq=freq)

    def prompt(self, name: str) -> Reference:
        """The prompt ``name``: a config prompt (name, id, ARN) or a manifest entry."""
        if self.config is not None:
            found = self.config.prompt(name)
            if found is not None:
                pname, prompt = found
                if prompt.tone == "beep":
                    return self.beep()
                if prompt.tone == "music":
                    return self.music()
                if prompt.wav is not None:
                    path = self.config.prompt_path(prompt)
                    assert path is not None
                    return self._clip(f"prompt {pname!r}", path)
                assert prompt.text is not None
                return self.text(prompt.text, label=f"prompt {pname!r}")
        folded = {key.casefold(): key for key in self.manifest}
        key = folded.get(name.casefold())
        if key == "beep":
            return self.beep()
        if key == "hold_music":
            return self.music()
        if key is None:
            raise KeyError(f"unknown prompt {name!r}")
        return self._clip(f"prompt {key!r}", self.audio_dir / str(self.manifest[key]["file"]))

    def text(self, text: str, label: str | None = None) -> Reference:
        """Speech for ``text``: the shipped prompt with that text, else synthesised."""
        label = label or f"text {text!r}"
        wanted = _normalise_text(text)
        for entry in self.manifest.values():
            if entry.get("text") and _normalise_text(str(entry["text"])) == wanted:
                return self._clip(label, self.audio_dir / str(entry["file"]))
        if self.cache_dir is None:
            raise KeyError(f"no shipped prompt says {text!r} (give a cache_dir to synthesise)")
        path = self.cache_dir / f"tts-{hashlib.sha256(wanted.encode()).hexdigest()[:16]}.wav"
        if not path.exists():
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            synthesise(text, path)
        return self._clip(label, path)

    def wav(self, path: Path, label: str | None = None) -> Reference:
        return self._clip(label or f"WAV {path.name}", path)

    def sound(self, sound: Sound, label: str, base: Scenario | None = None) -> Reference:
        """What a party plays, as something to listen for (its WAV/prompt is looped)."""
        if sound.tone is not None:
            return self.tone(sound.tone, f"{label} ({sound.tone:g} Hz tone)")
        if sound.prompt is not None:
            clip = self.prompt(sound.prompt)
        else:
            assert sound.wav is not None
            path = base.resolve_path(sound.wav) if base is not None else Path(sound.wav)
            clip = self.wav(path)
        if clip.kind != "clip":
            return Reference(label, clip.kind, clip.samples, clip.freq, clip.seconds)
        return Reference(f"{label} ({clip.label})", "loop", clip.samples, seconds=clip.seconds)

    def candidates(self) -> list[Reference]:
        """Every shipped sound, for "heard instead": prompts, the beep, the hold music."""
        found = []
        for name, entry in sorted(self.manifest.items()):
            if name in ("beep", "hold_music") or not entry.get("file"):
                continue
            try:
                found.append(self._clip(f"prompt {name!r}", self.audio_dir / str(entry["file"])))
            except (OSError, ValueError):
                continue
        if self.config is not None:
            for name, prompt in self.config.prompts.items():
                if prompt.wav is not None:
                    path = self.config.prompt_path(prompt)
                    if path is not None and path.is_file():
                        found.append(self._clip(f"prompt {name!r}", path))
        found.append(self.beep())
        found.append(self.music())
        return found


# -- finding sounds in a window ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Search:
    """What a search of one reference in one window found."""

    found: list[Detection]  # occurrences good enough to count
    best: Detection | None  # the strongest candidate, even a weak one
    coverage: float  # share of the window the sound is present in (continuous sounds)


def _level_ok(x: Floats) -> bool:
    return bool(len(x)) and float(np.mean(x * x)) > 1e-9


def _search(
    ref: Reference,
    rec: Recording,
    t0: float,
    t1: float,
    *,
    min_score: float | None = None,
    min_duration: float | None = None,
    inside: bool = False,
) -> _Search:
    """Look for ``ref`` in ``rec`` between run times ``t0`` and ``t1``.

    A clip counts when it *starts* in the window (``inside``: lies entirely in
    it); tones, beeps and loops count wherever they overlap it.
    """
    span = max(t1 - t0, 1e-9)
    if ref.kind == "clip":
        assert ref.samples is not None
        seg, seg_t = rec.between(t0, t1 if inside else t1 + ref.seconds)
        if len(seg) < RATE * 0.05 or not _level_ok(seg):
            return _Search([], None, 0.0)
        match = locate(ref.samples, seg, rec.rate)
        at = seg_t + match.offset_s
        best = Detection(ref.label, at, match.score, at + ref.seconds)
        ok = match.score >= (min_score if min_score is not None else CLIP_MIN_SCORE)
        return _Search([best] if ok else [], best, 1.0 if ok else 0.0)
    seg, seg_t = rec.between(t0, t1)
    if len(seg) == 0:
        return _Search([], None, 0.0)
    if ref.kind in ("tone", "beep"):
        assert ref.freq is not None
        if ref.kind == "beep":
            shortest = min_duration if min_duration is not None else 0.6 * ref.seconds
        else:
            shortest = min_duration if min_duration is not None else TONE_MIN_DURATION
        found = []
        for start, end in detect_tone(seg, rec.rate, ref.freq, shortest):
            score = None
            if ref.kind == "beep":
                # A burst, not a steady tone; its correlation with the beep is the evidence.
                if end - start > max(3 * ref.seconds, ref.seconds + 0.3):
                    continue
                assert ref.samples is not None
                around, _ = rec.between(seg_t + start - 0.05, seg_t + end + 0.05)
                score = locate(ref.samples, around, rec.rate).score if len(around) else None
            found.append(Detection(ref.label, seg_t + start, score, seg_t + end))
        covered = sum(d.end - d.at for d in found if d.end is not None)
        return _Search(found, found[0] if found else None, min(1.0, covered / span))
    # A loop: place each half second of the window inside the tiled loop.
    threshold = min_score if min_score is not None else LOOP_MIN_SCORE
    size = int(_CHUNK_S * rec.rate)
    scores: list[tuple[float, float, float]] = []  # (start, end, score)
    loop_len = len(ref.samples) if ref.samples is not None else 0
    expected_lag: int | None = None  # where in the loop the next chunk should be
    for begin in range(0, len(seg), size):
        chunk = seg[begin : begin + size]
        if len(chunk) < size // 2:
            break
        score = 0.0
        if _level_ok(chunk):
            # Music plays on: try where the last chunk left off before a full search.
            hit = _score_near(chunk, ref.tiled, expected_lag) if expected_lag is not None else None
            if hit is None or hit[1] < threshold:
                # Coarse search at a quarter of the rate (16x less work), then refine
                # around the coarse lag at the full rate.
                match = locate(_decimate(chunk), ref.coarse, rec.rate // _DECIMATE)
                lag = int(round(match.offset_s * rec.rate))
                hit = (lag, match.score)
                if match.score >= 0.5 * threshold:
                    hit = _score_near(chunk, ref.tiled, lag, radius=2 * _DECIMATE) or hit
            lag, score = hit
            expected_lag = (lag + len(chunk)) % loop_len if score >= threshold else None
        else:
            expected_lag = None
        scores.append((seg_t + begin / rec.rate, seg_t + (begin + len(chunk)) / rec.rate, score))
    found = []
    run: list[tuple[float, float, float]] = []
    for item in [*scores, (0.0, 0.0, -1.0)]:
        if item[2] >= threshold:
            run.append(item)
        elif run:
            mean = sum(s for _, _, s in run) / len(run)
            found.append(Detection(ref.label, run[0][0], mean, run[-1][1]))
            run = []
    strongest: Detection | None = None
    if scores:
        start, end, score = max(scores, key=lambda item: item[2])
        strongest = Detection(ref.label, start, score, end)
    covered = sum(d.end - d.at for d in found if d.end is not None)
    return _Search(found, strongest, min(1.0, covered / span))


def _score_near(
    chunk: Floats, tiled: Floats, lag: int, radius: int = 160
) -> tuple[int, float] | None:
    """Best Pearson correlation of ``chunk`` with ``tiled`` at lags ``lag ± radius``
    (a short direct search, for a loop expected to continue where it was)."""
    n = len(chunk)
    lo, hi = max(0, lag - radius), min(len(tiled) - n, lag + radius)
    if hi < lo:
        return None
    windows = np.lib.stride_tricks.sliding_window_view(tiled[lo : hi + n], n)
    centred = chunk - chunk.mean()
    norm = float(np.linalg.norm(centred))
    w_centred = windows - windows.mean(axis=1, keepdims=True)
    w_norm = np.linalg.norm(w_centred, axis=1)
    if norm == 0.0:
        return None
    scores = (w_centred @ centred) / np.maximum(w_norm * norm, 1e-12)
    best = int(np.argmax(scores))
    return lo + best, float(scores[best])


def _strength(d: Detection) -> float:
    if d.score is not None:
        return d.score
    return 0.9 + min(0.09, (d.end or d.at) - d.at)  # a tone found is as sure as a good match


def _heard_instead(
    rec: Recording,
    t0: float,
    t1: float,
    candidates: Iterable[Reference],
    exclude: str,
    limit: int = 3,
) -> tuple[Detection, ...]:
    """Which other known sounds are in the window, strongest first."""
    found = []
    for ref in candidates:
        if ref.label == exclude:
            continue
        result = _search(ref, rec, t0, t1)
        if result.found:
            found.append(max(result.found, key=_strength))
    found.sort(key=_strength, reverse=True)
    return tuple(found[:limit])


def _what_it_was(rec: Recording, t0: float, t1: float) -> str:
    """A listener's description of the window when no known sound is in it."""
    seg, seg_t = rec.between(t0, t1)
    if len(seg) == 0:
        return "nothing (no recording)"
    parts = [
        f"{label} {seg_t + a:.1f}-{seg_t + b:.1f} s"
        for label, a, b in classify(seg, rec.rate)
        if label != "silence"
    ]
    return ", ".join(parts[:4]) if parts else "silence"


def _instead_text(found: Sequence[Detection], rec: Recording, t0: float, t1: float) -> str:
    if found:
        return "; ".join(d.describe() for d in found)
    return _what_it_was(rec, t0, t1)


# -- evaluating expectations -------------------------------------------------------------------


class _Context:
    def __init__(self, scenario: Scenario, record: RunRecord, library: SoundLibrary) -> None:
        self.scenario = scenario
        self.record = record
        self.library = library
        self.marks = record.marks()
        self.end = record.end
        self._voices: dict[str, Reference] = {}

    def time(self, value: float | str) -> float:
        try:
            return resolve_time(value, self.marks, self.end)
        except KeyError as exc:
            raise _Unreached(str(exc.args[0])) from None

    def window(self, window: Window | None, rec: Recording | None) -> tuple[float, float]:
        if window is None:
            if rec is None:
                return 0.0, self.end
            return rec.start, rec.end
        return self.time(window[0]), self.time(window[1])

    def voice(self, party: str) -> Reference:
        if party not in self._voices:
            sound = self.scenario.parties[party].plays
            assert sound is not None  # load_scenario checked it
            self._voices[party] = self.library.sound(sound, party, self.scenario)
        return self._voices[party]

    def reference(self, spec: HeardSpec) -> Reference:
        kind, value = spec.item
        if kind == "prompt":
            return self.library.prompt(str(value))
        if kind == "text":
            return self.library.text(str(value))
        if kind == "wav":
            return self.library.wav(self.scenario.resolve_path(str(value)))
        if kind == "beep":
            return self.library.beep()
        if kind == "music":
            return self.library.music()
        if kind == "tone":
            return self.library.tone(float(value))
        return self.voice(str(value))

    def candidates(self, listener: str) -> list[Reference]:
        voices = [
            self.voice(name)
            for name, party in self.scenario.parties.items()
            if name != listener and party.plays is not None
        ]
        return self.library.candidates() + voices


class _Unreached(Exception):
    """A window names a mark the run never reached."""


def _window_text(window: tuple[float, float] | None, during: bool) -> str:
    if window is None:
        return "in the recording"
    return f"{'throughout' if during else 'within'} {window[0]:.1f}-{window[1]:.1f} s"


def _spec_window_text(spec_window: Window | None, word: str) -> str:
    if spec_window is None:
        return ""
    return f" {word} [{spec_window[0]}, {spec_window[1]}]"


def _check_heard(ctx: _Context, spec: HeardSpec, negate: bool) -> AssertionResult:
    party = spec.party
    ref = ctx.reference(spec)
    during = spec.during is not None
    rec = ctx.record.recordings.get(party)
    if rec is None:
        if negate:
            return AssertionResult(
                True, f"{party} heard nothing at all (no recording)", Evidence(party, ref.label)
            )
        return AssertionResult(
            False,
            f"{party}: expected {ref.label}; no recording (the phone never heard anything)",
            Evidence(party, ref.label),
        )
    t0, t1 = ctx.window(spec.during if during else spec.within, rec)
    window = (t0, t1)
    shown = window if (spec.within or spec.during) else None
    result = _search(
        ref,
        rec,
        t0,
        t1,
        min_score=spec.min_score,
        min_duration=spec.min_duration,
        inside=during,
    )
    threshold = spec.min_score
    if threshold is None:
        threshold = CLIP_MIN_SCORE if ref.kind == "clip" else LOOP_MIN_SCORE
    coverage_needed = _needed_coverage(spec.min_coverage, t1 - t0)
    if during and ref.kind != "clip":
        present = result.coverage >= coverage_needed
    else:
        present = bool(result.found)
    details: dict[str, Any] = {"coverage": round(result.coverage, 3), "kind": ref.kind}
    if during and ref.kind != "clip":
        details["minCoverage"] = coverage_needed
    if negate:
        found_any = bool(result.found)
        evidence = Evidence(
            party,
            ref.label,
            window,
            result.found[0] if result.found else result.best,
            threshold,
            details=details,
        )
        if not found_any:
            best = f"; best match {_found_text(result.best)}" if result.best is not None else ""
            return AssertionResult(
                True,
                f"{party} did not hear {ref.label} {_window_text(shown, False)}{best}",
                evidence,
            )
        spans = "; ".join(d.describe() for d in result.found[:3])
        return AssertionResult(
            False,
            f"{party}: expected not to hear {ref.label} {_window_text(shown, during)}; "
            f"heard it: {spans}",
            evidence,
        )
    if present:
        shown_found = result.found[0] if result.found else result.best
        where = shown_found.describe() if shown_found is not None else ""
        if during and ref.kind != "clip":
            where += f", present {result.coverage:.0%} of the window"
        return AssertionResult(
            True,
            f"{party} heard {ref.label} {_window_text(shown, during)}: {where}",
            Evidence(party, ref.label, window, shown_found, threshold, details=details),
        )
    g0, g1 = _largest_gap(t0, t1, result.found) if during and ref.kind != "clip" else (t0, t1)
    instead = _heard_instead(rec, g0, g1, ctx.candidates(party), ref.label)
    if during and ref.kind != "clip" and result.found:
        best_text = f"present only {result.coverage:.0%} of the window"
        best_text += " (" + ", ".join(d.describe() for d in result.found[:3]) + ")"
    elif result.best is not None:
        best_text = f"best match {_found_text(result.best)}"
    else:
        best_text = "not found"
    return AssertionResult(
        False,
        f"{party}: expected {ref.label} {_window_text(shown, during)}; {best_text}; "
        f"heard instead: {_instead_text(instead, rec, g0, g1)}",
        Evidence(party, ref.label, window, result.best, threshold, instead, details),
    )


def _largest_gap(t0: float, t1: float, found: Sequence[Detection]) -> tuple[float, float]:
    """The longest stretch of [t0, t1] none of ``found`` covers (where to ask what
    was heard instead of a sound that was there only part of the time)."""
    best = (t0, t0)
    cursor = t0
    for d in sorted(found, key=lambda d: d.at):
        if d.at - cursor > best[1] - best[0]:
            best = (cursor, d.at)
        cursor = max(cursor, d.end if d.end is not None else d.at)
    if t1 - cursor > best[1] - best[0]:
        best = (cursor, t1)
    return best if best[1] > best[0] else (t0, t1)


def _needed_coverage(given: float | None, span: float) -> float:
    """Share of a ``during`` window a continuous sound must fill."""
    if given is not None:
        return given
    if span <= 0:
        return 1.0
    return 1.0 - min(DURING_MAX_GAP_S / span, DURING_MAX_GAP_SHARE)


def _found_text(d: Detection | None) -> str:
    if d is None:
        return "none"
    if d.score is None:
        return f"at {d.at:.1f} s"
    return f"{d.score:.2f} at {d.at:.1f} s"


def _level_db(x: Floats) -> float:
    power = float(np.mean(x * x)) if len(x) else 0.0
    return 10.0 * math.log10(power) if power > 1e-12 else -120.0


def _check_silence(ctx: _Context, expect: SilenceExpect) -> AssertionResult:
    spec = expect.silence
    party = spec.party
    rec = ctx.record.recordings.get(party)
    if rec is None:
        return AssertionResult(
            True, f"{party} heard nothing at all (no recording)", Evidence(party, "silence")
        )
    t0, t1 = ctx.window(spec.during, rec)
    seg, seg_t = rec.between(t0, t1)
    size = int(_FRAME_S * rec.rate)
    levels = [
        (_level_db(seg[i : i + size]), seg_t + i / rec.rate) for i in range(0, len(seg), size)
    ]
    loudest, at = max(levels, default=(-120.0, t0))
    details = {"loudestDb": round(loudest, 1), "maxLevelDb": spec.max_level_db}
    window = (t0, t1)
    if loudest <= spec.max_level_db:
        return AssertionResult(
            True,
            f"{party} heard silence {_window_text(window, True)} (loudest {loudest:.1f} dBFS)",
            Evidence(party, "silence", window, details=details),
        )
    instead = _heard_instead(rec, t0, t1, ctx.candidates(party), "")
    return AssertionResult(
        False,
        f"{party}: expected silence {_window_text(window, True)}; loudest {loudest:.1f} dBFS "
        f"at {at:.1f} s (limit {spec.max_level_db:g}); heard instead: "
        f"{_instead_text(instead, rec, t0, t1)}",
        Evidence(party, "silence", window, Detection("loudest", at, None), None, instead, details),
    )


def _check_two_way(ctx: _Context, expect: TwoWayExpect) -> AssertionResult:
    a, b = expect.two_way
    need = 0.0  # set once the window is known
    rec_a, rec_b = ctx.record.recordings.get(a), ctx.record.recordings.get(b)
    if rec_a is None or rec_b is None:
        missing = a if rec_a is None else b
        return AssertionResult(
            False, f"{a}<->{b}: {missing} has no recording", Evidence(a, f"two-way {a}<->{b}")
        )
    if expect.during is not None:
        t0, t1 = ctx.window(expect.during, None)
    else:
        t0, t1 = max(rec_a.start, rec_b.start), min(rec_a.end, rec_b.end)
    window = (t0, t1)
    need = _needed_coverage(expect.min_coverage, t1 - t0)
    parts = []
    ok = True
    details: dict[str, Any] = {"minCoverage": round(need, 3)}
    instead: list[Detection] = []
    best: Detection | None = None
    for listener, talker, rec in ((a, b, rec_a), (b, a, rec_b)):
        ref = ctx.voice(talker)
        result = _search(ref, rec, t0, t1)
        details[f"{listener}Heard{talker.capitalize()}"] = round(result.coverage, 3)
        good = result.coverage >= need
        ok = ok and good
        parts.append(f"{listener} heard {talker} {result.coverage:.0%} of the window")
        if not good:
            also = _heard_instead(rec, t0, t1, ctx.candidates(listener), ref.label)
            parts[-1] += f" (heard instead: {_instead_text(also, rec, t0, t1)})"
            instead.extend(also)
        if best is None and result.best is not None:
            best = result.best
    text = "; ".join(parts)
    evidence = Evidence(a, f"two-way {a}<->{b}", window, best, need, tuple(instead), details)
    if ok:
        return AssertionResult(
            True, f"{a}<->{b} two-way {_window_text(window, True)}: {text}", evidence
        )
    return AssertionResult(
        False,
        f"{a}<->{b}: expected two-way audio {_window_text(window, True)} "
        f"(each hears the other {need:.0%} of the time); {text}",
        evidence,
    )


def _banner_list(events: Sequence[TimelineEvent], with_connection: bool = False) -> str:
    if not events:
        return "no banners"
    items = []
    for e in events:
        state = str(e.data.get("state"))
        label = f"{e.data.get('connection')}: {state}" if with_connection else state
        items.append(f"{label} ({e.t:.1f} s)")
    return ", ".join(items)


def _check_banner(ctx: _Context, expect: BannerExpect) -> AssertionResult:
    spec = expect.banner
    events = ctx.record.banners(spec.agent, spec.connection)
    want = f"banner {spec.connection}: {spec.state}"
    evidence_base = {"seen": [(e.t, e.data.get("state")) for e in events]}
    if spec.at is not None:
        at = ctx.time(spec.at)
        before = [e for e in events if e.t <= at]
        state = before[-1].data.get("state") if before else None
        evidence = Evidence(spec.agent, want, (at, at), None, details=evidence_base)
        if state == spec.state:
            return AssertionResult(True, f"{spec.agent}'s CCP read {want} at {at:.1f} s", evidence)
        return AssertionResult(
            False,
            f"{spec.agent}: expected {want} at {at:.1f} s; it read {state or 'nothing'}; "
            f"{spec.connection} showed: {_banner_list(events)}",
            evidence,
        )
    if spec.within is not None:
        t0, t1 = ctx.window(spec.within, None)
    else:
        t0, t1 = 0.0, math.inf
    hits = [e for e in events if e.data.get("state") == spec.state and t0 <= e.t <= t1]
    window = (t0, t1) if spec.within is not None else None
    if hits:
        found = Detection(want, hits[0].t)
        return AssertionResult(
            True,
            f"{spec.agent}'s CCP showed {want} at {hits[0].t:.1f} s",
            Evidence(spec.agent, want, window, found, details=evidence_base),
        )
    if events:
        seen = f"{spec.connection} showed: {_banner_list(events)}"
    else:
        others = ctx.record.banners(spec.agent)
        seen = f"no banner for {spec.connection!r}; the CCP showed: {_banner_list(others, True)}"
    return AssertionResult(
        False,
        f"{spec.agent}: expected {want} {_window_text(window, False) if window else ''}".rstrip()
        + f"; {seen}",
        Evidence(spec.agent, want, window, None, details=evidence_base),
    )


def _subsequence(want: Sequence[str], seen: Sequence[str]) -> int:
    """How many of ``want`` appear in order in ``seen``."""
    matched = 0
    for state in seen:
        if matched < len(want) and state == want[matched]:
            matched += 1
    return matched


def _check_banners(ctx: _Context, expect: BannersExpect) -> AssertionResult:
    problems = []
    good = []
    details: dict[str, Any] = {}
    for agent, spec in expect.banners.items():
        per_connection = spec.items() if isinstance(spec, dict) else [(None, spec)]
        for connection, want in per_connection:
            events = ctx.record.banners(agent, connection)
            seen = [str(e.data.get("state")) for e in events]
            who = f"{agent}" + (f" {connection}" if connection else "")
            details[who] = seen
            matched = _subsequence(want, seen)
            arrow = " → ".join(want)
            if matched == len(want):
                good.append(f"{who}: {arrow}")
            else:
                problems.append(
                    f"{who}: expected banners {arrow}; saw "
                    f"{' → '.join(seen) if seen else 'none'} (missing {want[matched]!r} "
                    f"after {' → '.join(want[:matched]) or 'the start'})"
                )
    party = next(iter(expect.banners))
    evidence = Evidence(party, "banner sequence", details=details)
    if problems:
        return AssertionResult(False, "; ".join(problems), evidence)
    return AssertionResult(True, "banners in order: " + "; ".join(good), evidence)


_PATH_PART = re.compile(r"([^.\[\]]+)|\[(\d+|\*|-\d+)\]")


def _lookup(doc: Any, path: str) -> list[Any]:
    """Values at a dotted path (``transfers[0].endpoint``, ``prompts[*].what``)."""
    values = [doc]
    for name, index in _PATH_PART.findall(path):
        nxt: list[Any] = []
        for value in values:
            if name:
                if isinstance(value, Mapping) and name in value:
                    nxt.append(value[name])
            elif isinstance(value, list):
                if index == "*":
                    nxt.extend(value)
                elif -len(value) <= int(index) < len(value):
                    nxt.append(value[int(index)])
        values = nxt
    return values


def _compare(found: list[Any], wanted: Any, wildcard: bool) -> bool:
    value: Any = found if wildcard else (found[0] if found else None)
    if isinstance(wanted, Mapping) and len(wanted) == 1:
        ((op, arg),) = wanted.items()
        try:
            if op == "gte":
                return bool(value >= arg)
            if op == "lte":
                return bool(value <= arg)
            if op == "gt":
                return bool(value > arg)
            if op == "lt":
                return bool(value < arg)
            if op == "contains":
                return arg in value if value is not None else False
            if op == "len":
                return value is not None and len(value) == arg
        except TypeError:
            return False
    if not found:
        return False
    return bool(value == wanted)


def _check_ctr(ctx: _Context, expect: CtrExpect) -> AssertionResult:
    ctrs = ctx.record.ctrs
    which = f"ctr[{expect.record}]"
    if not -len(ctrs) <= expect.record < len(ctrs):
        return AssertionResult(
            False,
            f"{which}: expected a contact trace record; the run has {len(ctrs)}",
            Evidence(None, which),
        )
    doc = ctrs[expect.record]
    bad, good = [], []
    details: dict[str, Any] = {}
    for path, wanted in expect.ctr.items():
        found = _lookup(doc, path)
        wildcard = "[*]" in path
        shown = found if wildcard else (found[0] if found else "nothing")
        details[path] = shown
        if _compare(found, wanted, wildcard):
            good.append(f"{path} = {shown!r}")
        else:
            bad.append(f"{path}: expected {wanted!r}, found {shown!r}")
    evidence = Evidence(None, which, details=details)
    if bad:
        return AssertionResult(False, f"{which}: " + "; ".join(bad), evidence)
    return AssertionResult(True, f"{which}: " + ", ".join(good), evidence)


def _check_quality(ctx: _Context, expect: QualityExpect) -> AssertionResult:
    spec = expect.quality
    party = spec.party
    if spec.prompt is not None:
        ref = ctx.library.prompt(spec.prompt)
    elif spec.text is not None:
        ref = ctx.library.text(spec.text)
    else:
        assert spec.wav is not None
        ref = ctx.library.wav(ctx.scenario.resolve_path(spec.wav))
    rec = ctx.record.recordings.get(party)
    if rec is None or ref.kind != "clip" or ref.samples is None:
        return AssertionResult(
            False, f"{party}: no recording to measure {ref.label} in", Evidence(party, ref.label)
        )
    t0, t1 = ctx.window(spec.within, rec)
    result = _search(ref, rec, t0, t1, min_score=spec.min_score)
    threshold = spec.min_score if spec.min_score is not None else CLIP_MIN_SCORE
    if result.best is None:
        return AssertionResult(
            False,
            f"{party}: {ref.label} not found {_window_text((t0, t1), False)}",
            Evidence(party, ref.label, (t0, t1)),
        )
    heard, _ = rec.between(result.best.at, result.best.at + ref.seconds)
    r = ref.samples[: len(heard)]
    gain = float(np.dot(heard, r) / max(np.dot(r, r), 1e-12))
    residual = heard - gain * r
    snr = 10 * math.log10(
        max(float(np.dot(gain * r, gain * r)), 1e-12)
        / max(float(np.dot(residual, residual)), 1e-12)
    )
    level = _level_db(heard)
    score = result.best.score or 0.0
    details = {"snrDb": round(snr, 1), "levelDb": round(level, 1), "gain": round(gain, 3)}
    bad = []
    if score < threshold:
        bad.append(f"correlation {score:.2f} < {threshold:g}")
    if spec.min_snr_db is not None and snr < spec.min_snr_db:
        bad.append(f"SNR {snr:.1f} dB < {spec.min_snr_db:g} dB")
    if spec.min_level_db is not None and level < spec.min_level_db:
        bad.append(f"level {level:.1f} dBFS < {spec.min_level_db:g}")
    if spec.max_level_db is not None and level > spec.max_level_db:
        bad.append(f"level {level:.1f} dBFS > {spec.max_level_db:g}")
    evidence = Evidence(party, ref.label, (t0, t1), result.best, threshold, details=details)
    measured = f"correlation {score:.2f}, SNR {snr:.1f} dB, level {level:.1f} dBFS at {result.best.at:.1f} s"
    if bad:
        return AssertionResult(
            False, f"{party}: {ref.label} quality: {', '.join(bad)} ({measured})", evidence
        )
    return AssertionResult(True, f"{party} heard {ref.label} with {measured}", evidence)


def describe_expect(expect: Any) -> str:
    """An expectation in words (the report's and JUnit's test name)."""
    name = getattr(expect, "name", None)
    if name:
        return str(name)
    if isinstance(expect, HeardExpect | NotHeardExpect):
        spec = expect.heard if isinstance(expect, HeardExpect) else expect.not_heard
        kind, value = spec.item
        verb = "hears" if isinstance(expect, HeardExpect) else "does not hear"
        what = {"beep": "the beep", "music": "hold music"}.get(
            kind, f"{kind} {value!r}" if kind != "voice" else str(value)
        )
        if kind == "tone":
            what = f"a {value:g} Hz tone"
        window = _spec_window_text(spec.within, "within") + _spec_window_text(spec.during, "during")
        return f"{spec.party} {verb} {what}{window}"
    if isinstance(expect, SilenceExpect):
        return f"{expect.silence.party} hears silence" + _spec_window_text(
            expect.silence.during, "during"
        )
    if isinstance(expect, TwoWayExpect):
        a, b = expect.two_way
        return f"{a} and {b} hear each other" + _spec_window_text(expect.during, "during")
    if isinstance(expect, BannerExpect):
        spec_b = expect.banner
        when = (
            f" at {spec_b.at}"
            if spec_b.at is not None
            else _spec_window_text(spec_b.within, "within")
        )
        return f"{spec_b.agent}'s CCP shows {spec_b.connection}: {spec_b.state}{when}"
    if isinstance(expect, BannersExpect):
        return "banner sequence of " + ", ".join(expect.banners)
    if isinstance(expect, CtrExpect):
        return f"contact trace record {expect.record}: " + ", ".join(expect.ctr)
    if isinstance(expect, QualityExpect):
        spec_q = expect.quality
        clip = spec_q.prompt or spec_q.text or spec_q.wav
        return f"{spec_q.party} hears {clip!r} clearly"
    return expect_kind(expect)


def check(
    expect: Any, scenario: Scenario, record: RunRecord, library: SoundLibrary | None = None
) -> AssertionResult:
    """Evaluate one expectation of ``scenario`` against ``record``."""
    lib = library if library is not None else SoundLibrary(scenario.instance_config)
    return _check(_Context(scenario, record, lib), expect)


def _check(ctx: _Context, expect: Any) -> AssertionResult:
    try:
        if isinstance(expect, HeardExpect):
            return _check_heard(ctx, expect.heard, negate=False)
        if isinstance(expect, NotHeardExpect):
            return _check_heard(ctx, expect.not_heard, negate=True)
        if isinstance(expect, SilenceExpect):
            return _check_silence(ctx, expect)
        if isinstance(expect, TwoWayExpect):
            return _check_two_way(ctx, expect)
        if isinstance(expect, BannerExpect):
            return _check_banner(ctx, expect)
        if isinstance(expect, BannersExpect):
            return _check_banners(ctx, expect)
        if isinstance(expect, CtrExpect):
            return _check_ctr(ctx, expect)
        if isinstance(expect, QualityExpect):
            return _check_quality(ctx, expect)
    except _Unreached as exc:
        return AssertionResult(False, f"the run never reached mark '{exc}'", Evidence())
    raise TypeError(f"not an expectation: {expect!r}")


def evaluate(
    scenario: Scenario, record: RunRecord, library: SoundLibrary | None = None
) -> list[AssertionResult]:
    """Every expectation of ``scenario``, in file order, checked against ``record``."""
    lib = library if library is not None else SoundLibrary(scenario.instance_config)
    ctx = _Context(scenario, record, lib)
    results = []
    for index, expect in enumerate(scenario.expect):
        result = _check(ctx, expect)
        results.append(
            AssertionResult(
                result.ok,
                result.message,
                result.evidence,
                expect_kind(expect),
                describe_expect(expect),
                scenario.line("expect", index),
            )
        )
    return results
