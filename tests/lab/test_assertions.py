"""Audio assertions on synthetic recordings: shipped prompts, the beep, hold music and
party tones placed at known run times, through a G.711 round trip; pass and fail cases,
and the "heard instead" part of failure messages."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import numpy as np
import pytest

from telephony.center.config import demo_lab
from telephony.center.contact import ContactModel
from telephony.lab.assertions import (
    AssertionResult,
    Recording,
    RunRecord,
    SoundLibrary,
    TimelineEvent,
    evaluate,
)
from telephony.lab.scenario import (
    BannerExpect,
    BannersExpect,
    Scenario,
    load_scenario,
    parse_scenario,
    shipped_scenarios,
)

from .synth import clip, music, recording, tone

HEADER = """\
name: synthetic
parties:
  john: {kind: agent, plays: 1850}
  maria: {kind: agent, plays: 2450}
  customer: {kind: customer, plays: 2200}
steps:
  - mark: qc
  - mark: accept
  - mark: consult
  - mark: hold
  - mark: resume
expect:
"""

MARKS = {"qc": 2.0, "accept": 5.0, "consult": 8.0, "hold": 14.0, "resume": 20.0}


@pytest.fixture(scope="module")
def library() -> SoundLibrary:
    return SoundLibrary(demo_lab())


@pytest.fixture(scope="module")
def record() -> RunRecord:
    """A 26 s run: the seed's scenario 1 as the three phones would have heard it.

    john:     'Transferring to agent' at 2.3, beep at 7.0, maria's tone 8-14,
              silence 14-20 (hold all), the customer's tone 20-26.
    maria:    whisper 'BasicQueue' at 5.6 (her recording starts at 5.0), john 8-14,
              'On hold' at 14.2, john again 20-26.
    customer: hold music 2-8 (from 3.5 s into the loop) and 14-20, john and maria 20-26.
    """
    john = recording(
        "john",
        26.0,
        [
            (2.3, clip("Transferring to agent")),
            (7.0, clip("beep")),
            (8.0, tone(2450, 6.0)),
            (20.0, tone(2200, 6.0)),
        ],
    )
    maria = recording(
        "maria",
        21.0,
        [
            (5.6, clip("BasicQueue")),
            (8.0, tone(1850, 6.0)),
            (14.2, clip("On hold")),
            (20.0, tone(1850, 6.0)),
        ],
        start=5.0,
    )
    customer = recording(
        "customer",
        26.0,
        [
            (2.0, music(6.0, offset=3.5)),
            (14.0, music(6.0, offset=11.0)),
            (20.0, tone(1850, 6.0, -16) + tone(2450, 6.0, -16)),
        ],
    )
    timeline = [TimelineEvent.mark(t, name) for name, t in MARKS.items()]
    timeline += [
        TimelineEvent.banner(2.0, "john", "customer", "On hold"),
        TimelineEvent.banner(2.0, "john", "maria", "Connected"),
        TimelineEvent.banner(4.0, "maria", "customer", "Incoming"),
        TimelineEvent.banner(5.0, "maria", "customer", "Connecting"),
        TimelineEvent.banner(8.0, "maria", "customer", "Connected"),
        TimelineEvent.banner(14.0, "john", "maria", "On hold"),
        TimelineEvent.banner(20.0, "john", "customer", "Joined"),
        TimelineEvent.banner(20.0, "john", "maria", "Joined"),
        TimelineEvent.prompt(2.3, "Transferring to agent", "john", 3.5),
    ]
    ctr = {
        "contact": "c1",
        "holdCount": 2,
        "transfers": [{"kind": "quickConnect", "endpoint": "maria", "callerIdName": None}],
        "prompts": [{"what": "Transferring to agent", "to": "john"}, {"what": "Beep"}],
    }
    return RunRecord({"john": john, "maria": maria, "customer": customer}, timeline, [ctr])


def check(expect_yaml: str, record: RunRecord, library: SoundLibrary) -> AssertionResult:
    sc = parse_scenario(HEADER + expect_yaml, "synthetic.yaml")
    (result,) = evaluate(sc, record, library)
    assert result.line == 13
    return result


# -- heard -----------------------------------------------------------------------------------------


def test_heard_prompt_found_at_its_time(record: RunRecord, library: SoundLibrary) -> None:
    r = check(
        "  - heard: {party: john, prompt: Transferring to agent, within: [qc, accept]}\n",
        record,
        library,
    )
    assert r.ok, r.message
    assert (
        r.kind == "heard"
        and r.title == "john hears prompt 'Transferring to agent' within [qc, accept]"
    )
    found = r.evidence.found
    assert found is not None and found.score is not None
    assert found.at == pytest.approx(2.3, abs=0.005) and found.score > 0.95
    assert r.evidence.window == (2.0, 5.0)
    assert "john heard prompt 'Transferring to agent' within 2.0-5.0 s" in r.message


def test_heard_prompt_in_a_recording_that_starts_late(
    record: RunRecord, library: SoundLibrary
) -> None:
    r = check(
        "  - heard: {party: maria, prompt: BasicQueue, within: [accept, consult]}\n",
        record,
        library,
    )
    assert r.ok, r.message
    assert r.evidence.found is not None and r.evidence.found.at == pytest.approx(5.6, abs=0.005)


def test_wrong_prompt_says_what_was_heard_instead(record: RunRecord, library: SoundLibrary) -> None:
    r = check(
        "  - heard: {party: maria, prompt: PasswordReset, within: [accept, consult]}\n",
        record,
        library,
    )
    assert not r.ok
    assert r.message.startswith(
        "maria: expected prompt 'PasswordReset' within 5.0-8.0 s; best match 0."
    )
    assert re.search(
        r"; heard instead: prompt 'BasicQueue' \((0\.9\d|1\.00) at 5\.6-6\.", r.message
    )
    assert r.evidence.found is not None and r.evidence.found.score is not None
    assert r.evidence.found.score < 0.6
    assert r.evidence.heard_instead[0].label == "prompt 'BasicQueue'"


def test_prompt_outside_the_window_is_not_heard(record: RunRecord, library: SoundLibrary) -> None:
    r = check(
        "  - heard: {party: john, prompt: Transferring to agent, within: [consult, hold]}\n",
        record,
        library,
    )
    assert not r.ok
    assert "heard instead: maria (2450 Hz tone) (8.0-14.0 s)" in r.message


def test_heard_beep(record: RunRecord, library: SoundLibrary) -> None:
    r = check("  - heard: {party: john, beep: true, within: [accept, consult]}\n", record, library)
    assert r.ok, r.message
    assert r.evidence.found is not None
    assert r.evidence.found.at == pytest.approx(7.0, abs=0.03)
    assert r.evidence.found.end == pytest.approx(7.2, abs=0.03)
    missing = check(
        "  - heard: {party: maria, beep: true, within: [accept, consult]}\n", record, library
    )
    assert not missing.ok
    assert "expected beep within 5.0-8.0 s; not found; heard instead: prompt 'BasicQueue'" in (
        missing.message
    )


def test_a_steady_tone_is_not_a_beep(library: SoundLibrary) -> None:
    rec = RunRecord({"john": recording("john", 6.0, [(1.0, tone(1000, 4.0))])})
    r = check("  - heard: {party: john, beep: true}\n", rec, library)
    assert not r.ok


def test_heard_music_throughout(record: RunRecord, library: SoundLibrary) -> None:
    r = check(
        "  - heard: {party: customer, music: true, during: [qc+0.5, accept+2.5]}\n",
        record,
        library,
    )
    assert r.ok, r.message
    assert r.evidence.details["coverage"] >= 0.95
    assert r.evidence.found is not None and r.evidence.found.score is not None
    assert r.evidence.found.score > 0.9


def test_music_with_a_gap_fails_throughout(record: RunRecord, library: SoundLibrary) -> None:
    r = check(
        "  - heard: {party: customer, music: true, during: [qc+0.5, hold+5]}\n",
        record,
        library,
    )
    assert not r.ok
    assert r.message.startswith("customer: expected hold music throughout 2.5-19.0 s; present only")
    assert "heard instead: silence" in r.message
    within = check(
        "  - heard: {party: customer, music: true, within: [consult, hold+5]}\n", record, library
    )
    assert within.ok and within.evidence.found is not None
    assert within.evidence.found.at == pytest.approx(14.0, abs=0.51)


def test_heard_voice_of_a_party(record: RunRecord, library: SoundLibrary) -> None:
    r = check("  - heard: {party: john, voice: maria, during: [consult, hold]}\n", record, library)
    assert r.ok, r.message
    assert r.evidence.details["coverage"] > 0.95
    both = [
        check(
            f"  - heard: {{party: customer, voice: {who}, during: [resume, end]}}\n",
            record,
            library,
        )
        for who in ("john", "maria")
    ]
    assert all(b.ok for b in both), [b.message for b in both]  # a three-way mix


def test_heard_tone_and_text(record: RunRecord, library: SoundLibrary) -> None:
    assert check("  - heard: {party: john, tone: 2450}\n", record, library).ok
    r = check(
        "  - heard: {party: maria, text: 'You are on hold', within: [hold, resume]}\n",
        record,
        library,
    )
    assert r.ok, r.message
    assert r.evidence.found is not None and r.evidence.found.at == pytest.approx(14.2, abs=0.005)


def test_heard_when_the_party_has_no_recording(record: RunRecord, library: SoundLibrary) -> None:
    empty = RunRecord({}, record.timeline)
    r = check("  - heard: {party: john, beep: true}\n", empty, library)
    assert not r.ok and "john: expected beep; no recording" in r.message
    assert check("  - not_heard: {party: john, beep: true}\n", empty, library).ok


def test_a_window_at_a_mark_the_run_never_reached(library: SoundLibrary) -> None:
    rec = RunRecord({"john": recording("john", 3.0, [])}, [TimelineEvent.mark(1.0, "qc")])
    r = check("  - heard: {party: john, beep: true, within: [qc, hold]}\n", rec, library)
    assert not r.ok and r.message == "the run never reached mark 'hold'"


# -- not heard, silence ----------------------------------------------------------------------------


def test_not_heard(record: RunRecord, library: SoundLibrary) -> None:
    ok = check(
        "  - not_heard: {party: john, voice: customer, during: [hold, resume]}\n", record, library
    )
    assert ok.ok, ok.message
    bad = check(
        "  - not_heard: {party: john, voice: maria, during: [consult, resume]}\n", record, library
    )
    assert not bad.ok
    assert bad.message == (
        "john: expected not to hear maria (2450 Hz tone) throughout 8.0-20.0 s; "
        "heard it: maria (2450 Hz tone) (8.0-14.0 s)"
    )
    music_ok = check("  - not_heard: {party: john, music: true}\n", record, library)
    assert music_ok.ok, music_ok.message


def test_silence(record: RunRecord, library: SoundLibrary) -> None:
    r = check("  - silence: {party: john, during: [hold+0.2, resume-0.2]}\n", record, library)
    assert r.ok, r.message
    assert r.evidence.details["loudestDb"] < -45
    bad = check("  - silence: {party: john, during: [consult, resume]}\n", record, library)
    assert not bad.ok
    assert bad.message.startswith("john: expected silence throughout 8.0-20.0 s; loudest -")
    assert "heard instead: maria (2450 Hz tone) (8.0-14.0 s)" in bad.message


def test_silence_names_unknown_sound_by_its_class(library: SoundLibrary) -> None:
    backwards = clip("Welcome")[::-1]  # speech, but no prompt we know
    rec = RunRecord({"john": Recording("john", backwards[:16000], start=1.0)})
    r = check("  - silence: {party: john}\n", rec, library)
    assert not r.ok and "heard instead: speech 1.0-3.0 s" in r.message


# -- two-way ---------------------------------------------------------------------------------------


def test_two_way(record: RunRecord, library: SoundLibrary) -> None:
    r = check("  - two_way: [john, maria]\n    during: [consult+0.2, hold-0.2]\n", record, library)
    assert r.ok, r.message
    assert r.evidence.details["johnHeardMaria"] > 0.95
    assert r.evidence.details["mariaHeardJohn"] > 0.95


def test_two_way_one_direction_missing(record: RunRecord, library: SoundLibrary) -> None:
    r = check("  - two_way: [john, customer]\n    during: [hold, resume]\n", record, library)
    assert not r.ok
    assert r.message.startswith("john<->customer: expected two-way audio throughout 14.0-20.0 s")
    assert "john heard customer 0% of the window (heard instead: silence)" in r.message
    assert "customer heard john 0% of the window (heard instead: hold music (" in r.message


# -- banners and CTR -------------------------------------------------------------------------------


def test_banner_at_a_mark(record: RunRecord, library: SoundLibrary) -> None:
    ok = check(
        "  - banner: {agent: john, connection: maria, state: Connected, at: accept}\n",
        record,
        library,
    )
    assert ok.ok and ok.message == "john's CCP read banner maria: Connected at 5.0 s"
    bad = check(
        "  - banner: {agent: john, connection: maria, state: Connected, at: hold+1}\n",
        record,
        library,
    )
    assert not bad.ok
    assert bad.message == (
        "john: expected banner maria: Connected at 15.0 s; it read On hold; "
        "maria showed: Connected (2.0 s), On hold (14.0 s), Joined (20.0 s)"
    )


def test_banner_within_and_unknown_connection(record: RunRecord, library: SoundLibrary) -> None:
    ok = check(
        "  - banner: {agent: maria, connection: customer, state: Connected, within: [consult, hold]}\n",
        record,
        library,
    )
    assert ok.ok and ok.evidence.found is not None and ok.evidence.found.at == 8.0
    bad = check("  - banner: {agent: john, connection: supplier, state: Joined}\n", record, library)
    assert not bad.ok
    assert "no banner for 'supplier'; the CCP showed: customer: On hold (2.0 s)" in bad.message


def test_banner_sequences(record: RunRecord, library: SoundLibrary) -> None:
    ok = check(
        "  - banners:\n      maria: [Incoming, Connecting, Connected]\n"
        "      john: {maria: [Connected, On hold, Joined]}\n",
        record,
        library,
    )
    assert ok.ok, ok.message
    bad = check("  - banners: {maria: [Incoming, Connected, Joined]}\n", record, library)
    assert not bad.ok
    assert bad.message == (
        "maria: expected banners Incoming → Connected → Joined; saw Incoming → Connecting → "
        "Connected (missing 'Joined' after Incoming → Connected)"
    )


def test_ctr_fields(record: RunRecord, library: SoundLibrary) -> None:
    ok = check(
        "  - ctr:\n"
        "      holdCount: {gte: 2}\n"
        "      'transfers[0].endpoint': maria\n"
        "      'prompts[*].what': {contains: Transferring to agent}\n"
        "      'prompts': {len: 2}\n",
        record,
        library,
    )
    assert ok.ok, ok.message
    bad = check(
        "  - ctr: {holdCount: 1, 'transfers[1].endpoint': maria, 'transfers[0].callerIdName': x}\n",
        record,
        library,
    )
    assert not bad.ok
    assert bad.message == (
        "ctr[0]: holdCount: expected 1, found 2; transfers[1].endpoint: expected 'maria', "
        "found 'nothing'; transfers[0].callerIdName: expected 'x', found None"
    )
    missing = check("  - ctr: {holdCount: 2}\n    record: 1\n", record, library)
    assert not missing.ok and "the run has 1" in missing.message


def test_quality(record: RunRecord, library: SoundLibrary) -> None:
    ok = check(
        "  - quality: {party: john, prompt: Transferring to agent, min_snr_db: 20, min_level_db: -30}\n",
        record,
        library,
    )
    assert ok.ok, ok.message
    assert ok.evidence.details["snrDb"] > 25  # µ-law: ~35 dB
    bad = check(
        "  - quality: {party: john, prompt: Transferring to agent, min_snr_db: 60}\n",
        record,
        library,
    )
    assert not bad.ok and "SNR" in bad.message and "< 60 dB" in bad.message


# -- the record ------------------------------------------------------------------------------------


def test_record_save_and_load_round_trip(record: RunRecord, tmp_path: Path) -> None:
    record.save(tmp_path)
    again = RunRecord.load(tmp_path)
    assert again.timeline == record.timeline and again.ctrs == record.ctrs
    assert again.marks() == MARKS
    maria = again.recordings["maria"]
    assert maria.start == 5.0 and maria.duration == pytest.approx(21.0)
    assert np.max(np.abs(maria.samples - record.recordings["maria"].samples)) < 1e-4


def test_event_json_becomes_timeline() -> None:
    t0 = 1_700_000_000.0
    banner = TimelineEvent.from_event_json(
        {
            "type": "banner",
            "contact": "c1",
            "connection": "k",
            "agent": "john",
            "party": "maria",
            "banner": "Connected",
            "previous": "Connecting",
            "at": "2023-11-14T22:13:22.500Z",
        },
        t0,
    )
    assert banner.kind == "banner" and banner.party == "john" and banner.t == pytest.approx(2.5)
    assert banner.data["connection"] == "maria" and banner.data["state"] == "Connected"
    added = TimelineEvent.from_event_json(
        {
            "type": "connectionAdded",
            "agent": "john",
            "party": "maria",
            "banner": "Connected",
            "at": t0 + 1,
        },
        t0,
    )
    assert added.kind == "banner" and added.data["state"] == "Connected"
    prompt = TimelineEvent.from_event_json(
        {"kind": "prompt", "what": "Beep", "to": "john", "at": t0 + 3, "end": t0 + 3.2}, t0
    )
    assert (prompt.kind, prompt.party, prompt.text) == ("prompt", "john", "Beep")
    assert prompt.data["end"] == pytest.approx(3.2)
    other = TimelineEvent.from_event_json(
        {"type": "offerCreated", "agent": "maria", "queue": None, "at": t0 + 4}, t0
    )
    assert other.kind == "offerCreated" and other.party == "maria"


# -- the negative test and the shipped expectations ------------------------------------------------


def test_broken_whisper_scenario_fails_naming_party_prompt_and_what_was_heard() -> None:
    (path,) = [p for p in shipped_scenarios(True) if p.parent.name == "broken"]
    sc = load_scenario(path)
    marks = {
        "quick_connect": 2.0,
        "maria_accepts": 6.0,
        "consult": 10.0,
        "leave": 14.0,
        "done": 18.0,
    }
    john = recording(
        "john",
        18.0,
        [
            (2.2, clip("Transferring to agent")),
            (6.5, clip("Connecting to agent")),  # the customer whisper: right
            (10.0, tone(2450, 4.0)),
        ],
    )
    maria = recording(
        "maria",
        12.0,
        [(6.4, clip("Connecting to agent")), (10.0, tone(1850, 4.0)), (14.0, tone(2200, 4.0))],
        start=6.0,
    )
    customer = recording("customer", 18.0, [(2.0, music(12.0)), (14.0, tone(2450, 4.0))])
    rec = RunRecord(
        {"john": john, "maria": maria, "customer": customer},
        [TimelineEvent.mark(t, name) for name, t in marks.items()],
    )
    results = evaluate(sc, rec, SoundLibrary(sc.instance_config))
    failed = [r for r in results if not r.ok]
    assert [r.title for r in failed] == ["maria hears the custom agent whisper"], [
        r.message for r in failed
    ]
    message = failed[0].message
    assert message.startswith("maria: expected prompt 'Internal transfer' within 6.0-10.5 s")
    assert re.search(
        r"heard instead: prompt 'Connecting to agent' \((0\.9\d|1\.00) at 6\.4", message
    )
    assert failed[0].line == sc.line("expect", 1)


class _Driver:
    """Drives the real CCP model through a shipped scenario's CCP steps and records its
    banner events on the run's clock (what the runner will publish), with the marks."""

    def __init__(self) -> None:
        counter = itertools.count(1)
        self.model = ContactModel(demo_lab(), now=0.0, new_id=lambda: f"id{next(counter)}")
        self.timeline: list[TimelineEvent] = []
        self.t = 0.0

    def at(self, t: float) -> float:
        self.t = t
        self.flush()
        return t

    def mark(self, name: str) -> None:
        self.timeline.append(TimelineEvent.mark(self.t, name))

    def flush(self) -> None:
        while (event := self.model.next_event()) is not None:
            self.timeline.append(TimelineEvent.from_event_json(event.to_json(), 0.0))

    def conn(self, agent: str, party: str) -> str:
        for contact in self.model.snapshot(agent)["contacts"]:
            for conn in contact["connections"]:
                if conn["party"] == party:
                    return str(conn["id"])
        raise AssertionError(party)

    def first_leg(self) -> str:
        c1 = self.model.create_contact(self.at(1.0)).id
        self.model.enqueue(c1, "BasicQueue", self.at(2.0))
        self.mark("john_rings")
        self.model.accept("john", c1, self.at(3.0))
        self.mark("john_accepts")
        self.model.connected(c1, self.at(4.0))
        self.mark("first_leg")
        return c1


