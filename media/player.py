"""Players: bridge source ports that produce one 20 ms frame per media tick.

A player holds a queue of items (a WAV clip, a stretch of silence, a
call-progress tone); items can loop as a group ("You are on hold" every
10 s is a clip plus silence, looped).  Sans-I/O: the media engine calls
:meth:`Player.read_frame` once per tick with the tick number, writes the
frame into the player's bridge slot, and drains :meth:`Player.next_event`
for completion events that carry the ticks a play started and ended on
(the contact trace's "prompt played from/to").

Items are concatenated sample-accurately across frame boundaries, so a
looped hold-music file or a clip followed by silence has no gaps or clicks.

WAV files of any rate, width and channel count are converted once with
pydub to 8 kHz mono 16-bit (:func:`load_pcm`) and cached per path.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np
import numpy.typing as npt
from pydub import AudioSegment

from media.tones import ToneSpec, tone_samples

__all__ = [
    "FRAME_SAMPLES",
    "SAMPLE_RATE",
    "Clip",
    "Player",
    "PlayerError",
    "PlayItem",
    "PlaybackCancelled",
    "PlaybackEvent",
    "PlaybackFinished",
    "PlaybackStarted",
    "Silence",
    "Tone",
    "TonePlayer",
    "WavPlayer",
    "load_pcm",
    "to_telephony",
]

SAMPLE_RATE = 8000
FRAME_SAMPLES = 160

Pcm = npt.NDArray[np.int16]


class PlayerError(ValueError):
    """An item cannot be played: unreadable audio file, bad duration, empty loop."""


# -- items ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Clip:
    """A WAV (or any file pydub/ffmpeg can decode), played at 8 kHz mono."""

    path: Path

    def __init__(self, path: str | Path) -> None:
        object.__setattr__(self, "path", Path(path))


@dataclass(frozen=True, slots=True)
class Silence:
    """A gap of ``seconds`` of silence (a pause between announcements)."""

    seconds: float


@dataclass(frozen=True, slots=True)
class Tone:
    """A call-progress tone for ``seconds`` (``None``: until stopped)."""

    spec: ToneSpec
    seconds: float | None = None


PlayItem = Clip | Silence | Tone


# -- events --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PlaybackStarted:
    """``item``'s first sample went out in the frame of ``tick``."""

    item: PlayItem
    tick: int


@dataclass(frozen=True, slots=True)
class PlaybackFinished:
    """``item`` played from ``start_tick`` to ``end_tick`` (both inclusive).

    ``end_tick`` is the tick whose frame held its last sample.  ``interrupted``
    is true when :meth:`Player.stop` or :meth:`Player.interrupt` cut it short.
    """

    item: PlayItem
    start_tick: int
    end_tick: int
    interrupted: bool = False


@dataclass(frozen=True, slots=True)
class PlaybackCancelled:
    """``item`` was queued but dropped by :meth:`Player.stop` before it started."""

    item: PlayItem


PlaybackEvent = PlaybackStarted | PlaybackFinished | PlaybackCancelled


# -- loading -------------------------------------------------------------------

_CACHE_SIZE = 64
_cache: OrderedDict[tuple[str, int, int], Pcm] = OrderedDict()
_cache_lock = threading.Lock()


def load_pcm(path: str | Path) -> Pcm:
    """The file's audio as 8 kHz mono int16 samples (read-only, cached per path).

    The cache key includes the file's size and mtime, so regenerating a prompt
    is picked up without a restart.
    """
    p = Path(path).resolve()
    try:
        st = p.stat()
    except OSError as exc:
        raise PlayerError(f"{path}: cannot read audio file: {exc.strerror}") from exc
    key = (str(p), st.st_mtime_ns, st.st_size)
    with _cache_lock:
        hit = _cache.get(key)
        if hit is not None:
            _cache.move_to_end(key)
            return hit
    try:
        segment = AudioSegment.from_file(str(p))
    except Exception as exc:  # pydub raises bare Exception/CouldntDecodeError/wave.Error
        raise PlayerError(f"{path}: cannot decode audio: {exc}") from exc
    samples = segment_pcm(to_telephony(segment))
    samples.setflags(write=False)
    with _cache_lock:
        _cache[key] = samples
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return samples


