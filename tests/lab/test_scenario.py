"""Scenario files: the shipped ones load, and every mistake is reported with file, line, field."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from telephony.lab.scenario import (
    CallStep,
    CcpStep,
    HeardExpect,
    MarkStep,
    ScenarioError,
    TwoWayExpect,
    WaitForStep,
    load_scenario,
    parse_scenario,
    resolve_time,
    shipped_scenarios,
)

GOOD = """\
name: minimal
parties:
  john: {kind: agent, plays: 1850}
  customer: {kind: customer, plays: Welcome}
steps:
  - call: {from: customer, to: "+15550100"}
  - mark: talking
  - wait: 2
expect:
  - two_way: [john, customer]
    during: [talking+0.5, end]
"""


def problems(text: str, file: str = "s.yaml") -> list[str]:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(textwrap.dedent(text), file)
    return [str(p) for p in info.value.problems]


# -- the shipped scenarios -------------------------------------------------------------------------


def test_every_shipped_scenario_loads() -> None:
    paths = shipped_scenarios(include_broken=True)
    names = {p.name for p in paths}
    assert {
        "scenario1_agent_quick_connect.yaml",
        "scenario2_queue_quick_connect.yaml",
        "scenario3_phone_number_quick_connect.yaml",
        "scenario1_maria_rejects.yaml",
        "scenario1_maria_does_not_answer.yaml",
        "scenario2_nobody_staffed.yaml",
        "scenario3_supplier_busy.yaml",
        "scenario1_custom_whisper.yaml",
    } <= names
    for path in paths:
        scenario = load_scenario(path)
        assert scenario.expect, path
        assert scenario.source == path.resolve()


def test_seed_scenario1_has_the_must_show_assertions() -> None:
    sc = load_scenario(Path(shipped_scenarios()[0]).parent / "scenario1_agent_quick_connect.yaml")
    assert set(sc.parties) == {"john", "maria", "customer"}
    assert sc.config_path.name == "demo_lab.yaml"
    heard = [e.heard for e in sc.expect if isinstance(e, HeardExpect)]
    assert ("john", "prompt", "Transferring to agent") in [(h.party, *h.item) for h in heard]
    assert ("john", "beep", True) in [(h.party, *h.item) for h in heard]
    assert any(h.party == "customer" and h.music and h.during for h in heard)
    pairs = {frozenset(e.two_way) for e in sc.expect if isinstance(e, TwoWayExpect)}
    assert pairs == {
        frozenset(("john", "customer")),
        frozenset(("john", "maria")),
        frozenset(("maria", "customer")),
    }
    actions = [s.ccp.action for s in sc.steps if isinstance(s, CcpStep)]
    assert actions == [
        "accept",
        "quickConnect",
        "accept",
        "conference",
        "holdAll",
        "conference",
        "leave",
    ]


def test_broken_scenario_runs_against_its_own_lab() -> None:
    (path,) = [p for p in shipped_scenarios(True) if p.parent.name == "broken"]
    sc = load_scenario(path)
    assert sc.config_path == (path.parent / "lab" / "lab.yaml").resolve()
    cfg = sc.instance_config
    assert cfg.quick_connects["Maria"].flow == "Internal agent transfer"  # type: ignore[union-attr]
    assert "Internal agent whisper" in cfg.flows


# -- the model -------------------------------------------------------------------------------------


def test_minimal_scenario_parses_shorthands_and_lines() -> None:
    sc = parse_scenario(GOOD, "s.yaml")
    assert sc.parties["john"].plays is not None and sc.parties["john"].plays.tone == 1850
    assert sc.parties["customer"].plays is not None
    assert sc.parties["customer"].plays.prompt == "Welcome"
    assert sc.parties["john"].answer == "auto" and sc.sip_user("john") == "john"
    call = sc.steps[0]
    assert isinstance(call, CallStep) and call.call.caller == "customer"
    assert isinstance(sc.steps[1], MarkStep) and sc.marks() == ["talking"]
    assert sc.line("steps", 1) == 7
    assert sc.line("expect", 0) == 10
    assert sc.line("expect", 0, "during") == 11
    assert sc.line("expect", 0, "during", 5) == 11  # unknown deeper paths fall back upwards


def test_wait_for_event_and_call() -> None:
    sc = parse_scenario(
        GOOD.replace(
            "  - wait: 2\n",
            "  - wait_for: {event: {type: offerCreated, agent: john}, within: 5}\n"
            "  - wait_for: {call: {party: customer, state: ringing}}\n",
        ),
        "s.yaml",
    )
    first, second = sc.steps[2], sc.steps[3]
    assert isinstance(first, WaitForStep) and first.wait_for.event == {
        "type": "offerCreated",
        "agent": "john",
    }
    assert isinstance(second, WaitForStep) and second.wait_for.within == 10.0


def test_resolve_time() -> None:
    marks = {"join": 12.0}
    assert resolve_time(3, marks, 40.0) == 3.0
    assert resolve_time("join", marks, 40.0) == 12.0
    assert resolve_time("join+0.5", marks, 40.0) == 12.5
    assert resolve_time("join - 2", marks, 40.0) == 10.0
    assert resolve_time("start", marks, 40.0) == 0.0
    assert resolve_time("end-1", marks, 40.0) == 39.0
    with pytest.raises(KeyError):
        resolve_time("leave", marks, 40.0)


# -- errors: file, line, field ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (("  - wait: 2\n", "  - wiat: 2\n"), "s.yaml:8: steps[2]: a step is one of: call, wait"),
        (("  - wait: 2\n", "  - wait: -1\n"), "s.yaml:8: steps[2].wait: Input should be greater"),
        (
            ("  - wait: 2\n", "  - ccp: {agent: john, action: hold}\n"),
            "s.yaml:8: steps[2].ccp: action hold needs connection",
        ),
        (
            ("  - wait: 2\n", "  - ccp: {agent: john, action: accept, name: Maria}\n"),
            "s.yaml:8: steps[2].ccp: action accept takes no name",
        ),
        (
            ("  - wait: 2\n", "  - ccp: {agent: john, action: transfer}\n"),
            "s.yaml:8: steps[2].ccp.action: Input should be 'accept'",
        ),
        (
            ("  - wait: 2\n", "  - dtmf: {party: john, digits: '12x'}\n"),
            "s.yaml:8: steps[2].dtmf.digits: '12x': DTMF digits are",
        ),
        (
            ('{from: customer, to: "+15550100"}', '{frm: customer, to: "+15550100"}'),
            "s.yaml:6: steps[0].call.from: Field required",
        ),
        (
            ("kind: agent, plays: 1850", "kind: supervisor"),
            "s.yaml:3: parties.john.kind: Input should be 'agent', 'customer' or 'external'",
        ),
        (
            ("  - two_way: [john, customer]\n", "  - two_way: [john, john]\n"),
            "s.yaml:10: expect[0]: two_way needs two different parties",
        ),
        (
            (
                "  - two_way: [john, customer]\n",
                "  - heard: {party: john, beep: true, music: true}\n",
            ),
            "s.yaml:10: expect[0].heard: give exactly one of prompt, text, wav, beep",
        ),
        (
            ("[talking+0.5, end]", "[talking plus 1, end]"),
            "s.yaml:11: expect[0].during[0]: 'talking plus 1' is not a time",
        ),
        (("name: minimal\n", ""), "s.yaml:1: name: Field required"),
    ],
)
def test_validation_errors_name_file_line_and_field(edit: tuple[str, str], expected: str) -> None:
    old, new = edit
    assert old in GOOD
    found = problems(GOOD.replace(old, new))
    assert any(p.startswith(expected) for p in found), found


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            ('{from: customer, to: "+15550100"}', '{from: bob, to: "+15550100"}'),
            "s.yaml:6: steps[0].call.from: unknown party 'bob' (parties: john, customer)",
        ),
        (
            ('to: "+15550100"', 'to: "+15550111"'),
            "s.yaml:6: steps[0].call.to: '+15550111' is no DID, dial plan number, service or user",
        ),
        (
            ("  - wait: 2\n", "  - ccp: {agent: customer, action: accept}\n"),
            "s.yaml:8: steps[2].ccp.agent: 'customer' is a customer, not an agent",
        ),
        (
            ("  - wait: 2\n", "  - ccp: {agent: john, action: quickConnect, name: Mary}\n"),
            "s.yaml:8: steps[2].ccp.name: unknown quick connect 'Mary' (known: Maria, PasswordReset, Supplier)",
        ),
        (
            ("  - wait: 2\n", "  - mark: talking\n"),
            "s.yaml:8: steps[2].mark: mark 'talking' is set twice",
        ),
        (
            ("[talking+0.5, end]", "[joined, end]"),
            "s.yaml:11: expect[0].during: unknown mark 'joined' (marks: talking)",
        ),
        (
            ("plays: Welcome", "plays: Welcom"),
            "s.yaml:4: parties.customer.plays: unknown prompt 'Welcom' (known: Agent not available,",
        ),
        (
            ("plays: Welcome", "plays: missing.wav"),
            "s.yaml:4: parties.customer.plays: no such file",
        ),
        (
            ("  customer: {kind: customer, plays: Welcome}", "  customer: {kind: customer}"),
            "s.yaml:10: expect[0].two_way[1]: party 'customer' plays nothing",
        ),
        (
            ("kind: agent, plays: 1850", "kind: agent, user: bob, plays: 1850"),
            "s.yaml:3: parties.john: 'bob' is not an agent of demo_lab.yaml",
        ),
    ],
)
def test_cross_checks_name_file_line_and_field(edit: tuple[str, str], expected: str) -> None:
    old, new = edit
    assert old in GOOD
    found = problems(GOOD.replace(old, new))
    assert any(p.startswith(expected) for p in found), found


def test_all_problems_are_reported_at_once() -> None:
    text = GOOD.replace("from: customer", "from: bob").replace("[talking+0.5", "[nope")
    found = problems(text)
    assert len(found) == 2
    assert "unknown party 'bob'" in found[0] and "unknown mark 'nope'" in found[1]


def test_yaml_syntax_error_has_a_line() -> None:
    found = problems("name: x\nparties:\n  john: {kind: agent\nsteps: []\n")
    assert found[0].startswith("s.yaml:") and "invalid YAML" in found[0]


def test_not_a_mapping() -> None:
    assert problems("- just\n- a list\n") == [
        "s.yaml:1: a scenario is a mapping (name:, parties:, …)"
    ]


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="cannot read scenario"):
        load_scenario(tmp_path / "nope.yaml")


def test_a_broken_config_is_reported_with_its_own_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "lab.yaml").write_text("name: x\nagents: {}\n", encoding="utf-8")
    path = tmp_path / "s.yaml"
    path.write_text("config: lab.yaml\n" + GOOD, encoding="utf-8")
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    text = [str(p) for p in info.value.problems]
    assert text[0].startswith(f"{path}:1: config: invalid instance config {tmp_path / 'lab.yaml'}")
    assert any(t.startswith(f"{tmp_path / 'lab.yaml'}:2: agents:") for t in text), text


def test_without_config_check_a_scenario_can_name_any_user() -> None:
    text = GOOD.replace("kind: agent, plays: 1850", "kind: agent, user: bob, plays: 1850")
    sc = parse_scenario(text, "s.yaml", check_config=False)
    assert sc.sip_user("john") == "bob"