def _banner_expectations(sc: Scenario) -> Scenario:
    kept = [e for e in sc.expect if isinstance(e, BannerExpect | BannersExpect)]
    assert kept
    return sc.model_copy(update={"expect": kept})


def _assert_all_pass(sc: Scenario, driver: _Driver) -> None:
    driver.flush()
    results = evaluate(_banner_expectations(sc), RunRecord({}, driver.timeline))
    assert all(r.ok for r in results), [r.message for r in results if not r.ok]


def _scenario(name: str) -> Scenario:
    (path,) = [p for p in shipped_scenarios() if p.name == name]
    return load_scenario(path)


def test_scenario1_banner_expectations_hold_for_the_ccp_model() -> None:
    d = _Driver()
    c1 = d.first_leg()
    m = d.model
    d.at(10.0)
    d.mark("quick_connect")
    c2 = m.quick_connect("john", c1, "Maria", 10.0).transfer_contact
    assert c2 is not None
    m.transfer_to_agent(c2, "maria", d.at(11.0))
    d.mark("maria_rings")
    m.accept("maria", c2, d.at(12.0))
    d.mark("maria_accepts")
    m.connected(c2, d.at(13.0))
    d.mark("consult")
    for t, action in ((15.0, "join"), (17.0, "hold_all"), (19.0, "rejoin"), (21.0, "leave")):
        d.at(t)
        d.mark(action)
        {"join": m.conference, "hold_all": m.hold_all, "rejoin": m.conference, "leave": m.leave}[
            action
        ]("john", c1, t)
    d.at(23.0)
    d.mark("done")
    m.customer_hung_up(c1, d.at(24.0))
    _assert_all_pass(_scenario("scenario1_agent_quick_connect.yaml"), d)


