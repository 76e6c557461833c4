"""The instance config: the demo lab, line-accurate errors, cross-references, `check`."""

from __future__ import annotations

import json
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest

from telephony.center.config import (
    DEMO_LAB_PATH,
    ConfigError,
    HoursOfOperation,
    PhoneNumberQuickConnect,
    QueueQuickConnect,
    UserQuickConnect,
    check,
    demo_lab,
    load_config,
    parse_config,
    users_with_passwords,
)

MINIMAL = """\
agents:
  john:
    display_name: John
    password: john
    routing_profile: Basic
routing_profiles:
  Basic:
    queues: [BasicQueue]
    default_outbound_queue: BasicQueue
queues:
  BasicQueue:
    outbound_caller_id: {name: Example Corp, number: "+15550100"}
"""


def write(tmp_path: Path, text: str, name: str = "lab.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def errors_of(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return [str(p) for p in info.value.problems]


def line_of(path: Path, needle: str) -> int:
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if needle in line:
            return number
    raise AssertionError(needle)


# -- the demo lab -------------------------------------------------------------------------------


def test_demo_lab_is_exactly_the_issues_lab() -> None:
    cfg = demo_lab()
    assert cfg.source == DEMO_LAB_PATH
    assert {login: a.password for login, a in cfg.agents.items()} == {
        "john": "john",
        "maria": "maria",
    }
    assert cfg.agent_queues("maria") == ["PasswordReset"]
    assert cfg.agent_queues("john") == ["BasicQueue"]
    caller_ids = {
        name: (q.outbound_caller_id.name, q.outbound_caller_id.number)
        for name, q in cfg.queues.items()
    }
    assert caller_ids == {
        "BasicQueue": ("Example Corp", "+15550100"),
        "PasswordReset": ("Password Desk", "+15550199"),
    }
    qcs = cfg.quick_connects
    assert set(qcs) == {"Maria", "PasswordReset", "Supplier"}
    assert isinstance(qcs["Maria"], UserQuickConnect) and qcs["Maria"].agent == "maria"
    assert qcs["Maria"].flow == "Default agent transfer"
    assert (
        isinstance(qcs["PasswordReset"], QueueQuickConnect)
        and qcs["PasswordReset"].queue == "PasswordReset"
    )
    assert qcs["PasswordReset"].flow == "Default queue transfer"
    assert (
        isinstance(qcs["Supplier"], PhoneNumberQuickConnect)
        and qcs["Supplier"].number == "+15557770000"
    )
    assert {u: user.password for u, user in cfg.users.items()} == {
        "customer": "customer",
        "supplier": "supplier",
    }
    assert cfg.dial_plan["+15557770000"].user == "supplier"
    assert cfg.phone_numbers["+15550100"].flow == "Demo inbound"
    assert cfg.quick_connects_for("john") == ["Maria", "PasswordReset", "Supplier"]
    assert cfg.outbound_queue("john") == "BasicQueue"


def test_demo_lab_inbound_flow_welcomes_then_queues() -> None:
    from flows.interpreter import (
        ContactData,
        FlowRun,
        PlayPrompt,
        Result,
        SetTargetQueue,
        TransferToQueue,
    )

    cfg = demo_lab()
    flow = cfg.flows.get(cfg.phone_numbers["+15550100"].flow)
    run = FlowRun(flow, cfg.flows, ContactData(), queues=cfg.queue_named)
    action = run.next_action()
    assert isinstance(action, PlayPrompt) and action.message.prompt is not None
    name, prompt = cfg.prompt(action.message.prompt) or ("", None)
    assert name == "Welcome" and prompt is not None and "Welcome" in (prompt.text or "")
    run.resume(Result.SUCCESS)
    assert run.next_action() == SetTargetQueue("BasicQueue")
    run.resume(Result.SUCCESS)
    assert run.next_action() == TransferToQueue("BasicQueue")


def test_users_with_passwords_has_agents_and_plain_users() -> None:
    assert users_with_passwords(demo_lab()) == {
        "john": "john",
        "maria": "maria",
        "customer": "customer",
        "supplier": "supplier",
    }


def test_builtin_prompts_and_lookups_by_id_and_arn() -> None:
    cfg = demo_lab()
    assert cfg.prompt("Beep") == ("Beep", cfg.all_prompts()["Beep"])
    assert cfg.prompt("arn:aws:connect:us-east-1:1:instance/i/prompt/hold music") is not None
    assert (
        cfg.queue_named("arn:aws:connect:us-east-1:1:instance/i/queue/PasswordReset")
        == "PasswordReset"
    )
    assert cfg.queue_named("basicqueue") == "BasicQueue"
    assert cfg.queue_named("Nope") is None


def test_check_passes_the_demo_lab_and_the_default_flows() -> None:
    assert check(DEMO_LAB_PATH) == []
    flows_dir = Path(__file__).resolve().parents[2] / "flows" / "defaults"
    for path in sorted(flows_dir.glob("*.json")):
        assert check(path) == [], path


# -- hours of operation -------------------------------------------------------------------------


def test_hours_of_operation_use_their_timezone() -> None:
    hours = HoursOfOperation.model_validate(
        {"timezone": "Europe/Berlin", "days": {"monday": {"start": "09:00", "end": "17:30"}}}
    )
    # Monday 2024-03-04 08:30 UTC is 09:30 in Berlin (CET, UTC+1).
    assert hours.is_open(datetime(2024, 3, 4, 8, 30, tzinfo=UTC))
    assert not hours.is_open(datetime(2024, 3, 4, 7, 59, tzinfo=UTC))
    assert not hours.is_open(datetime(2024, 3, 4, 16, 30, tzinfo=UTC))  # 17:30 local: closed
    assert not hours.is_open(datetime(2024, 3, 5, 10, 0, tzinfo=UTC))  # Tuesday not listed
    with pytest.raises(ValueError):
        hours.is_open(datetime(2024, 3, 4, 10, 0))


def test_whole_day_until_24_00() -> None:
    hours = HoursOfOperation.model_validate(
        {"days": {"sunday": {"start": "00:00", "end": "24:00"}}}
    )
    assert hours.is_open(datetime(2024, 3, 3, 23, 59, 59, tzinfo=UTC))


# -- errors with file, line and field -----------------------------------------------------------


def test_minimal_config_with_unquoted_numbers_and_times(tmp_path: Path) -> None:
    # YAML 1.1 would read +15550100 as the int 15550100 and 17:30 as 1050 (base 60).
    extra = (
        "phone_numbers:\n"
        "  +15550100: {flow: Default queue transfer}\n"
        "dial_plan:\n"
        '  +15557770000: {uri: "sip:bob@127.0.0.1:5070"}\n'
        "hours_of_operation:\n"
        "  Office: {timezone: UTC, days: {friday: {start: 08:00, end: 17:30}}}\n"
    )
    cfg = load_config(write(tmp_path, MINIMAL + extra))
    assert list(cfg.phone_numbers) == ["+15550100"]
    assert cfg.dial_plan["+15557770000"].uri == "sip:bob@127.0.0.1:5070"
    assert cfg.hours_of_operation["Office"].days["friday"].end == "17:30"
    assert cfg.ring_timeout == 20.0
    assert cfg.flows_dir is None and "Default queue transfer" in cfg.flows


def test_broken_yaml_reports_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "agents:\n  john: {display_name: John\nqueues: []\n")
    (problem,) = errors_of(path)
    assert problem.startswith(f"{path}:")
    assert "invalid YAML" in problem
    assert int(problem.split(":")[1]) in (2, 3)


