"""Conference bridge: every audio source and sink is a port in a slot.

The idea is pjmedia's conference bridge (``conference.c``): a call leg, a WAV
player, a tone generator and a recorder are all *ports*; who hears whom is an
explicit, directed connection ``source slot -> sink slot`` with a level.  The
contact-center layer only says connect/disconnect and never touches samples:

* a two-party call is ``connect(a, b)`` and ``connect(b, a)``;
* a whisper is ``connect(prompt_player, agent)`` and nothing else, so only the
  agent hears it;
* hold is "drop the held leg's connections and connect the hold-music player
  to it" (:meth:`Bridge.hold` / :meth:`Bridge.resume`);
* a conference connects every leg to every other leg, so each participant
  hears the others minus itself (:meth:`Bridge.conference`).

Sans-I/O: the bridge never reads a clock.  Each 20 ms tick the media engine
``write()``s the frame every source produced (a source that wrote nothing is
silent this tick), then calls ``tick()`` and sends each sink its mix.

Unlike pjmedia, which walks each port's listener list, the mix for all sinks
is computed at once with numpy: the routing is compiled into arrays when it
changes, and a tick is either one gather + segmented sum over the connections
(cheap when routing is sparse: 300 two-party calls are 600 connections) or
one dense matrix product (cheap when it is not: a big all-hear-all
conference).  Sums are exact integers clipped to int16 once, so a two-party
call at level 1.0 passes samples through bit for bit (G.711 decode -> encode
stays bit-exact end to end).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = [
    "FRAME_SAMPLES",
    "SAMPLE_RATE",
    "Bridge",
    "BridgeError",
    "Connection",
    "HeldRouting",
    "Pcm",
]

SAMPLE_RATE = 8000
#: 20 ms of 8 kHz audio: one RTP packet of G.711 at the default ptime (RFC 3551 s4.5.14).
FRAME_SAMPLES = 160

Pcm = npt.NDArray[np.int16]

_INT16_MIN = -32768
_INT16_MAX = 32767


class BridgeError(ValueError):
    """A bridge operation named a slot that does not exist or a malformed frame."""


@dataclass(frozen=True, slots=True)
class Connection:
    """One directed edge: ``sink`` hears ``source`` scaled by ``level``."""

    source: int
    sink: int
    level: float = 1.0


@dataclass(frozen=True, slots=True)
class HeldRouting:
    """What :meth:`Bridge.hold` took away, so :meth:`Bridge.resume` can put it back."""

    slot: int
    hold_source: int | None
    connections: tuple[Connection, ...]


@dataclass(slots=True)
class _Port:
    name: str
    row: int


class Bridge:
    """An N-port mixer with an explicit connection matrix.

    Slots are never reused: a slot number that was removed stays invalid, so
    a stale reference held by a finished call raises instead of silently
    mixing into whoever got the slot next.  Internally each port occupies a
    *row* of the frame buffer; rows are recycled.
    """

    #: Prefer the dense matrix product once the connection count exceeds
    #: ``rows * cols / _DENSE_RATIO``; a BLAS multiply-add is far cheaper than a
    #: numpy gather, so dense wins well before the matrix is actually dense.
    _DENSE_RATIO = 24

    def __init__(self, capacity: int = 64) -> None:
        self._ports: dict[int, _Port] = {}
        self._next_slot = 0
        self._free_rows: list[int] = []
        self._rows_used = 0
        self._frames: npt.NDArray[np.int16] = np.zeros(
            (max(capacity, 1), FRAME_SAMPLES), dtype=np.int16
        )
        self._written: set[int] = set()
        # sink slot -> {source slot: level}; the source of truth for routing.
        self._inputs: dict[int, dict[int, float]] = {}
        self._compiled: _Plan | None = None

    # -- ports ---------------------------------------------------------------

    def add_port(self, name: str) -> int:
        """Add a port (call leg, player, recorder tap, tone) and return its slot."""
        if self._free_rows:
            row = self._free_rows.pop()
        else:
            row = self._rows_used
            self._rows_used += 1
            if row >= self._frames.shape[0]:
                grown = np.zeros((self._frames.shape[0] * 2, FRAME_SAMPLES), dtype=np.int16)
                grown[: self._frames.shape[0]] = self._frames
                self._frames = grown
        slot = self._next_slot
        self._next_slot += 1
        self._ports[slot] = _Port(name, row)
        return slot

    def remove_port(self, slot: int) -> None:
        """Remove a port and every connection to or from it."""
        port = self._port(slot)
        self._inputs.pop(slot, None)
        for sources in self._inputs.values():
            sources.pop(slot, None)
        self._frames[port.row] = 0
        self._written.discard(port.row)
        self._free_rows.append(port.row)
        del self._ports[slot]
        self._compiled = None

    def name(self, slot: int) -> str:
        return self._port(slot).name

    @property
    def slots(self) -> list[int]:
        return list(self._ports)

    def __len__(self) -> int:
        return len(self._ports)

    def __contains__(self, slot: object) -> bool:
        return slot in self._ports

    # -- routing -------------------------------------------------------------

    def connect(self, src: int, dst: int, level: float = 1.0) -> None:
        """Make ``dst`` hear ``src`` at ``level`` (linear gain); reconnecting changes the level.

        ``src == dst`` is allowed (an echo test), but :meth:`conference` never
        does it: a participant does not hear itself.
        """
        self._port(src)
        self._port(dst)
        if not np.isfinite(level) or level < 0:
            raise BridgeError(f"level must be a finite non-negative gain, got {level!r}")
        self._inputs.setdefault(dst, {})[src] = float(level)
        self._compiled = None

    def disconnect(self, src: int, dst: int) -> None:
        """Stop ``dst`` hearing ``src``; disconnecting what is not connected is a no-op."""
        self._port(src)
        self._port(dst)
        sources = self._inputs.get(dst)
        if sources is not None and src in sources:
            del sources[src]
            if not sources:
                del self._inputs[dst]
            self._compiled = None

    def isolate(self, slot: int) -> tuple[Connection, ...]:
        """Remove every connection to and from ``slot``; return what was removed."""
        removed = tuple(c for c in self.connections() if slot in (c.source, c.sink))
        for c in removed:
            self.disconnect(c.source, c.sink)
        return removed

    def connections(self) -> list[Connection]:
        return [
            Connection(src, dst, level)
            for dst, sources in self._inputs.items()
            for src, level in sources.items()
        ]

    def sources_of(self, sink: int) -> dict[int, float]:
        """Who ``sink`` hears, with levels."""
        self._port(sink)
        return dict(self._inputs.get(sink, {}))

    def listeners_of(self, source: int) -> dict[int, float]:
        """Who hears ``source``, with levels."""
        self._port(source)
        return {dst: srcs[source] for dst, srcs in self._inputs.items() if source in srcs}

    def conference(self, slots: Iterable[int], level: float = 1.0) -> None:
        """Join ``slots`` so each hears every other one, never itself."""
        members = list(dict.fromkeys(slots))
        for dst in members:
            for src in members:
                if src != dst:
                    self.connect(src, dst, level)

    def listen_only(self, listener: int, sources: Iterable[int], level: float = 1.0) -> None:
        """``listener`` hears ``sources`` but is heard by none of them (monitor, whisper)."""
        for src in sources:
            if src != listener:
                self.connect(src, listener, level)
                self.disconnect(listener, src)

    def hold(self, slot: int, hold_source: int | None = None) -> HeldRouting:
        """Put ``slot`` on hold: it hears only ``hold_source`` and nobody hears it.

        Returns the routing that was taken away; pass it to :meth:`resume`.
        """
        removed = self.isolate(slot)
        if hold_source is not None:
            self.connect(hold_source, slot)
        return HeldRouting(slot, hold_source, removed)

    def resume(self, held: HeldRouting) -> None:
        """Undo :meth:`hold`, restoring the connections of ports that still exist."""
        if held.hold_source is not None and held.hold_source in self._ports:
            self.disconnect(held.hold_source, held.slot)
        for c in held.connections:
            if c.source in self._ports and c.sink in self._ports:
                self.connect(c.source, c.sink, c.level)

    # -- per tick ------------------------------------------------------------

    def write(self, slot: int, frame: npt.ArrayLike) -> None:
        """Offer ``slot``'s 160-sample int16 frame for this tick."""
        row = self._port(slot).row
        samples = np.asarray(frame)
        if samples.shape != (FRAME_SAMPLES,):
            raise BridgeError(
                f"slot {slot}: frame must be {FRAME_SAMPLES} samples, got shape {samples.shape}"
            )
        self._frames[row] = samples
        self._written.add(row)

    def tick(self) -> dict[int, Pcm]:
        """Mix this tick: one frame for every sink with at least one connection.

        A port that nobody is connected to gets no entry (the engine sends it
        silence or nothing).  Frames are fresh arrays; the caller may keep them.
        Afterwards every source is reset to silence for the next tick.
        """
        plan = self._compiled
        if plan is None:
            plan = self._compiled = self._compile()
        out: dict[int, Pcm] = {}
        if plan.sink_slots:
            mixed = plan.mix(self._frames)
            out = dict(zip(plan.sink_slots, mixed, strict=True))
        if self._written:
            if len(self._written) * 4 > self._rows_used:
                self._frames[: self._rows_used] = 0
            else:
                self._frames[list(self._written)] = 0
            self._written.clear()
        return out

    # -- internals -----------------------------------------------------------

    def _port(self, slot: int) -> _Port:
        try:
            return self._ports[slot]
        except KeyError:
            raise BridgeError(f"no port in slot {slot}") from None

    def _compile(self) -> _Plan:
        sink_slots = tuple(sorted(d for d, sources in self._inputs.items() if sources))
        if not sink_slots:
            return _Plan.build((), None, None, ())
        n_edges = sum(len(self._inputs[dst]) for dst in sink_slots)
        used_src = sorted({self._ports[s].row for d in sink_slots for s in self._inputs[d]})
        if n_edges * self._DENSE_RATIO > len(used_src) * len(sink_slots):
            # Dense: matrix[sink, k] = level at which the sink hears source row used_src[k].
            col = {row: k for k, row in enumerate(used_src)}
            # Float32 sums of int16 samples are exact integers while fewer than
            # 2**24 / 2**15 = 512 sources add up; past that, pay for float64.
            dtype = np.float32 if len(used_src) <= 512 else np.float64
            matrix = np.zeros((len(sink_slots), len(used_src)), dtype=dtype)
            for i, dst in enumerate(sink_slots):
                for src, level in self._inputs[dst].items():
                    matrix[i, col[self._ports[src].row]] = level
            return _Plan.build(sink_slots, np.asarray(used_src, dtype=np.intp), matrix, ())
        # Sparse: peel the connections into layers, layer k holding every
        # sink's k-th source, so a tick costs (max fan-in) vectorised
        # gathers instead of a Python loop over sinks.
        fan_in = [list(self._inputs[dst].items()) for dst in sink_slots]
        layers: list[_Layer] = []
        for k in range(max(len(f) for f in fan_in)):
            sinks = [i for i, f in enumerate(fan_in) if len(f) > k]
            rows = np.asarray([self._ports[fan_in[i][k][0]].row for i in sinks], dtype=np.intp)
            levels = [fan_in[i][k][1] for i in sinks]
            layers.append(
                _Layer(
                    None if len(sinks) == len(sink_slots) else np.asarray(sinks, dtype=np.intp),
                    rows,
                    None
                    if all(v == 1.0 for v in levels)
                    else np.asarray(levels, dtype=np.float32)[:, None],
                )
            )
        return _Plan.build(sink_slots, None, None, tuple(layers))


