"""G.711 µ-law and A-law (ITU-T G.711) as numpy lookup tables.

Every function works on whole arrays of any shape, so the bridge converts all of a tick's
streams at once (shape ``(n_streams, 160)``) with one ``np.take``.

Decoding uses a 256-entry table, encoding a 65536-entry table indexed by the int16 sample
reinterpreted as uint16. The tables are built so that ``encode(decode(code)) == code`` for all
256 codes of both laws: a 2-party call that is decoded, bridged and re-encoded without mixing
is bit-exact end to end.

The one place this departs from the classic reference (and from ``audioop``): µ-law has two
zeros, 0xFF (+0) and 0x7F (-0). Decoding both to 0 would make -0 come back as +0, so -0 decodes
to -1 (one LSB below zero, inaudible) and the sample -1 encodes to 0x7F. Every other code and
every other sample value matches the reference exactly.
"""

from __future__ import annotations

from enum import Enum

import numpy as np
import numpy.typing as npt

Codes = npt.NDArray[np.uint8]
Pcm = npt.NDArray[np.int16]

#: Samples per 20 ms frame at 8 kHz; G.711 carries one byte per sample.
FRAME_SAMPLES = 160


def _ulaw_decode_code(code: int) -> int:
    # G.711 section 3 / the classic Sun reference: the code is transmitted inverted.
    u = ~code & 0xFF
    t = (((u & 0x0F) << 3) + 0x84) << ((u & 0x70) >> 4)
    return (0x84 - t) if (u & 0x80) else (t - 0x84)


def _alaw_decode_code(code: int) -> int:
    # A-law inverts the even bits (0x55) before the sign/segment/mantissa split.
    a = code ^ 0x55
    t = (a & 0x0F) << 4
    seg = (a & 0x70) >> 4
    if seg == 0:
        t += 8
    elif seg == 1:
        t += 0x108
    else:
        t = (t + 0x108) << (seg - 1)
    return t if (a & 0x80) else -t


_SEG_END = (0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF, 0x3FFF, 0x7FFF)


def _segment(value: int, ends: tuple[int, ...]) -> int:
    for index, end in enumerate(ends):
        if value <= end:
            return index
    return len(ends)


def _ulaw_encode_sample(sample: int) -> int:
    # Reference encoder on the 14-bit magnitude (G.711 table 2a); identical to audioop.lin2ulaw.
    pcm = sample >> 2
    if pcm < 0:
        pcm = -pcm
        mask = 0x7F
    else:
        mask = 0xFF
    pcm = min(pcm, 8159) + (0x84 >> 2)
    seg = _segment(pcm, (0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF))
    if seg >= 8:
        return 0x7F ^ mask
    return ((seg << 4) | ((pcm >> (seg + 1)) & 0x0F)) ^ mask


def _alaw_encode_sample(sample: int) -> int:
    # Reference encoder on the 13-bit magnitude (G.711 table 1a); identical to audioop.lin2alaw.
    pcm = sample >> 3
    if pcm >= 0:
        mask = 0xD5
    else:
        mask = 0x55
        pcm = -pcm - 1
    seg = _segment(pcm, (0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF))
    if seg >= 8:
        return 0x7F ^ mask
    aval = seg << 4
    aval |= (pcm >> 1) & 0x0F if seg < 2 else (pcm >> seg) & 0x0F
    return aval ^ mask