def test_schema_errors_name_file_line_and_field_path(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        MINIMAL
        + """\
  PasswordReset:
    outbound_caller_id: {name: Desk, number: "5550199"}
    colour: blue
quick_connects:
  Sup: {type: phone, number: "+15557770000"}
dial_plan:
  "+15557770000": {user: supplier, uri: "sip:x@y"}
ring_timeout: -1
""",
    )
    problems = errors_of(path)
    expected = {
        "queues.PasswordReset.outbound_caller_id.number": line_of(path, '"5550199"'),
        "queues.PasswordReset.colour": line_of(path, "colour"),
        "quick_connects.Sup": line_of(path, "Sup:"),
        "dial_plan.+15557770000": line_of(path, '"+15557770000": {user'),
        "ring_timeout": line_of(path, "ring_timeout"),
    }
    for field, line in expected.items():
        assert any(p.startswith(f"{path}:{line}: {field}: ") for p in problems), (field, problems)
    assert len(problems) == len(expected)


def test_missing_field_points_at_its_parent(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL.replace("    password: john\n", ""))
    (problem,) = errors_of(path)
    assert problem == f"{path}:{line_of(path, 'john:')}: agents.john.password: Field required"


def test_cross_references_are_checked(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        MINIMAL.replace("routing_profile: Basic", "routing_profile: Nope").replace(
            "queues: [BasicQueue]", "queues: [BasicQueue, Ghost]"
        )
        + """\
    quick_connects: [Bob, Missing]
quick_connects:
  Bob: {type: user, agent: bob, flow: No such flow}
  Desk: {type: queue, queue: Elsewhere}
users:
  john: {password: x}
  customer: {password: customer}
phone_numbers:
  "+15550100": {flow: Nothing here}
dial_plan:
  "+15557770000": {user: nobody}
prompts:
  Jingle: {wav: jingle.wav}
""",
    )
    problems = errors_of(path)

    def has(field: str, needle: str, message: str) -> None:
        line = line_of(path, needle)
        assert any(p.startswith(f"{path}:{line}: {field}: ") and message in p for p in problems), (
            field,
            problems,
        )

    has("agents.john.routing_profile", "routing_profile: Nope", "unknown routing profile 'Nope'")
    has("routing_profiles.Basic.queues[1]", "Ghost", "unknown queue 'Ghost'")
    has("queues.BasicQueue.quick_connects[1]", "[Bob, Missing]", "unknown quick connect 'Missing'")
    has("quick_connects.Bob.agent", "Bob: {type: user", "unknown agent 'bob'")
    has("quick_connects.Bob.flow", "Bob: {type: user", "unknown flow 'No such flow'")
    has("quick_connects.Desk.queue", "Desk:", "unknown queue 'Elsewhere'")
    has("users.john", "john: {password: x}", "already an agent")
    has("phone_numbers.+15550100.flow", "Nothing here", "unknown flow 'Nothing here'")
    has("dial_plan.+15557770000.user", "nobody", "unknown user 'nobody'")
    has("prompts.Jingle.wav", "jingle.wav", "no such file")
    assert len(problems) == 10