def to_telephony(segment: AudioSegment) -> AudioSegment:
    """Convert any pydub segment to 8 kHz, mono, 16-bit.

    pydub's rate conversion (``audioop.ratecv``) interpolates without an
    anti-alias filter, so everything above the new Nyquist (4 kHz) is removed
    first with a windowed-sinc low-pass; otherwise music resampled from
    44.1 kHz folds its treble back into the voice band as noise.
    """
    seg = segment.set_channels(1).set_sample_width(2)
    rate = int(seg.frame_rate)
    if rate > SAMPLE_RATE:
        raw = np.frombuffer(seg.raw_data, dtype="<i2").astype(np.float64)
        filtered = _lowpass(raw, cutoff_hz=0.45 * SAMPLE_RATE, rate=rate)
        seg = seg._spawn(np.clip(np.rint(filtered), -32768, 32767).astype("<i2").tobytes())
    if rate != SAMPLE_RATE:
        seg = seg.set_frame_rate(SAMPLE_RATE)
    return seg


def segment_pcm(segment: AudioSegment) -> Pcm:
    """The samples of an 8 kHz mono 16-bit segment as an int16 array (a copy)."""
    if segment.channels != 1 or segment.sample_width != 2 or segment.frame_rate != SAMPLE_RATE:
        raise PlayerError("segment is not 8 kHz mono 16-bit; call to_telephony() first")
    return np.frombuffer(cast(bytes, segment.raw_data), dtype="<i2").astype(np.int16)


