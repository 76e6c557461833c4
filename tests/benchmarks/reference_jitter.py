"""The jitter buffer as of commit 9ed63f0, before the media hot-path work, kept verbatim as the
reference the optimised `media.jitter.JitterBuffer` is checked against (tests only)."""

from __future__ import annotations

import bisect
import math
from collections import deque
from dataclasses import dataclass
from enum import Enum

import numpy as np

from media.g711 import FRAME_SAMPLES, Codes, Law
from media.rtp import ts_distance

_TS_MOD = 1 << 32
#: Gains of successive concealment frames (about -2, -6, -12 dB) before falling silent.
CONCEALMENT_GAINS = (0.8, 0.5, 0.25)


class FrameKind(Enum):
    AUDIO = "audio"
    CONCEALED = "concealed"
    SILENCE = "silence"


@dataclass(frozen=True, slots=True)
class JitterFrame:
    """One frame of G.711 codes for one tick; `timestamp` is its first sample's RTP time."""

    payload: bytes
    timestamp: int
    kind: FrameKind


@dataclass(slots=True)
class JitterStats:
    received: int = 0
    duplicates: int = 0
    late: int = 0
    resyncs: int = 0
    frames_played: int = 0
    frames_concealed: int = 0
    frames_silent: int = 0
    frames_lost: int = 0
    underruns: int = 0
    frames_dropped: int = 0


