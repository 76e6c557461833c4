"""The Amazon Connect Flow Language as immutable Python values.

A flow file (``Version``, ``StartAction``, ``Actions[]``) becomes a
:class:`Flow`; each entry of ``Actions`` a :class:`Block` whose
``parameters`` is one typed dataclass per supported action type, so the
interpreter never looks at raw JSON. Parameter shapes follow the Amazon
Connect API reference, "Flow language actions" (pages ``contact-actions-*``,
``participant-actions-*``, ``flow-control-actions-*``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum


class EventHook(StrEnum):
    """Keys of ``UpdateContactEventHooks.EventHooks`` (contact-actions-updatecontacteventhooks)."""

    AGENT_HOLD = "AgentHold"
    AGENT_WHISPER = "AgentWhisper"
    CUSTOMER_HOLD = "CustomerHold"
    CUSTOMER_QUEUE = "CustomerQueue"
    CUSTOMER_REMAINING = "CustomerRemaining"
    CUSTOMER_WHISPER = "CustomerWhisper"
    DEFAULT_AGENT_UI = "DefaultAgentUI"
    DISCONNECT_AGENT_UI = "DisconnectAgentUI"
    PAUSE_CONTACT = "PauseContact"
    RESUME_CONTACT = "ResumeContact"


class StaffingMetric(StrEnum):
    """``CheckMetricData.MetricType`` values that the *Check staffing* block emits."""

    AVAILABLE = "NumberOfAgentsAvailable"
    STAFFED = "NumberOfAgentsStaffed"
    ONLINE = "NumberOfAgentsOnline"


class ParticipantState(StrEnum):
    """``UpdatePreviousContactParticipantState.PreviousContactParticipantState``."""

    AGENT_ON_HOLD = "AgentOnHold"
    CUSTOMER_ON_HOLD = "CustomerOnHold"
    OFF_HOLD = "OffHold"


class Operator(StrEnum):
    """Condition operators of the Flow Language transitions."""

    EQUALS = "Equals"
    NUMBER_GREATER_THAN = "NumberGreaterThan"
    NUMBER_GREATER_OR_EQUAL_TO = "NumberGreaterOrEqualTo"
    NUMBER_LESS_THAN = "NumberLessThan"
    NUMBER_LESS_OR_EQUAL_TO = "NumberLessOrEqualTo"
    TEXT_CONTAINS = "TextContains"
    TEXT_STARTS_WITH = "TextStartsWith"
    TEXT_ENDS_WITH = "TextEndsWith"


# -- messages -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Message:
    """One prompt: exactly one of ``text`` (TTS), ``prompt`` (a prompt id, ARN or name)
    or ``ssml``. Values may hold JSONPath references (``$.Queue.Name``)."""

    text: str | None = None
    prompt: str | None = None
    ssml: str | None = None

    @property
    def kind(self) -> str:
        if self.text is not None:
            return "text"
        if self.prompt is not None:
            return "prompt"
        return "ssml"

    @property
    def value(self) -> str:
        for candidate in (self.text, self.prompt, self.ssml):
            if candidate is not None:
                return candidate
        return ""


# -- parameters, one class per supported action type -------------------------------------


@dataclass(frozen=True, slots=True)
class MessageParticipantParameters:
    message: Message


@dataclass(frozen=True, slots=True)
class MessageParticipantIterativelyParameters:
    messages: tuple[Message, ...]
    interrupt_seconds: float | None = None


@dataclass(frozen=True, slots=True)
class UpdateContactEventHooksParameters:
    # The API reference allows exactly one entry per block.
    hook: EventHook
    flow: str


@dataclass(frozen=True, slots=True)
class UpdateContactTargetQueueParameters:
    queue: str | None = None
    agent: str | None = None


@dataclass(frozen=True, slots=True)
class TransferContactToQueueParameters:
    pass


@dataclass(frozen=True, slots=True)
class TransferContactToAgentParameters:
    pass


@dataclass(frozen=True, slots=True)
class TransferToFlowParameters:
    flow: str


@dataclass(frozen=True, slots=True)
class UpdateContactAttributesParameters:
    attributes: tuple[tuple[str, str], ...]
    target_contact: str = "Current"


@dataclass(frozen=True, slots=True)
class CompareParameters:
    comparison_value: str


@dataclass(frozen=True, slots=True)
class CheckHoursOfOperationParameters:
    hours_of_operation: str | None = None


@dataclass(frozen=True, slots=True)
class CheckMetricDataParameters:
    metric: StaffingMetric
    queue: str | None = None
    agent: str | None = None


@dataclass(frozen=True, slots=True)
class UpdatePreviousContactParticipantStateParameters:
    state: ParticipantState


@dataclass(frozen=True, slots=True)
class DisconnectParticipantParameters:
    pass


@dataclass(frozen=True, slots=True)
class EndFlowExecutionParameters:
    pass


BlockParameters = (
    MessageParticipantParameters
    | MessageParticipantIterativelyParameters
    | UpdateContactEventHooksParameters
    | UpdateContactTargetQueueParameters
    | TransferContactToQueueParameters
    | TransferContactToAgentParameters
    | TransferToFlowParameters
    | UpdateContactAttributesParameters
    | CompareParameters
    | CheckHoursOfOperationParameters
    | CheckMetricDataParameters
    | UpdatePreviousContactParticipantStateParameters
    | DisconnectParticipantParameters
    | EndFlowExecutionParameters
)


# -- transitions ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Condition:
    operator: Operator
    operands: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ConditionBranch:
    next_action: str
    condition: Condition


@dataclass(frozen=True, slots=True)
class ErrorBranch:
    next_action: str
    error_type: str


@dataclass(frozen=True, slots=True)
class Transitions:
    next_action: str | None = None
    errors: tuple[ErrorBranch, ...] = ()
    conditions: tuple[ConditionBranch, ...] = ()

    def targets(self) -> tuple[str, ...]:
        found: list[str] = []
        if self.next_action is not None:
            found.append(self.next_action)
        found.extend(branch.next_action for branch in self.errors)
        found.extend(branch.next_action for branch in self.conditions)
        return tuple(found)


# -- blocks and flows -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Block:
    """One entry of ``Actions``: a step of the flow."""

    identifier: str
    type: str
    parameters: BlockParameters
    transitions: Transitions
    line: int | None = None
    # Console exports keep the human name of every referenced resource in
    # Metadata.ActionMetadata (e.g. "EventHooks.AgentWhisper" -> "Default agent
    # whisper"); we use it to map ARNs of another instance onto the lab's files.
    display_names: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Flow:
    """A loaded, validated flow."""

    name: str
    id: str
    file: str
    version: str
    start_action: str
    blocks: Mapping[str, Block]
    flow_type: str | None = None
    description: str = ""

    def block(self, identifier: str) -> Block:
        return self.blocks[identifier]


SUPPORTED_BLOCK_TYPES: frozenset[str] = frozenset(
    {
        "MessageParticipant",
        "MessageParticipantIteratively",
        "UpdateContactEventHooks",
        "UpdateContactTargetQueue",
        "TransferContactToQueue",
        "TransferContactToAgent",
        "TransferToFlow",
        "UpdateContactAttributes",
        "Compare",
        "CheckHoursOfOperation",
        "CheckMetricData",
        "UpdatePreviousContactParticipantState",
        "DisconnectParticipant",
        "EndFlowExecution",
    }
)
