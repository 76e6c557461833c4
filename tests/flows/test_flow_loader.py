"""Loading Flow Language files: the defaults, exported-style flows, and every error path."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from flows.errors import FlowError
from flows.loader import (
    DEFAULT_FLOW_FOR_HOOK,
    DEFAULTS_DIR,
    FlowRegistry,
    load_flow,
    parse_flow,
    resource_id,
)
from flows.model import (
    CheckMetricDataParameters,
    EventHook,
    MessageParticipantIterativelyParameters,
    StaffingMetric,
    UpdateContactEventHooksParameters,
)

FIXTURES = Path(__file__).parent / "fixtures"
LAMBDA_FLOW = FIXTURES / "exported_inbound_with_lambda.json"

DEFAULT_NAMES = {
    "default_customer_hold.json": "Default customer hold",
    "default_agent_hold.json": "Default agent hold",
    "default_customer_queue.json": "Default customer queue",
    "default_agent_whisper.json": "Default agent whisper",
    "default_customer_whisper.json": "Default customer whisper",
    "default_agent_transfer.json": "Default agent transfer",
    "default_queue_transfer.json": "Default queue transfer",
}


def flow_json(actions: list[dict[str, Any]], start: str | None = None, **extra: Any) -> str:
    document = {
        "Version": "2019-10-30",
        "StartAction": start or actions[0]["Identifier"],
        "Actions": actions,
    }
    document.update(extra)
    return json.dumps(document, indent=2)


def block(
    identifier: str, type_: str, params: dict[str, Any] | None = None, **transitions: Any
) -> dict[str, Any]:
    return {
        "Identifier": identifier,
        "Type": type_,
        "Parameters": params or {},
        "Transitions": transitions,
    }


def problems_of(text: str, file: str = "f.json") -> list[str]:
    with pytest.raises(FlowError) as info:
        parse_flow(text, file)
    return [str(p) for p in info.value.problems]


# -- happy paths ----------------------------------------------------------------------------


@pytest.mark.parametrize("file_name", sorted(DEFAULT_NAMES))
def test_every_default_flow_loads(file_name: str) -> None:
    flow = load_flow(DEFAULTS_DIR / file_name)
    assert flow.name == DEFAULT_NAMES[file_name]
    assert flow.id == file_name.removesuffix(".json")
    assert flow.start_action in flow.blocks
    assert all(b.line is not None for b in flow.blocks.values())


def test_registry_holds_all_defaults_and_their_references_resolve() -> None:
    registry = FlowRegistry.load()
    assert sorted(registry.names()) == sorted(DEFAULT_NAMES.values())
    assert registry.validate() == []
    for hook, name in DEFAULT_FLOW_FOR_HOOK.items():
        assert registry.default_for(hook).name == name


def test_default_agent_transfer_is_the_seeds_four_blocks() -> None:
    flow = load_flow(DEFAULTS_DIR / "default_agent_transfer.json")
    chain = []
    current: str | None = flow.start_action
    while current is not None:
        b = flow.block(current)
        chain.append(b.type)
        current = b.transitions.next_action
    assert chain == [
        "MessageParticipant",
        "UpdateContactEventHooks",
        "UpdateContactEventHooks",
        "TransferContactToAgent",
    ]
    hooks = [
        b.parameters
        for b in flow.blocks.values()
        if isinstance(b.parameters, UpdateContactEventHooksParameters)
    ]
    assert {(h.hook, h.flow) for h in hooks} == {
        (EventHook.AGENT_WHISPER, "Default agent whisper"),
        (EventHook.CUSTOMER_WHISPER, "Default customer whisper"),
    }


def test_default_queue_transfer_checks_staffed_agents() -> None:
    flow = load_flow(DEFAULTS_DIR / "default_queue_transfer.json")
    staffing = [
        b.parameters
        for b in flow.blocks.values()
        if isinstance(b.parameters, CheckMetricDataParameters)
    ]
    assert [s.metric for s in staffing] == [StaffingMetric.STAFFED]


def test_default_agent_hold_repeats_every_ten_seconds() -> None:
    from flows.ssml import Pause, Speech, ssml_segments

    flow = load_flow(DEFAULTS_DIR / "default_agent_hold.json")
    params = flow.block(flow.start_action).parameters
    assert isinstance(params, MessageParticipantIterativelyParameters)
    (message,) = params.messages
    assert message.ssml is not None
    assert ssml_segments(message.ssml) == (Speech("You are on hold"), Pause(10.0))


def test_exported_console_flow_without_unsupported_blocks_loads() -> None:
    document = json.loads(LAMBDA_FLOW.read_text())
    # Drop the Lambda block and route around it: the rest is a real console export.
    document["Actions"] = [a for a in document["Actions"] if a["Type"] != "InvokeLambdaFunction"]
    document["Actions"][0]["Transitions"] = {"NextAction": "a4d9e2f7-5c1b-4e8a-9f3d-6b2c1a0e9d87"}
    flow = parse_flow(json.dumps(document), "export.json")
    assert flow.name == "Inbound with CRM lookup"
    assert flow.flow_type == "contactFlow"
    queue_block = flow.block("a4d9e2f7-5c1b-4e8a-9f3d-6b2c1a0e9d87")
    assert queue_block.display_names == {"QueueId": "BasicQueue"}


def test_resource_id_takes_the_tail_of_connect_arns_only() -> None:
    arn = "arn:aws:connect:us-east-1:123456789012:instance/abc/contact-flow/xyz-1"
    assert resource_id(arn) == "xyz-1"
    assert resource_id("Default agent whisper") == "Default agent whisper"
    assert (
        resource_id("arn:aws:lambda:us-east-1:1:function:f")
        == "arn:aws:lambda:us-east-1:1:function:f"
    )


def test_registry_resolves_name_id_arn_and_display_name() -> None:
    registry = FlowRegistry.load()
    whisper = registry.get("Default agent whisper")
    assert registry.get("default agent WHISPER") is whisper
    assert registry.get("default_agent_whisper") is whisper
    assert (
        registry.get("arn:aws:connect:eu-central-1:1:instance/i/contact-flow/default_agent_whisper")
        is whisper
    )
    foreign = "arn:aws:connect:eu-central-1:1:instance/i/contact-flow/0000-not-here"
    assert registry.find(foreign) is None
    assert registry.get(foreign, display_name="Default agent whisper") is whisper
    with pytest.raises(KeyError):
        registry.get("No such flow")


def test_user_flows_override_defaults_by_name(tmp_path: Path) -> None:
    custom = flow_json(
        [
            block("Say", "MessageParticipant", {"Text": "custom"}, NextAction="End"),
            block("End", "EndFlowExecution"),
        ],
        Metadata={"name": "Default agent whisper"},
    )
    (tmp_path / "my_whisper.json").write_text(custom)
    registry = FlowRegistry.load(tmp_path)
    assert registry.get("Default agent whisper").file == str(tmp_path / "my_whisper.json")
    assert registry.get("my_whisper").name == "Default agent whisper"
    assert len(registry) == len(DEFAULT_NAMES)


# -- error paths ----------------------------------------------------------------------------


def test_unsupported_block_is_a_load_error_naming_type_block_and_file() -> None:
    with pytest.raises(FlowError) as info:
        load_flow(LAMBDA_FLOW)
    error = info.value
    assert error.block_type == "InvokeLambdaFunction"
    assert error.block_id == "8c2e4a61-0b3f-4d7e-b5a9-7e1d2c3f4a50"
    text = str(error)
    assert "InvokeLambdaFunction" in text
    assert str(LAMBDA_FLOW) in text
    assert "8c2e4a61-0b3f-4d7e-b5a9-7e1d2c3f4a50" in text
    lines = LAMBDA_FLOW.read_text().splitlines()
    line = error.problems[0].line
    assert line is not None and '"8c2e4a61-0b3f-4d7e-b5a9-7e1d2c3f4a50"' in lines[line - 1]


def test_unknown_next_action_names_the_block_and_target() -> None:
    text = flow_json(
        [
            block("Hello", "MessageParticipant", {"Text": "hi"}, NextAction="Nowhere"),
            block("Bye", "DisconnectParticipant"),
        ]
    )
    (problem,) = problems_of(text)
    assert problem.startswith("f.json:")
    assert "block 'Hello' (MessageParticipant)" in problem
    assert "unknown block 'Nowhere'" in problem
    line = int(problem.split(":")[1])
    assert '"Hello"' in text.splitlines()[line - 1]


def test_bad_targets_in_errors_and_conditions_are_reported() -> None:
    text = flow_json(
        [
            block(
                "Cmp",
                "Compare",
                {"ComparisonValue": "$.Attributes.x"},
                Conditions=[
                    {"NextAction": "Ghost1", "Condition": {"Operator": "Equals", "Operands": ["1"]}}
                ],
                Errors=[{"NextAction": "Ghost2", "ErrorType": "NoMatchingCondition"}],
            )
        ]
    )
    problems = problems_of(text)
    assert any("'Ghost1'" in p for p in problems)
    assert any("'Ghost2'" in p for p in problems)


def test_bad_json_reports_its_line() -> None:
    text = '{\n  "Version": "2019-10-30",\n  "StartAction": "a"\n  "Actions": []\n}\n'
    (problem,) = problems_of(text)
    assert problem.startswith("f.json:4: invalid JSON")


def test_every_problem_in_a_file_is_reported_at_once() -> None:
    text = flow_json(
        [
            block("A", "InvokeLambdaFunction", {"LambdaFunctionARN": "arn:x"}, NextAction="B"),
            block("B", "CreateTask", {}, NextAction="C"),
            block("C", "MessageParticipant", {"Text": "x"}, NextAction="Missing"),
        ]
    )
    problems = problems_of(text)
    assert len(problems) == 3
    assert "'InvokeLambdaFunction'" in problems[0]
    assert "'CreateTask'" in problems[1]
    assert "'Missing'" in problems[2]


@pytest.mark.parametrize(
    ("bad_block", "expected"),
    [
        (
            block("X", "MessageParticipant", {"Text": "a", "PromptId": "b"}),
            "exactly one of Text, PromptId, SSML",
        ),
        (block("X", "MessageParticipant", {}), "exactly one of Text, PromptId, SSML"),
        (block("X", "MessageParticipant", {"Media": {"Uri": "s3://b/k"}}), "Media"),
        (block("X", "MessageParticipant", {"SSML": "<speak>unclosed"}), "SSML"),
        (
            block(
                "X",
                "UpdateContactEventHooks",
                {"EventHooks": {"AgentWhisper": "a", "CustomerWhisper": "b"}},
            ),
            "exactly one entry",
        ),
        (
            block("X", "UpdateContactEventHooks", {"EventHooks": {"AgentGreeting": "a"}}),
            "unknown event hook",
        ),
        (
            block("X", "UpdateContactTargetQueue", {}),
            "exactly one of Parameters.QueueId and Parameters.AgentId",
        ),
        (block("X", "TransferToFlow", {}), "ContactFlowId is required"),
        (
            block("X", "UpdateContactAttributes", {"Attributes": {"n": 1}}),
            "Attributes.n must be a string",
        ),
        (block("X", "Compare", {"ComparisonValue": "plain"}), "single JSONPath"),
        (
            block(
                "X",
                "CheckHoursOfOperation",
                Conditions=[
                    {"NextAction": "X", "Condition": {"Operator": "Equals", "Operands": ["True"]}}
                ],
            ),
            'Equals "True" and Equals "False"',
        ),
        (block("X", "CheckMetricData", {"MetricType": "NumberOfContactsInQueue"}), "not supported"),
        (
            block(
                "X",
                "CheckMetricData",
                {"MetricType": "NumberOfAgentsAvailable"},
                Conditions=[
                    {
                        "NextAction": "X",
                        "Condition": {"Operator": "NumberGreaterThan", "Operands": ["2"]},
                    }
                ],
            ),
            "NumberGreaterThan",
        ),
        (
            block(
                "X",
                "UpdatePreviousContactParticipantState",
                {"PreviousContactParticipantState": "Muted"},
            ),
            "Muted",
        ),
        (block("X", "DisconnectParticipant", {"Reason": "x"}), "takes no Parameters"),
        (block("X", "MessageParticipantIteratively", {"Messages": []}), "non-empty list"),
        (
            block(
                "X",
                "Compare",
                {"ComparisonValue": "$.Attributes.a"},
                Conditions=[
                    {"NextAction": "X", "Condition": {"Operator": "Like", "Operands": ["1"]}}
                ],
            ),
            "Operator 'Like'",
        ),
        (block("X:1", "EndFlowExecution"), "may not contain :"),
    ],
)
def test_invalid_parameters_name_the_block(bad_block: dict[str, Any], expected: str) -> None:
    (problem, *_) = problems_of(flow_json([bad_block]))
    assert f"block {bad_block['Identifier']!r} ({bad_block['Type']})" in problem
    assert expected in problem


def test_duplicate_identifier_and_unknown_start() -> None:
    text = flow_json([block("A", "EndFlowExecution"), block("A", "EndFlowExecution")], start="Z")
    problems = problems_of(text)
    assert any("duplicate Identifier" in p for p in problems)
    assert any("StartAction 'Z' names no block" in p for p in problems)


def test_missing_file_is_a_flow_error(tmp_path: Path) -> None:
    with pytest.raises(FlowError, match="cannot read flow"):
        load_flow(tmp_path / "absent.json")


def test_registry_reports_unknown_flow_references_and_bad_files(tmp_path: Path) -> None:
    (tmp_path / "uses_ghost.json").write_text(
        flow_json(
            [
                block(
                    "Hook",
                    "UpdateContactEventHooks",
                    {"EventHooks": {"CustomerHold": "Ghost hold"}},
                    NextAction="End",
                ),
                block("End", "EndFlowExecution"),
            ]
        )
    )
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(FlowError) as info:
        FlowRegistry.load(tmp_path)
    text = str(info.value)
    assert "uses_ghost.json" in text and "unknown flow 'Ghost hold'" in text
    assert "broken.json:1: invalid JSON" in text
