"""Walking flows with the sans-I/O interpreter: scripted results in, actions out."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flows.errors import FlowError
from flows.interpreter import (
    BlockRun,
    CheckHours,
    CheckStaffing,
    ContactData,
    Disconnect,
    End,
    FlowRun,
    LoopPrompts,
    PlayPrompt,
    Result,
    SetAttributes,
    SetEventHook,
    SetTargetQueue,
    TransferToAgent,
    TransferToQueue,
    matches,
    substitute,
)
from flows.loader import FlowRegistry, parse_flow
from flows.model import Condition, EventHook, Message, Operator, StaffingMetric


@pytest.fixture(scope="module")
def registry() -> FlowRegistry:
    return FlowRegistry.load()


def start(registry: FlowRegistry, name: str, participant: str = "customer", **data: Any) -> FlowRun:
    return FlowRun(registry.get(name), registry, ContactData(**data), participant=participant)


def step(run: FlowRun, result: Result = Result.SUCCESS) -> object:
    run.resume(result)
    return run.next_action()


def make_flow(actions: list[dict[str, Any]], name: str = "Test flow") -> Any:
    document = {
        "Version": "2019-10-30",
        "StartAction": actions[0]["Identifier"],
        "Metadata": {"name": name},
        "Actions": actions,
    }
    return parse_flow(json.dumps(document), f"{name}.json")


# -- the default flows ----------------------------------------------------------------------


def test_agent_transfer_walks_the_seeds_four_blocks(registry: FlowRegistry) -> None:
    run = start(
        registry,
        "Default agent transfer",
        participant="john",
        queue="BasicQueue",
        target_agent="maria",
    )
    assert run.next_action() == PlayPrompt(Message(text="Transferring to agent"), to="john")
    assert run.next_action() == PlayPrompt(
        Message(text="Transferring to agent"), to="john"
    )  # until resumed
    assert step(run) == SetEventHook(EventHook.AGENT_WHISPER, "Default agent whisper")
    assert step(run) == SetEventHook(EventHook.CUSTOMER_WHISPER, "Default customer whisper")
    assert step(run) == TransferToAgent("maria")
    assert step(run) is None
    assert run.finished
    assert run.context.event_hooks == {
        EventHook.AGENT_WHISPER: "Default agent whisper",
        EventHook.CUSTOMER_WHISPER: "Default customer whisper",
    }
    assert [entry.identifier for entry in run.drain_trace()] == [
        "Play transferring prompt",
        "Set agent whisper",
        "Set customer whisper",
        "Transfer to agent",
    ]
    assert run.drain_trace() == []


def test_agent_transfer_to_a_busy_agent_plays_a_prompt_and_ends_the_leg(
    registry: FlowRegistry,
) -> None:
    run = start(registry, "Default agent transfer", participant="john", target_agent="maria")
    run.next_action()
    for _ in range(3):
        step(run)
    assert run.next_action() == TransferToAgent("maria")
    assert step(run, Result.error("AgentBusy")) == PlayPrompt(
        Message(text="The agent is not available."), "john"
    )
    assert step(run) == Disconnect("john")
    assert run.finished and run.next_action() is None
    with pytest.raises(FlowError, match="run finished"):
        run.resume(Result.SUCCESS)


def queue_transfer_until_hours(registry: FlowRegistry) -> FlowRun:
    run = start(registry, "Default queue transfer", participant="john", queue="PasswordReset")
    assert run.next_action() == CheckHours("PasswordReset")
    return run


def test_queue_transfer_out_of_hours_prompts_and_disconnects(registry: FlowRegistry) -> None:
    run = queue_transfer_until_hours(registry)
    action = step(run, Result.condition(False))
    assert isinstance(action, PlayPrompt) and "closed" in (action.message.text or "")
    assert step(run) == Disconnect("john")


def test_queue_transfer_with_nobody_staffed_prompts_and_disconnects(registry: FlowRegistry) -> None:
    run = queue_transfer_until_hours(registry)
    assert step(run, Result.condition(True)) == CheckStaffing(
        "PasswordReset", StaffingMetric.STAFFED
    )
    action = step(run, Result.condition(0))
    assert isinstance(action, PlayPrompt) and "No agents are staffed" in (action.message.text or "")
    assert step(run) == Disconnect("john")
    outcomes = [(e.identifier, e.outcome) for e in run.drain_trace()]
    assert ("Check staffing", "error:NoMatchingCondition") in outcomes


def test_queue_transfer_open_and_staffed_transfers_to_the_queue(registry: FlowRegistry) -> None:
    run = queue_transfer_until_hours(registry)
    step(run, Result.condition(True))
    assert step(run, Result.condition(2)) == PlayPrompt(
        Message(text="Now transferring your call."), "john"
    )
    assert step(run) == TransferToQueue("PasswordReset")
    assert step(run) is None and run.finished


def test_queue_transfer_at_capacity_takes_the_error_branch(registry: FlowRegistry) -> None:
    run = queue_transfer_until_hours(registry)
    step(run, Result.condition(True))
    step(run, Result.condition(1))
    assert step(run) == TransferToQueue("PasswordReset")
    action = step(run, Result.error("QueueAtCapacity"))
    assert isinstance(action, PlayPrompt) and "failed" in (action.message.text or "")
    assert step(run) == Disconnect("john")


def test_agent_whisper_speaks_the_queue_name(registry: FlowRegistry) -> None:
    run = start(registry, "Default agent whisper", participant="maria", queue="PasswordReset")
    assert run.next_action() == PlayPrompt(Message(text="PasswordReset"), "maria")
    assert step(run) == End("EndFlowExecution")
    assert run.finished


def test_customer_whisper_beeps_to_the_other_side(registry: FlowRegistry) -> None:
    run = start(registry, "Default customer whisper", participant="john")
    assert run.next_action() == PlayPrompt(Message(prompt="Beep"), "john")
    assert step(run) == End("EndFlowExecution")


@pytest.mark.parametrize(
    ("name", "participant", "message"),
    [
        ("Default customer hold", "customer", Message(prompt="Hold music")),
        ("Default customer queue", "customer", Message(prompt="Queue music")),
        (
            "Default agent hold",
            "john",
            Message(ssml='<speak>You are on hold <break time="10s"/></speak>'),
        ),
    ],
)
def test_hold_and_queue_flows_loop_their_prompt(
    registry: FlowRegistry, name: str, participant: str, message: Message
) -> None:
    run = start(registry, name, participant=participant)
    assert run.next_action() == LoopPrompts((message,), participant, None)
    assert not run.finished


# -- internal logic -------------------------------------------------------------------------


def two_flows() -> FlowRegistry:
    first = make_flow(
        [
            {
                "Identifier": "Remember caller",
                "Type": "UpdateContactAttributes",
                "Parameters": {
                    "Attributes": {"caller": "$.CustomerEndpoint.Address", "tier": "gold"}
                },
                "Transitions": {"NextAction": "Is local"},
            },
            {
                "Identifier": "Is local",
                "Type": "Compare",
                "Parameters": {"ComparisonValue": "$.Attributes.caller"},
                "Transitions": {
                    "Conditions": [
                        {
                            "NextAction": "Go second",
                            "Condition": {"Operator": "TextStartsWith", "Operands": ["+1555"]},
                        }
                    ],
                    "Errors": [{"NextAction": "Bye", "ErrorType": "NoMatchingCondition"}],
                },
            },
            {
                "Identifier": "Go second",
                "Type": "TransferToFlow",
                "Parameters": {
                    "ContactFlowId": "arn:aws:connect:us-east-1:1:instance/i/contact-flow/Second flow"
                },
                "Transitions": {"Errors": [{"NextAction": "Bye", "ErrorType": "NoMatchingError"}]},
            },
            {
                "Identifier": "Bye",
                "Type": "DisconnectParticipant",
                "Parameters": {},
                "Transitions": {},
            },
        ],
        name="First flow",
    )
    second = make_flow(
        [
            {
                "Identifier": "Greet",
                "Type": "MessageParticipant",
                "Parameters": {
                    "Text": "Hello $.Attributes.caller, you are $.Attributes.tier. $.Attributes.none"
                },
                "Transitions": {"NextAction": "Done"},
            },
            {"Identifier": "Done", "Type": "EndFlowExecution", "Parameters": {}, "Transitions": {}},
        ],
        name="Second flow",
    )
    return FlowRegistry([first, second])


def test_attributes_compare_and_transfer_to_flow() -> None:
    registry = two_flows()
    run = FlowRun(registry.get("First flow"), registry, ContactData(customer_address="+15551234"))
    action = run.next_action()
    assert action == SetAttributes((("caller", "+15551234"), ("tier", "gold")))
    assert run.context.attributes == {}  # applied only on success
    assert step(run) == PlayPrompt(Message(text="Hello +15551234, you are gold. "), "customer")
    assert run.context.attributes == {"caller": "+15551234", "tier": "gold"}
    assert run.flow.name == "Second flow"
    assert [(e.flow, e.identifier) for e in run.drain_trace()] == [
        ("First flow", "Remember caller"),
        ("First flow", "Is local"),
        ("First flow", "Go second"),
        ("Second flow", "Greet"),
    ]


def test_compare_without_a_match_takes_no_matching_condition() -> None:
    registry = two_flows()
    run = FlowRun(registry.get("First flow"), registry, ContactData(customer_address="+4930123"))
    run.next_action()
    assert step(run) == Disconnect("customer")


def test_infinite_loop_without_actions_raises_flow_error() -> None:
    flow = make_flow(
        [
            {
                "Identifier": "Spin",
                "Type": "Compare",
                "Parameters": {"ComparisonValue": "$.Channel"},
                "Transitions": {
                    "Conditions": [
                        {
                            "NextAction": "Spin",
                            "Condition": {"Operator": "Equals", "Operands": ["VOICE"]},
                        }
                    ]
                },
            }
        ],
        name="Spinner",
    )
    run = FlowRun(flow, max_steps_without_action=50)
    with pytest.raises(FlowError) as info:
        run.next_action()
    assert info.value.block_id == "Spin"
    assert "Spinner.json" in str(info.value) and "loops" in str(info.value)


def test_error_without_branch_ends_the_flow_with_a_reason() -> None:
    flow = make_flow(
        [
            {
                "Identifier": "Queue it",
                "Type": "UpdateContactTargetQueue",
                "Parameters": {"QueueId": "BasicQueue"},
                "Transitions": {"NextAction": "Go"},
            },
            {
                "Identifier": "Go",
                "Type": "TransferContactToQueue",
                "Parameters": {},
                "Transitions": {},
            },
        ]
    )
    run = FlowRun(flow)
    assert run.next_action() == SetTargetQueue("BasicQueue")
    assert step(run) == TransferToQueue("BasicQueue")
    action = step(run, Result.error("QueueAtCapacity"))
    assert (
        isinstance(action, End) and "QueueAtCapacity" in action.reason and "'Go'" in action.reason
    )


def test_unknown_queue_takes_no_matching_error_and_display_name_maps_arns() -> None:
    arn = "arn:aws:connect:us-east-1:1:instance/i/queue/7a8b"
    flow = make_flow(
        [
            {
                "Identifier": "Set queue",
                "Type": "UpdateContactTargetQueue",
                "Parameters": {"QueueId": arn},
                "Transitions": {
                    "NextAction": "Bye",
                    "Errors": [{"NextAction": "Sorry", "ErrorType": "NoMatchingError"}],
                },
            },
            {
                "Identifier": "Sorry",
                "Type": "MessageParticipant",
                "Parameters": {"Text": "sorry"},
                "Transitions": {"NextAction": "Bye"},
            },
            {
                "Identifier": "Bye",
                "Type": "DisconnectParticipant",
                "Parameters": {},
                "Transitions": {},
            },
        ]
    )
    queues = {"BasicQueue"}
    run = FlowRun(flow, queues=lambda ref: ref if ref in queues else None)
    assert run.next_action() == PlayPrompt(Message(text="sorry"), "customer")

    # The same block exported from the console keeps the queue's display name.
    exported = parse_flow(
        json.dumps(
            {
                "Version": "2019-10-30",
                "StartAction": "Set queue",
                "Metadata": {
                    "ActionMetadata": {
                        "Set queue": {"parameters": {"QueueId": {"displayName": "BasicQueue"}}}
                    }
                },
                "Actions": [
                    {
                        "Identifier": "Set queue",
                        "Type": "UpdateContactTargetQueue",
                        "Parameters": {"QueueId": arn},
                        "Transitions": {"NextAction": "Bye"},
                    },
                    {
                        "Identifier": "Bye",
                        "Type": "DisconnectParticipant",
                        "Parameters": {},
                        "Transitions": {},
                    },
                ],
            }
        ),
        "exported.json",
    )
    run = FlowRun(exported, queues=lambda ref: ref if ref in queues else None)
    assert run.next_action() == SetTargetQueue("BasicQueue")


def test_condition_blocks_need_a_value(registry: FlowRegistry) -> None:
    run = queue_transfer_until_hours(registry)
    with pytest.raises(FlowError, match="Result.condition"):
        run.resume(Result.SUCCESS)


def test_resume_without_pending_action_is_an_error(registry: FlowRegistry) -> None:
    run = start(registry, "Default customer whisper")
    with pytest.raises(FlowError, match="without a pending action"):
        run.resume(Result.SUCCESS)


@pytest.mark.parametrize(
    ("operator", "operand", "value", "expected"),
    [
        (Operator.EQUALS, "True", True, True),
        (Operator.EQUALS, "False", True, False),
        (Operator.EQUALS, "1", 1.0, True),
        (Operator.EQUALS, "abc", "abc", True),
        (Operator.NUMBER_GREATER_THAN, "0", 0, False),
        (Operator.NUMBER_GREATER_THAN, "0", 3, True),
        (Operator.NUMBER_GREATER_THAN, "0", "x", False),
        (Operator.NUMBER_GREATER_OR_EQUAL_TO, "3", 3, True),
        (Operator.NUMBER_LESS_THAN, "3", 2.5, True),
        (Operator.NUMBER_LESS_OR_EQUAL_TO, "3", 4, False),
        (Operator.TEXT_CONTAINS, "Reset", "PasswordReset", True),
        (Operator.TEXT_STARTS_WITH, "Pass", "PasswordReset", True),
        (Operator.TEXT_ENDS_WITH, "Pass", "PasswordReset", False),
    ],
)
def test_condition_operators(operator: Operator, operand: str, value: Any, expected: bool) -> None:
    assert matches(Condition(operator, (operand,)), value) is expected


def test_substitute_handles_sentence_punctuation() -> None:
    data = ContactData(queue="BasicQueue", attributes={"name": "Ann"})
    assert (
        substitute("You are in $.Queue.Name. Hi $.Attributes.name!", data)
        == "You are in BasicQueue. Hi Ann!"
    )


# -- whatever the caller answers, a default flow never misbehaves ------------------------------

ANSWERS = st.sampled_from(
    [
        Result.SUCCESS,
        Result.error("NoMatchingError"),
        Result.error("QueueAtCapacity"),
        Result.condition(True),
        Result.condition(False),
        Result.condition(0),
        Result.condition(1),
        Result.condition("MessagesInterrupted"),
    ]
)


@settings(max_examples=200, deadline=None)
@given(
    name=st.sampled_from(sorted(FlowRegistry.load().names())),
    answers=st.lists(ANSWERS, max_size=20),
)
def test_default_flows_finish_or_wait_on_any_script(name: str, answers: list[Result]) -> None:
    registry = FlowRegistry.load()
    run = FlowRun(
        registry.get(name), registry, ContactData(queue="BasicQueue", target_agent="maria")
    )
    for answer in answers:
        action = run.next_action()
        if action is None or isinstance(action, End | Disconnect):
            assert run.finished
            return
        if (
            isinstance(action, CheckHours | CheckStaffing)
            and answer.value is None
            and answer.error_type is None
        ):
            answer = Result.condition(1)
        run.resume(answer)
    assert all(isinstance(entry, BlockRun) for entry in run.drain_trace())