def test_scenario2_banner_expectations_hold_for_the_ccp_model() -> None:
    d = _Driver()
    c1 = d.first_leg()
    m = d.model
    d.at(10.0)
    d.mark("quick_connect")
    c2 = m.quick_connect("john", c1, "PasswordReset", 10.0).transfer_contact
    assert c2 is not None
    m.enqueue(c2, "PasswordReset", d.at(11.0))
    d.mark("maria_rings")
    m.accept("maria", c2, d.at(12.0))
    m.connected(c2, d.at(13.0))
    d.mark("consult")
    d.at(14.9)
    d.mark("swap")  # the runner marks before it acts
    m.swap("john", c1, d.at(15.0))
    m.conference("john", c1, d.at(17.0))
    m.leave("john", c1, d.at(19.0))
    m.agent_hung_up("maria", d.at(21.0))
    _assert_all_pass(_scenario("scenario2_queue_quick_connect.yaml"), d)


def test_scenario3_banner_expectations_hold_for_the_ccp_model() -> None:
    d = _Driver()
    c1 = d.first_leg()
    m = d.model
    started = m.quick_connect("john", c1, "Supplier", d.at(10.0))
    m.third_party_answered(started.connection, d.at(11.0))
    m.conference("john", c1, d.at(13.0))
    m.leave("john", c1, d.at(15.0))
    m.third_party_hung_up(started.connection, d.at(17.0))
    _assert_all_pass(_scenario("scenario3_phone_number_quick_connect.yaml"), d)