def _lowpass(x: npt.NDArray[np.float64], cutoff_hz: float, rate: int) -> npt.NDArray[np.float64]:
    # Blackman-windowed sinc; ~ 5.5 * rate / taps wide transition band, so
    # scale the taps with the rate to keep the band about 350 Hz wide.
    taps = int(rate * 5.5 / 350) | 1
    m = np.arange(taps) - (taps - 1) / 2
    h = np.sinc(2 * cutoff_hz / rate * m) * np.blackman(taps)
    h /= h.sum()
    if len(x) < taps:
        return np.convolve(x, h)[(taps - 1) // 2 : (taps - 1) // 2 + len(x)]
    return np.convolve(x, h, mode="same")


# -- playback ------------------------------------------------------------------


class _Cursor:
    """Position inside one item being played."""

    __slots__ = ("item", "pcm", "pos", "total", "start_tick", "last_tick")

    def __init__(self, item: PlayItem) -> None:
        self.item = item
        self.pcm: Pcm | None = None
        self.pos = 0
        self.start_tick: int | None = None
        self.last_tick = 0
        if isinstance(item, Clip):
            self.pcm = load_pcm(item.path)
            self.total: int | None = len(self.pcm)
        elif isinstance(item, Silence):
            self.total = _samples(item.seconds)
        else:
            self.total = None if item.seconds is None else _samples(item.seconds)

    @property
    def done(self) -> bool:
        return self.total is not None and self.pos >= self.total

    def take(self, out: Pcm) -> int:
        """Copy up to ``len(out)`` samples into ``out``; return how many."""
        n = len(out) if self.total is None else min(len(out), self.total - self.pos)
        if isinstance(self.item, Clip):
            assert self.pcm is not None
            out[:n] = self.pcm[self.pos : self.pos + n]
        elif isinstance(self.item, Tone):
            out[:n] = tone_samples(self.item.spec, self.pos, n)
        # Silence: the frame is already zeros.
        self.pos += n
        return n


def _samples(seconds: float) -> int:
    if not np.isfinite(seconds) or seconds < 0:
        raise PlayerError(f"duration must be a finite, non-negative number of seconds: {seconds}")
    return round(seconds * SAMPLE_RATE)


@dataclass(slots=True)
class _Group:
    items: tuple[PlayItem, ...]
    loop: bool
    index: int = 0


class Player:
    """A queue of play items feeding one bridge source port."""

    def __init__(self, name: str = "player") -> None:
        self.name = name
        self._queue: deque[_Group] = deque()
        self._current: _Cursor | None = None
        self._events: deque[PlaybackEvent] = deque()
        self._tick = 0

    # -- control -------------------------------------------------------------

    def enqueue(self, *items: PlayItem, loop: bool = False) -> None:
        """Queue ``items`` to play in order after what is already queued.

        With ``loop=True`` the group repeats until :meth:`stop` or
        :meth:`interrupt`.  Files are decoded now, so a bad path fails here
        rather than mid-call.
        """
        if not items:
            return
        lengths = [_Cursor(item).total for item in items]
        if loop and all(n == 0 for n in lengths):
            raise PlayerError("cannot loop items that have no samples")
        self._queue.append(_Group(tuple(items), loop))

    def stop(self) -> None:
        """Cut the current item short and drop everything queued."""
        self._finish_current(interrupted=True)
        for group in self._queue:
            for item in group.items[group.index :]:
                self._events.append(PlaybackCancelled(item))
        self._queue.clear()

    def interrupt(self) -> None:
        """Skip the rest of the group being played (leaving its loop) and go on to the next.

        This is barge-in: a caller pressing a key skips the announcement.
        A group that has not started yet is left alone.
        """
        self._finish_current(interrupted=True)
        if self._queue and self._queue[0].index > 0:
            group = self._queue.popleft()
            for item in group.items[group.index :]:
                self._events.append(PlaybackCancelled(item))

    @property
    def playing(self) -> bool:
        """True while something is being played or waits in the queue."""
        # A spent group stays queued until the next read pops it: counting it
        # would report an item that ends on a frame boundary one tick (20 ms)
        # late, and a test line's next step would start that much later.
        return self._current is not None or any(
            g.loop or g.index < len(g.items) for g in self._queue
        )

    @property
    def current(self) -> PlayItem | None:
        return None if self._current is None else self._current.item

    # -- per tick ------------------------------------------------------------

    def read_frame(self, tick: int | None = None) -> Pcm | None:
        """The next 160 samples, or ``None`` when there is nothing to play.

        ``tick`` is the media clock's tick number and stamps the events; when
        omitted, the player counts its own calls.  A final partial item is
        padded with silence.
        """
        if tick is None:
            tick = self._tick
        self._tick = tick + 1
        if not self.playing:
            return None
        frame = np.zeros(FRAME_SAMPLES, dtype=np.int16)
        filled = 0
        stalled = 0
        while filled < FRAME_SAMPLES:
            cursor = self._advance(tick)
            if cursor is None:
                break
            n = cursor.take(frame[filled:])
            filled += n
            if n:
                cursor.last_tick = tick
                stalled = 0
            if cursor.done:
                self._events.append(
                    PlaybackFinished(
                        cursor.item,
                        tick if cursor.start_tick is None else cursor.start_tick,
                        tick,
                    )
                )
                self._current = None
                if n == 0:
                    stalled += 1
                    if stalled > 64:  # a looped group of empty items; enqueue() forbids it
                        raise PlayerError("loop produced no samples")
        if filled == 0:
            return None
        return frame

    def next_event(self) -> PlaybackEvent | None:
        """The oldest undelivered event, or ``None``."""
        return self._events.popleft() if self._events else None

    # -- internals -----------------------------------------------------------

    def _advance(self, tick: int) -> _Cursor | None:
        if self._current is not None:
            return self._current
        while self._queue:
            group = self._queue[0]
            if group.index >= len(group.items):
                if group.loop:
                    group.index = 0
                else:
                    self._queue.popleft()
                    continue
            item = group.items[group.index]
            group.index += 1
            cursor = _Cursor(item)
            cursor.start_tick = tick
            self._current = cursor
            self._events.append(PlaybackStarted(item, tick))
            return cursor
        return None

    def _finish_current(self, interrupted: bool) -> None:
        cursor = self._current
        if cursor is None:
            return
        self._current = None
        start = cursor.start_tick if cursor.start_tick is not None else self._tick
        self._events.append(
            PlaybackFinished(cursor.item, start, max(start, cursor.last_tick), interrupted)
        )


class WavPlayer(Player):
    """A player of prompts: WAV clips, announcements every N seconds, hold music."""

    def play(self, path: str | Path, loop: bool = False) -> None:
        """Queue the file at ``path`` (looping until stopped if ``loop``)."""
        self.enqueue(Clip(path), loop=loop)

    def play_every(self, path: str | Path, period: float) -> None:
        """Repeat ``path`` every ``period`` seconds, silence in between, until stopped.

        ("You are on hold." every 10 s.)  A clip longer than the period
        repeats back to back.
        """
        clip = Clip(path)
        length = len(load_pcm(clip.path)) / SAMPLE_RATE
        gap = max(0.0, period - length)
        self.enqueue(clip, Silence(gap), loop=True)


class TonePlayer(Player):
    """A player that starts with a call-progress tone (ringback, busy, a beep)."""

    def __init__(
        self,
        frequencies: float | tuple[float, ...],
        *,
        cadence: tuple[float, ...] = (),
        seconds: float | None = None,
        level_dbfs: float = -13.0,
        name: str = "tone",
    ) -> None:
        super().__init__(name)
        freqs = (frequencies,) if isinstance(frequencies, int | float) else tuple(frequencies)
        try:
            spec = ToneSpec(tuple(float(f) for f in freqs), cadence, level_dbfs)
        except ValueError as exc:
            raise PlayerError(str(exc)) from exc
        self.enqueue(Tone(spec, seconds))