def _build_tables() -> tuple[Pcm, Codes, Pcm, Codes]:
    ulaw_decode = np.array([_ulaw_decode_code(c) for c in range(256)], dtype=np.int16)
    ulaw_decode[0x7F] = -1  # keep -0 distinct from +0 (see module docstring)
    alaw_decode = np.array([_alaw_decode_code(c) for c in range(256)], dtype=np.int16)
    # Index i holds the code for the int16 whose bit pattern is i (so view('uint16') indexes it).
    samples = np.arange(65536, dtype=np.uint16).view(np.int16).tolist()
    ulaw_encode = np.array([_ulaw_encode_sample(s) for s in samples], dtype=np.uint8)
    alaw_encode = np.array([_alaw_encode_sample(s) for s in samples], dtype=np.uint8)
    ulaw_encode[np.uint16(0xFFFF)] = 0x7F  # sample -1 <-> code 0x7F
    for table in (ulaw_decode, alaw_decode, ulaw_encode, alaw_encode):
        table.setflags(write=False)
    return ulaw_decode, ulaw_encode, alaw_decode, alaw_encode


ULAW_DECODE, ULAW_ENCODE, ALAW_DECODE, ALAW_ENCODE = _build_tables()

#: The code of digital silence: µ-law +0, A-law smallest positive step.
ULAW_SILENCE = 0xFF
ALAW_SILENCE = 0xD5


def _as_codes(codes: npt.ArrayLike | bytes) -> Codes:
    if isinstance(codes, bytes | bytearray | memoryview):
        return np.frombuffer(codes, dtype=np.uint8)
    return np.asarray(codes, dtype=np.uint8)


def _as_pcm_index(pcm: npt.ArrayLike) -> npt.NDArray[np.uint16]:
    array = np.asarray(pcm)
    if array.dtype != np.int16:
        raise TypeError(f"G.711 encoding takes int16 samples, got {array.dtype}")
    return array.view(np.uint16)


def ulaw_decode(codes: npt.ArrayLike | bytes) -> Pcm:
    """µ-law codes (uint8 array of any shape, or bytes) to int16 samples of the same shape."""
    return ULAW_DECODE[_as_codes(codes)]


def ulaw_encode(pcm: npt.ArrayLike) -> Codes:
    """int16 samples (any shape) to µ-law codes of the same shape."""
    return ULAW_ENCODE[_as_pcm_index(pcm)]


def alaw_decode(codes: npt.ArrayLike | bytes) -> Pcm:
    """A-law codes (uint8 array of any shape, or bytes) to int16 samples of the same shape."""
    return ALAW_DECODE[_as_codes(codes)]


def alaw_encode(pcm: npt.ArrayLike) -> Codes:
    """int16 samples (any shape) to A-law codes of the same shape."""
    return ALAW_ENCODE[_as_pcm_index(pcm)]


class Law(Enum):
    """Which G.711 companding law; the value is the RFC 3551 static payload type."""

    ULAW = 0
    ALAW = 8

    @property
    def encoding_name(self) -> str:
        """The rtpmap encoding name (RFC 3551 section 4.5.14)."""
        return "PCMU" if self is Law.ULAW else "PCMA"

    @property
    def silence(self) -> int:
        return ULAW_SILENCE if self is Law.ULAW else ALAW_SILENCE

    @classmethod
    def from_encoding_name(cls, name: str) -> Law:
        upper = name.upper()
        if upper == "PCMU":
            return cls.ULAW
        if upper == "PCMA":
            return cls.ALAW
        raise ValueError(f"not a G.711 encoding: {name!r}")

    def decode(self, codes: npt.ArrayLike | bytes) -> Pcm:
        table = ULAW_DECODE if self is Law.ULAW else ALAW_DECODE
        return table[_as_codes(codes)]

    def encode(self, pcm: npt.ArrayLike) -> Codes:
        table = ULAW_ENCODE if self is Law.ULAW else ALAW_ENCODE
        return table[_as_pcm_index(pcm)]

    def gain_table(self, gain: float) -> Codes:
        """A 256-entry code->code table that scales the decoded signal by `gain`.

        Lets the jitter buffer attenuate concealment frames without leaving the coded domain.
        """
        decoded = self.decode(np.arange(256, dtype=np.uint8)).astype(np.float64) * gain
        scaled = np.clip(np.rint(decoded), -32768, 32767).astype(np.int16)
        table = self.encode(scaled)
        table.setflags(write=False)
        return table