class JitterBuffer:
    """One leg's adaptive jitter buffer (see the module docstring)."""

    def __init__(
        self,
        law: Law = Law.ULAW,
        *,
        clock_rate: int = 8000,
        frame_samples: int = FRAME_SAMPLES,
        min_delay: float = 0.04,
        max_delay: float = 0.20,
        shrink_after: int = 25,
        resync_after: float = 1.0,
    ) -> None:
        if not 0 < min_delay <= max_delay:
            raise ValueError("need 0 < min_delay <= max_delay")
        self.law = law
        self.clock_rate = clock_rate
        self.frame_samples = frame_samples
        self.min_delay = min_delay
        self.max_delay = max_delay
        self.shrink_after = shrink_after
        self.resync_samples = round(resync_after * clock_rate)
        self.stats = JitterStats()
        self.jitter = 0.0  # seconds, RFC 3550 A.8 estimator
        self._silence = bytes((law.silence,)) * frame_samples
        self._gain_tables = [law.gain_table(g) for g in CONCEALMENT_GAINS]
        self._keys: list[int] = []  # unwrapped start timestamps, sorted
        self._chunks: dict[int, bytes] = {}
        self._recent_seqs: deque[int] = deque(maxlen=256)
        self._recent_seq_set: set[int] = set()
        self._reference: int | None = None  # an unwrapped timestamp to unwrap against
        self._newest_end = 0
        self._cursor: int | None = None
        self._prefetch_since: float | None = None
        self._last_frame: bytes | None = None
        self._conceal_run = 0
        self._over_target_ticks = 0
        self._last_transit: float | None = None

    # -- properties ------------------------------------------------------------------------

    @property
    def frame_duration(self) -> float:
        return self.frame_samples / self.clock_rate

    @property
    def target_delay(self) -> float:
        """Current playout delay target, a whole number of frames within the bounds."""
        wanted = self.frame_duration + 3.0 * self.jitter
        bounded = min(self.max_delay, max(self.min_delay, wanted))
        frames = max(1, math.ceil(bounded / self.frame_duration - 1e-9))
        return frames * self.frame_duration

    @property
    def level(self) -> float:
        """Seconds of audio buffered ahead of the playout cursor."""
        if not self._keys:
            return 0.0
        start = self._keys[0] if self._cursor is None else self._cursor
        return max(0, self._newest_end - start) / self.clock_rate

    @property
    def playing(self) -> bool:
        return self._cursor is not None

    # -- input -----------------------------------------------------------------------------

    def _seen(self, sequence: int) -> bool:
        if sequence in self._recent_seq_set:
            return True
        if len(self._recent_seqs) == self._recent_seqs.maxlen:
            self._recent_seq_set.discard(self._recent_seqs[0])
        self._recent_seqs.append(sequence)
        self._recent_seq_set.add(sequence)
        return False

    def _reset(self) -> None:
        self._keys.clear()
        self._chunks.clear()
        self._cursor = None
        self._prefetch_since = None
        self._reference = None
        self._newest_end = 0
        self._last_frame = None
        self._conceal_run = 0
        self._over_target_ticks = 0

    def put(self, sequence: int, timestamp: int, payload: bytes, now: float) -> bool:
        """Buffer one packet's payload; False when it was a duplicate, too late, or empty."""
        self.stats.received += 1
        if not payload:
            return False
        if self._seen(sequence):
            self.stats.duplicates += 1
            return False
        if self._reference is None:
            # Unwrapped timestamps live well above zero so arithmetic never goes negative.
            ext = _TS_MOD + timestamp
        else:
            ext = self._reference + ts_distance(timestamp, self._reference % _TS_MOD)
        self._update_jitter(ext, now)
        cursor = self._cursor
        if cursor is not None and abs(ext - cursor) > self.resync_samples:
            # The sender restarted its timeline (new source, long pause): start over.
            self.stats.resyncs += 1
            self._reset()
            self._last_transit = None
            ext = _TS_MOD + timestamp
            cursor = None
        end = ext + len(payload)
        if cursor is not None:
            if end <= cursor:
                self.stats.late += 1
                return False
            if ext < cursor:
                payload = payload[cursor - ext :]
                ext = cursor
        if ext in self._chunks:
            self.stats.duplicates += 1
            return False
        bisect.insort(self._keys, ext)
        self._chunks[ext] = payload
        self._reference = ext
        self._newest_end = max(self._newest_end, end)
        if self._cursor is None and self._prefetch_since is None:
            self._prefetch_since = now
        return True

    def _update_jitter(self, ext: int, now: float) -> None:
        transit = now - ext / self.clock_rate
        if self._last_transit is not None:
            delta = abs(transit - self._last_transit)
            if delta < 1.0:  # a timeline jump is not jitter
                self.jitter += (delta - self.jitter) / 16.0
        self._last_transit = transit

    # -- output ----------------------------------------------------------------------------

    def get(self, now: float) -> JitterFrame | None:
        """The frame to play this tick, or None while idle (nothing to play at all)."""
        if self._cursor is None and not self._start_playout(now):
            return None
        self._adapt()
        cursor = self._cursor
        if cursor is None:
            return None
        frame_end = cursor + self.frame_samples
        frame, covered = self._assemble(cursor, frame_end)
        timestamp = cursor % _TS_MOD
        if covered:
            self._cursor = frame_end
            self._last_frame = frame
            self._conceal_run = 0
            self.stats.frames_played += 1
            return JitterFrame(frame, timestamp, FrameKind.AUDIO)
        if self._keys:
            # Later packets are here, this one is not: lost. Conceal and move on.
            self.stats.frames_lost += 1
            self._cursor = frame_end
            return self._conceal(timestamp)
        # Nothing buffered at all: an underrun. Hold the cursor (the delay grows by a frame)
        # while concealment lasts, then go idle until the next talkspurt.
        self.stats.underruns += 1
        if self._last_frame is not None and self._conceal_run < len(self._gain_tables):
            return self._conceal(timestamp)
        self._reset()
        return None

    def _start_playout(self, now: float) -> bool:
        if not self._keys or self._prefetch_since is None:
            return False
        buffered = (self._newest_end - self._keys[0]) / self.clock_rate
        waited = now - self._prefetch_since
        target = self.target_delay
        if waited + 1e-9 < target and buffered + 1e-9 < target + self.frame_duration:
            return False
        self._cursor = self._keys[0]
        self._prefetch_since = None
        return True

    def _adapt(self) -> None:
        """Shrink the delay by one frame when the buffer has sat above target for a while."""
        if self._cursor is None:
            return
        if self.level > self.target_delay + self.frame_duration + 1e-9:
            self._over_target_ticks += 1
            if self._over_target_ticks >= self.shrink_after:
                self._over_target_ticks = 0
                self._cursor += self.frame_samples
                self._discard_before(self._cursor)
                self.stats.frames_dropped += 1
        else:
            self._over_target_ticks = 0

    def _discard_before(self, position: int) -> None:
        while self._keys and self._keys[0] + len(self._chunks[self._keys[0]]) <= position:
            del self._chunks[self._keys.pop(0)]

    def _assemble(self, start: int, end: int) -> tuple[bytes, bool]:
        frame = bytearray(self._silence)
        covered = False
        index = max(0, bisect.bisect_right(self._keys, start) - 1)
        while index < len(self._keys) and self._keys[index] < end:
            key = self._keys[index]
            chunk = self._chunks[key]
            lo, hi = max(start, key), min(end, key + len(chunk))
            if lo < hi:
                frame[lo - start : hi - start] = chunk[lo - key : hi - key]
                covered = True
            index += 1
        self._discard_before(end)
        return bytes(frame), covered

    def _conceal(self, timestamp: int) -> JitterFrame:
        if self._last_frame is not None and self._conceal_run < len(self._gain_tables):
            table: Codes = self._gain_tables[self._conceal_run]
            self._conceal_run += 1
            self.stats.frames_concealed += 1
            codes = np.frombuffer(self._last_frame, dtype=np.uint8)
            return JitterFrame(table[codes].tobytes(), timestamp, FrameKind.CONCEALED)
        self.stats.frames_silent += 1
        return JitterFrame(self._silence, timestamp, FrameKind.SILENCE)


__all__ = ["CONCEALMENT_GAINS", "FrameKind", "JitterBuffer", "JitterFrame", "JitterStats"]