def test_duplicate_keys_are_errors(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        MINIMAL + "  BasicQueue:\n    outbound_caller_id: {name: X, number: '+15550101'}\n",
    )
    (problem,) = errors_of(path)
    assert problem == f"{path}:13: queues.BasicQueue: duplicate key"


def test_flows_dir_adds_flows_checked_against_the_config(tmp_path: Path) -> None:
    flows = tmp_path / "flows"
    flows.mkdir()
    actions = [
        {
            "Identifier": "Greet",
            "Type": "MessageParticipant",
            "Parameters": {"PromptId": "Jingle"},
            "Transitions": {"NextAction": "Queue"},
        },
        {
            "Identifier": "Queue",
            "Type": "UpdateContactTargetQueue",
            "Parameters": {"QueueId": "SalesQueue"},
            "Transitions": {"NextAction": "Go"},
        },
        {"Identifier": "Go", "Type": "TransferContactToQueue", "Transitions": {}},
    ]
    flow_text = json.dumps(
        {
            "Version": "2019-10-30",
            "StartAction": "Greet",
            "Metadata": {"name": "Sales inbound"},
            "Actions": actions,
        },
        indent=2,
    )
    (flows / "sales.json").write_text(flow_text)
    path = write(
        tmp_path,
        MINIMAL + "flows_dir: flows\nphone_numbers:\n  '+15550100': {flow: Sales inbound}\n",
    )
    problems = errors_of(path)
    flow_file = str(flows / "sales.json")
    assert any(
        p.startswith(f"{flow_file}:") and "unknown prompt 'Jingle'" in p for p in problems
    ), problems
    assert any("block 'Queue'" in p and "unknown queue 'SalesQueue'" in p for p in problems), (
        problems
    )
    assert len(problems) == 2

    fixed = path.read_text() + "prompts:\n  Jingle: {tone: beep}\n"
    path.write_text(
        fixed.replace(
            "  BasicQueue:\n",
            "  SalesQueue:\n    outbound_caller_id: {name: S, number: '+15550111'}\n  BasicQueue:\n",
        )
    )
    cfg = load_config(path)
    assert cfg.flows.get("Sales inbound").file == flow_file


def test_unsupported_block_in_flows_dir_fails_the_config(tmp_path: Path) -> None:
    flows = tmp_path / "flows"
    flows.mkdir()
    fixture = (
        Path(__file__).resolve().parents[1]
        / "flows"
        / "fixtures"
        / "exported_inbound_with_lambda.json"
    )
    (flows / "crm.json").write_text(fixture.read_text())
    path = write(tmp_path, MINIMAL + "flows_dir: flows\n")
    problems = errors_of(path)
    assert any("crm.json:" in p and "InvokeLambdaFunction" in p for p in problems)


def test_check_reports_flow_and_config_errors_as_lines(tmp_path: Path) -> None:
    fixture = (
        Path(__file__).resolve().parents[1]
        / "flows"
        / "fixtures"
        / "exported_inbound_with_lambda.json"
    )
    (problem,) = check(fixture)
    assert problem.startswith(
        f"{fixture}:46: block '8c2e4a61-0b3f-4d7e-b5a9-7e1d2c3f4a50' (InvokeLambdaFunction): "
    )
    assert "unsupported block type 'InvokeLambdaFunction'" in problem

    bad = write(tmp_path, MINIMAL.replace("routing_profile: Basic", "routing_profile: Nope"))
    assert check(bad) == [f"{bad}:5: agents.john.routing_profile: unknown routing profile 'Nope'"]

    hooked = tmp_path / "hook.json"
    hooked.write_text(
        json.dumps(
            {
                "Version": "2019-10-30",
                "StartAction": "H",
                "Actions": [
                    {
                        "Identifier": "H",
                        "Type": "UpdateContactEventHooks",
                        "Parameters": {"EventHooks": {"CustomerHold": "Ghost"}},
                        "Transitions": {},
                    }
                ],
            }
        )
    )
    (problem,) = check(hooked)
    assert "unknown flow 'Ghost'" in problem and problem.startswith(f"{hooked}:")


def test_parse_config_rejects_a_non_mapping() -> None:
    with pytest.raises(ConfigError, match="mapping of sections"):
        parse_config("- just\n- a list\n", "x.yaml")
