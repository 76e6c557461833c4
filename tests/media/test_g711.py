"""G.711 tables checked exhaustively against the stdlib reference (audioop, Python 3.11)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from media import g711
from media.g711 import Law

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

ALL_SAMPLES = np.arange(65536, dtype=np.uint16).view(np.int16)
ALL_CODES = np.arange(256, dtype=np.uint8)
# The documented µ-law departure: -0 (0x7F) decodes to -1 and -1 encodes to 0x7F.
ULAW_NEG_ZERO = 0x7F


def test_ulaw_encode_matches_reference_for_every_sample_except_minus_one() -> None:
    reference = np.frombuffer(audioop.lin2ulaw(ALL_SAMPLES.tobytes(), 2), dtype=np.uint8)
    ours = g711.ulaw_encode(ALL_SAMPLES)
    differing = ALL_SAMPLES[ours != reference]
    assert differing.tolist() == [-1]
    assert ours[ALL_SAMPLES == -1].tolist() == [ULAW_NEG_ZERO]


def test_alaw_encode_matches_reference_for_every_sample() -> None:
    reference = np.frombuffer(audioop.lin2alaw(ALL_SAMPLES.tobytes(), 2), dtype=np.uint8)
    assert np.array_equal(g711.alaw_encode(ALL_SAMPLES), reference)


def test_ulaw_decode_matches_reference_for_every_code_except_negative_zero() -> None:
    reference = np.frombuffer(audioop.ulaw2lin(ALL_CODES.tobytes(), 2), dtype=np.int16)
    ours = g711.ulaw_decode(ALL_CODES)
    assert ALL_CODES[ours != reference].tolist() == [ULAW_NEG_ZERO]
    assert ours[ULAW_NEG_ZERO] == -1 and reference[ULAW_NEG_ZERO] == 0


def test_alaw_decode_matches_reference_for_every_code() -> None:
    reference = np.frombuffer(audioop.alaw2lin(ALL_CODES.tobytes(), 2), dtype=np.int16)
    assert np.array_equal(g711.alaw_decode(ALL_CODES), reference)


@pytest.mark.parametrize("law", list(Law))
def test_decode_then_encode_is_bit_exact_for_all_256_codes(law: Law) -> None:
    assert np.array_equal(law.encode(law.decode(ALL_CODES)), ALL_CODES)


@pytest.mark.parametrize("law", list(Law))
def test_decode_is_injective(law: Law) -> None:
    assert len(set(law.decode(ALL_CODES).tolist())) == 256


@pytest.mark.parametrize("law", list(Law))
def test_encode_then_decode_is_idempotent(law: Law) -> None:
    once = law.decode(law.encode(ALL_SAMPLES))
    twice = law.decode(law.encode(once))
    assert np.array_equal(once, twice)


@pytest.mark.parametrize("law", list(Law))
def test_quantisation_error_stays_within_the_segment_step(law: Law) -> None:
    decoded = law.decode(law.encode(ALL_SAMPLES)).astype(np.int32)
    error = np.abs(decoded - ALL_SAMPLES.astype(np.int32))
    magnitude = np.abs(ALL_SAMPLES.astype(np.int32))
    # Largest step is 1024 (µ-law) / 1024 (A-law) in the top segment; relative error < 1/16 + 8.
    assert np.all(error <= magnitude // 16 + 132)


def test_batched_shape_is_preserved() -> None:
    rng = np.random.default_rng(7)
    pcm = rng.integers(-32768, 32767, size=(300, 160), dtype=np.int16)
    for law in Law:
        codes = law.encode(pcm)
        assert codes.shape == (300, 160) and codes.dtype == np.uint8
        decoded = law.decode(codes)
        assert decoded.shape == (300, 160) and decoded.dtype == np.int16
        for row in (0, 150, 299):
            assert np.array_equal(codes[row], law.encode(pcm[row]))


def test_bytes_input_is_accepted_by_decoders() -> None:
    payload = bytes(range(256))
    assert np.array_equal(g711.ulaw_decode(payload), g711.ULAW_DECODE)
    assert np.array_equal(g711.alaw_decode(payload), g711.ALAW_DECODE)


def test_encode_rejects_non_int16() -> None:
    with pytest.raises(TypeError):
        g711.ulaw_encode(np.zeros(4, dtype=np.float32))


def test_tables_are_read_only() -> None:
    with pytest.raises(ValueError):
        g711.ULAW_DECODE[0] = 1


@pytest.mark.parametrize("law", list(Law))
def test_silence_code_decodes_to_near_zero(law: Law) -> None:
    assert abs(int(law.decode(np.array([law.silence], dtype=np.uint8))[0])) <= 8


@pytest.mark.parametrize("law", list(Law))
def test_gain_table_halves_amplitude(law: Law) -> None:
    table = law.gain_table(0.5)
    loud = law.encode(np.array([16000, -16000, 0], dtype=np.int16))
    halved = law.decode(table[loud]).astype(int).tolist()
    assert abs(halved[0] - 8000) < 300 and abs(halved[1] + 8000) < 300 and abs(halved[2]) <= 8
    assert np.array_equal(law.gain_table(1.0), ALL_CODES)


def test_law_names_and_payload_types() -> None:
    assert Law.from_encoding_name("pcmu") is Law.ULAW and Law.ULAW.value == 0
    assert Law.from_encoding_name("PCMA") is Law.ALAW and Law.ALAW.value == 8
    assert Law.ALAW.encoding_name == "PCMA"
    with pytest.raises(ValueError):
        Law.from_encoding_name("G729")
