"""Conference bridge routing: who hears whom is exactly the connection matrix."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from media.bridge import FRAME_SAMPLES, SAMPLE_RATE, Bridge, BridgeError, Connection

Pcm = npt.NDArray[np.int16]


def tone_frame(freq: float, tick: int, amplitude: float = 6000.0) -> Pcm:
    n = np.arange(tick * FRAME_SAMPLES, (tick + 1) * FRAME_SAMPLES)
    return np.rint(amplitude * np.sin(2 * np.pi * freq * n / SAMPLE_RATE)).astype(np.int16)


def tone_power(signal: Pcm, freq: float) -> float:
    """Goertzel power of ``freq`` in ``signal``, normalised to the amplitude of a pure sine."""
    x = signal.astype(np.float64)
    coeff = 2 * np.cos(2 * np.pi * freq / SAMPLE_RATE)
    s1 = s2 = 0.0
    for sample in x:
        s1, s2 = sample + coeff * s1 - s2, s1
    power = s1 * s1 + s2 * s2 - coeff * s1 * s2
    return float(2 * np.sqrt(max(power, 0.0)) / len(x))


def test_two_party_call_is_bit_exact_both_ways() -> None:
    bridge = Bridge()
    a, b = bridge.add_port("caller"), bridge.add_port("agent")
    bridge.connect(a, b)
    bridge.connect(b, a)
    rng = np.random.default_rng(1)
    for _ in range(5):
        fa = rng.integers(-32768, 32767, FRAME_SAMPLES, dtype=np.int16, endpoint=True)
        fb = rng.integers(-32768, 32767, FRAME_SAMPLES, dtype=np.int16, endpoint=True)
        bridge.write(a, fa)
        bridge.write(b, fb)
        out = bridge.tick()
        assert set(out) == {a, b}
        assert out[b].dtype == np.int16
        np.testing.assert_array_equal(out[b], fa)
        np.testing.assert_array_equal(out[a], fb)


def test_source_that_wrote_nothing_is_silent_and_frames_reset_each_tick() -> None:
    bridge = Bridge()
    a, b = bridge.add_port("a"), bridge.add_port("b")
    bridge.connect(a, b)
    bridge.write(a, np.full(FRAME_SAMPLES, 100, np.int16))
    np.testing.assert_array_equal(bridge.tick()[b], np.full(FRAME_SAMPLES, 100))
    # Next tick a writes nothing: b hears silence, not the stale frame.
    np.testing.assert_array_equal(bridge.tick()[b], np.zeros(FRAME_SAMPLES))


def test_port_with_no_connections_gets_no_frame() -> None:
    bridge = Bridge()
    a, b, lonely = (bridge.add_port(n) for n in ("a", "b", "lonely"))
    bridge.connect(a, b)
    bridge.write(lonely, np.ones(FRAME_SAMPLES, np.int16))
    assert set(bridge.tick()) == {b}


def test_whisper_reaches_only_the_agent() -> None:
    bridge = Bridge()
    customer, agent, whisper = (bridge.add_port(n) for n in ("customer", "agent", "whisper"))
    bridge.connect(customer, agent)
    bridge.connect(agent, customer)
    bridge.connect(whisper, agent)
    for tick in range(10):
        bridge.write(customer, tone_frame(500, tick))
        bridge.write(agent, tone_frame(700, tick))
        bridge.write(whisper, tone_frame(1300, tick))
        out = bridge.tick()
        assert whisper not in out  # nobody feeds the player
    heard_customer, heard_agent = out[customer], out[agent]
    assert tone_power(heard_agent, 1300) > 5000
    assert tone_power(heard_agent, 500) > 5000
    assert tone_power(heard_customer, 1300) < 10
    np.testing.assert_array_equal(heard_customer, tone_frame(700, 9))


def test_held_party_hears_hold_music_and_is_not_heard_then_resumes() -> None:
    bridge = Bridge()
    customer, agent, music = (bridge.add_port(n) for n in ("customer", "agent", "music"))
    bridge.connect(customer, agent)
    bridge.connect(agent, customer)
    held = bridge.hold(customer, music)
    assert bridge.sources_of(customer) == {music: 1.0}
    assert bridge.listeners_of(customer) == {}
    bridge.write(customer, tone_frame(500, 0))
    bridge.write(agent, tone_frame(700, 0))
    bridge.write(music, tone_frame(900, 0))
    out = bridge.tick()
    np.testing.assert_array_equal(out[customer], tone_frame(900, 0))
    assert agent not in out  # the agent hears nobody while the customer is held

    bridge.resume(held)
    assert sorted(bridge.connections(), key=lambda c: c.source) == [
        Connection(customer, agent),
        Connection(agent, customer),
    ]
    bridge.write(customer, tone_frame(500, 1))
    bridge.write(agent, tone_frame(700, 1))
    bridge.write(music, tone_frame(900, 1))
    out = bridge.tick()
    np.testing.assert_array_equal(out[agent], tone_frame(500, 1))
    np.testing.assert_array_equal(out[customer], tone_frame(700, 1))


def test_three_party_conference_each_hears_exactly_the_other_two() -> None:
    bridge = Bridge()
    freqs = {bridge.add_port(f"party{f}"): f for f in (440.0, 1000.0, 1800.0)}
    bridge.conference(freqs)
    heard: dict[int, list[Pcm]] = {slot: [] for slot in freqs}
    for tick in range(25):  # half a second
        for slot, f in freqs.items():
            bridge.write(slot, tone_frame(f, tick))
        for slot, frame in bridge.tick().items():
            heard[slot].append(frame)
    for slot, own in freqs.items():
        recording = np.concatenate(heard[slot])
        others = [f for f in freqs.values() if f != own]
        for f in others:
            assert tone_power(recording, f) == pytest.approx(6000, rel=0.02)
        assert tone_power(recording, own) < 30  # its own tone is absent
        # And nothing else: the mix is exactly the sum of the other two.
        expected = np.concatenate(
            [sum(tone_frame(f, t).astype(np.int32) for f in others) for t in range(25)]
        )
        np.testing.assert_array_equal(recording, expected)


def test_listen_only_monitor_hears_all_and_is_heard_by_none() -> None:
    bridge = Bridge()
    a, b, supervisor = (bridge.add_port(n) for n in ("a", "b", "supervisor"))
    bridge.conference([a, b, supervisor])
    bridge.listen_only(supervisor, [a, b])
    assert bridge.sources_of(supervisor) == {a: 1.0, b: 1.0}
    assert bridge.listeners_of(supervisor) == {}
    assert bridge.sources_of(a) == {b: 1.0}


def test_levels_scale_and_mix_saturates_instead_of_wrapping() -> None:
    bridge = Bridge()
    a, b, c = (bridge.add_port(n) for n in "abc")
    bridge.connect(a, c, level=0.5)
    bridge.write(a, np.full(FRAME_SAMPLES, 1001, np.int16))
    np.testing.assert_array_equal(bridge.tick()[c], np.full(FRAME_SAMPLES, 500))  # round half even
    bridge.connect(a, c)  # reconnect changes the level back to unity
    bridge.connect(b, c)
    bridge.write(a, np.full(FRAME_SAMPLES, 30000, np.int16))
    bridge.write(b, np.full(FRAME_SAMPLES, 30000, np.int16))
    np.testing.assert_array_equal(bridge.tick()[c], np.full(FRAME_SAMPLES, 32767))
    bridge.write(a, np.full(FRAME_SAMPLES, -30000, np.int16))
    bridge.write(b, np.full(FRAME_SAMPLES, -30000, np.int16))
    np.testing.assert_array_equal(bridge.tick()[c], np.full(FRAME_SAMPLES, -32768))


def reference_mix(inputs: dict[int, dict[int, float]], frames: dict[int, Pcm]) -> dict[int, Pcm]:
    out = {}
    for sink, sources in inputs.items():
        acc = np.zeros(FRAME_SAMPLES)
        for src, level in sources.items():
            acc += frames.get(src, np.zeros(FRAME_SAMPLES)).astype(np.float64) * level
        out[sink] = np.clip(np.rint(acc), -32768, 32767).astype(np.int16)
    return out


@pytest.mark.parametrize("density", [0.02, 0.2, 0.9])
@pytest.mark.parametrize("unity", [True, False])
def test_mix_matches_a_naive_reference_on_random_routings(density: float, unity: bool) -> None:
    rng = np.random.default_rng(int(density * 100) + unity)
    bridge = Bridge(capacity=4)  # forces the frame buffer to grow
    slots = [bridge.add_port(f"p{i}") for i in range(40)]
    inputs: dict[int, dict[int, float]] = {}
    for dst in slots:
        for src in slots:
            if src != dst and rng.random() < density:
                level = 1.0 if unity else float(rng.choice([0.25, 0.5, 1.0, 1.5]))
                bridge.connect(src, dst, level)
                inputs.setdefault(dst, {})[src] = level
    for _ in range(3):
        frames = {
            s: rng.integers(-20000, 20000, FRAME_SAMPLES).astype(np.int16)
            for s in slots
            if rng.random() < 0.8
        }
        for s, f in frames.items():
            bridge.write(s, f)
        out = bridge.tick()
        expected = reference_mix(inputs, frames)
        assert out.keys() == expected.keys()
        for sink in expected:
            # Float32 level products may round differently by one LSB; unity is exact.
            tolerance = 0 if unity else 1
            diff = np.abs(out[sink].astype(np.int32) - expected[sink].astype(np.int32))
            assert int(diff.max()) <= tolerance


def test_dense_and_sparse_plans_are_both_exercised() -> None:
    sparse, dense = Bridge(), Bridge()
    s_slots = [sparse.add_port(str(i)) for i in range(30)]
    d_slots = [dense.add_port(str(i)) for i in range(30)]
    for a, b in zip(s_slots[0::2], s_slots[1::2], strict=True):
        sparse.conference([a, b])
    dense.conference(d_slots)
    sparse.tick()
    dense.tick()
    assert sparse._compiled is not None and sparse._compiled.dense is None
    assert dense._compiled is not None and dense._compiled.dense is not None


def test_removed_slot_is_never_reused_and_its_row_starts_silent() -> None:
    bridge = Bridge()
    a, b = bridge.add_port("a"), bridge.add_port("b")
    bridge.connect(a, b)
    bridge.connect(b, a)
    bridge.write(a, np.full(FRAME_SAMPLES, 7, np.int16))
    bridge.remove_port(a)
    assert bridge.sources_of(b) == {}
    assert bridge.listeners_of(b) == {}
    with pytest.raises(BridgeError):
        bridge.write(a, np.zeros(FRAME_SAMPLES, np.int16))
    with pytest.raises(BridgeError):
        bridge.connect(a, b)
    c = bridge.add_port("c")  # takes over a's row, not a's slot
    assert c not in (a, b)
    bridge.connect(c, b)
    np.testing.assert_array_equal(bridge.tick()[b], np.zeros(FRAME_SAMPLES))
    assert len(bridge) == 2 and a not in bridge and bridge.name(c) == "c"


def test_bad_frames_and_levels_are_rejected() -> None:
    bridge = Bridge()
    a, b = bridge.add_port("a"), bridge.add_port("b")
    with pytest.raises(BridgeError):
        bridge.write(a, np.zeros(80, np.int16))
    with pytest.raises(BridgeError):
        bridge.connect(a, b, level=-1.0)
    with pytest.raises(BridgeError):
        bridge.connect(a, b, level=float("nan"))
    bridge.disconnect(a, b)  # not connected: no-op


def test_routing_change_takes_effect_on_the_next_tick() -> None:
    bridge = Bridge()
    a, b, c = (bridge.add_port(n) for n in "abc")
    bridge.connect(a, c)
    bridge.write(a, np.full(FRAME_SAMPLES, 10, np.int16))
    bridge.write(b, np.full(FRAME_SAMPLES, 20, np.int16))
    assert int(bridge.tick()[c][0]) == 10
    bridge.disconnect(a, c)
    bridge.connect(b, c)
    bridge.write(a, np.full(FRAME_SAMPLES, 10, np.int16))
    bridge.write(b, np.full(FRAME_SAMPLES, 20, np.int16))
    assert int(bridge.tick()[c][0]) == 20