@dataclass(frozen=True, slots=True)
class _Layer:
    """The k-th source of each sink that has one."""

    sinks: npt.NDArray[np.intp] | None  # indexes into _Plan.sink_slots; None = all of them
    rows: npt.NDArray[np.intp]
    levels: npt.NDArray[np.float32] | None  # None = every level is 1.0


@dataclass(frozen=True, slots=True)
class _Plan:
    """Routing compiled to arrays; rebuilt only when a connection changes.

    The accumulators are allocated once per plan and worked on in place:
    a fresh few-hundred-kB temporary per tick costs more in page faults
    than the arithmetic itself.
    """

    sink_slots: tuple[int, ...]
    dense_rows: npt.NDArray[np.intp] | None
    dense: npt.NDArray[np.float32] | npt.NDArray[np.float64] | None
    layers: tuple[_Layer, ...]
    acc: npt.NDArray[np.int32] | npt.NDArray[np.float32] | npt.NDArray[np.float64]
    gathered: npt.NDArray[np.float32] | npt.NDArray[np.float64] | None

    @classmethod
    def build(
        cls,
        sink_slots: tuple[int, ...],
        dense_rows: npt.NDArray[np.intp] | None,
        dense: npt.NDArray[np.float32] | npt.NDArray[np.float64] | None,
        layers: tuple[_Layer, ...],
    ) -> _Plan:
        shape = (len(sink_slots), FRAME_SAMPLES)
        if dense is not None:
            assert dense_rows is not None
            acc = np.zeros(shape, dense.dtype)
            gathered = np.zeros((len(dense_rows), FRAME_SAMPLES), dense.dtype)
            return cls(sink_slots, dense_rows, dense, layers, acc, gathered)
        exact = all(layer.levels is None for layer in layers)
        acc = np.zeros(shape, np.int32 if exact else np.float32)
        return cls(sink_slots, None, None, layers, acc, None)

    def mix(self, frames: npt.NDArray[np.int16]) -> npt.NDArray[np.int16]:
        acc = self.acc
        if self.dense is not None:
            assert self.dense_rows is not None and self.gathered is not None
            self.gathered[...] = frames[self.dense_rows]
            np.matmul(self.dense, self.gathered, out=acc)
            np.rint(acc, out=acc)
        else:
            first = self.layers[0]
            if len(self.layers) == 1 and first.levels is None and first.sinks is None:
                # Each sink hears exactly one source at unity (two-party calls): a copy.
                return frames[first.rows]
            acc[...] = 0
            for layer in self.layers:
                part: npt.NDArray[np.int16] | npt.NDArray[np.float32] = frames[layer.rows]
                if layer.levels is not None:
                    part = part * layer.levels
                if layer.sinks is None:
                    acc += part
                else:
                    acc[layer.sinks] += part
            if acc.dtype != np.int32:
                np.rint(acc, out=acc)
        np.clip(acc, _INT16_MIN, _INT16_MAX, out=acc)
        return acc.astype(np.int16)