@pytest.mark.parametrize(
    ("name", "fail"),
    [
        ("scenario1_maria_rejects.yaml", "reject"),
        ("scenario1_maria_does_not_answer.yaml", "timeout"),
        ("scenario3_supplier_busy.yaml", "busy"),
        ("scenario2_nobody_staffed.yaml", "staffing"),
    ],
)
def test_failure_path_banner_expectations_hold_for_the_ccp_model(name: str, fail: str) -> None:
    d = _Driver()
    m = d.model
    if fail == "staffing":
        m.set_status("maria", "Offline", d.at(0.5))
    c1 = d.first_leg()
    d.at(10.0)
    d.mark("quick_connect")
    if fail in ("reject", "timeout"):
        c2 = m.quick_connect("john", c1, "Maria", 10.0).transfer_contact
        assert c2 is not None
        m.transfer_to_agent(c2, "maria", d.at(11.0))
        d.mark("maria_rings")
        if fail == "reject":
            d.at(12.0)
            d.mark("reject")
            m.reject("maria", c2, 12.0)
        else:
            m.handle_timer(d.at(31.0))
            d.at(31.5)
            d.mark("timed_out")
    elif fail == "busy":
        started = m.quick_connect("john", c1, "Supplier", 10.0)
        m.third_party_failed(started.connection, "486 Busy Here", d.at(11.0))
    else:
        started = m.quick_connect("john", c1, "PasswordReset", 10.0)
        assert started.transfer_contact is not None
        m.abandon_transfer(started.transfer_contact, "no agents staffed", d.at(14.0))
    d.at(40.0)
    d.mark("resume")
    m.resume("john", d.conn("john", "customer"), 40.0)
    m.end_connection("john", d.conn("john", "customer"), d.at(45.0))
    _assert_all_pass(_scenario(name), d)
