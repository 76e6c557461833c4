"""A sans-I/O Flow Language interpreter.

The interpreter never plays audio, reads the clock or looks at agents. It
walks the blocks of a flow and hands out one *action* at a time; the contact
center executes it and answers with a :class:`Result`::

    run = FlowRun(flow, registry, ContactData(queue="BasicQueue"), participant="john")
    while (action := run.next_action()) is not None:
        match action:
            case PlayPrompt():  ...; run.resume(Result.SUCCESS)
            case CheckHours():  run.resume(Result.condition(is_open))
            case End() | Disconnect(): break   # terminal: no resume

Flow-control blocks that need no outside knowledge (``Compare``,
``TransferToFlow``) are evaluated inside. Every block entered is recorded in
:meth:`FlowRun.drain_trace` for the contact trace record.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

from flows.errors import FlowError
from flows.loader import FlowRegistry, is_dynamic, resource_id
from flows.model import (
    Block,
    CheckHoursOfOperationParameters,
    CheckMetricDataParameters,
    CompareParameters,
    Condition,
    DisconnectParticipantParameters,
    EndFlowExecutionParameters,
    EventHook,
    Flow,
    Message,
    MessageParticipantIterativelyParameters,
    MessageParticipantParameters,
    Operator,
    ParticipantState,
    StaffingMetric,
    TransferContactToAgentParameters,
    TransferContactToQueueParameters,
    TransferToFlowParameters,
    UpdateContactAttributesParameters,
    UpdateContactEventHooksParameters,
    UpdateContactTargetQueueParameters,
    UpdatePreviousContactParticipantStateParameters,
)

# -- the contact data a flow can read and write ----------------------------------------------


@dataclass(slots=True)
class ContactData:
    """The part of the contact a flow sees through JSONPath (``$.Queue.Name`` …).

    The interpreter updates ``queue``, ``target_agent``, ``attributes`` and
    ``event_hooks`` as blocks succeed; pass the same object to the next flow
    of the contact so what one flow set is seen by the next, as in Amazon Connect.
    """

    contact_id: str = ""
    channel: str = "VOICE"
    initiation_method: str = "INBOUND"
    customer_address: str | None = None  # $.CustomerEndpoint.Address
    system_address: str | None = None  # $.SystemEndpoint.Address (the DID dialled)
    queue: str | None = None  # the contact's TargetQueue, by name
    agent: str | None = None  # $.Agent.UserName: the agent on the contact
    agent_first_name: str | None = None
    agent_last_name: str | None = None
    target_agent: str | None = None  # who TransferContactToAgent transfers to
    attributes: dict[str, str] = field(default_factory=dict)
    event_hooks: dict[EventHook, str] = field(default_factory=dict)

    def lookup(self, path: str) -> str | None:
        """Resolve a JSONPath identifier such as ``$.Attributes.reason``; None when absent."""
        if not path.startswith("$."):
            return None
        parts = path[2:].split(".")
        head, rest = parts[0], parts[1:]
        if head == "Attributes" and len(rest) == 1:
            return self.attributes.get(rest[0])
        table: dict[tuple[str, ...], str | None] = {
            ("ContactId",): self.contact_id,
            ("Channel",): self.channel,
            ("InitiationMethod",): self.initiation_method,
            ("CustomerEndpoint", "Address"): self.customer_address,
            ("SystemEndpoint", "Address"): self.system_address,
            ("Queue", "Name"): self.queue,
            ("Queue", "ARN"): self.queue,
            ("Agent", "UserName"): self.agent,
            ("Agent", "FirstName"): self.agent_first_name,
            ("Agent", "LastName"): self.agent_last_name,
        }
        return table.get(tuple(parts))


_INLINE_PATH_RE = re.compile(r"\$\.[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_-]+)*")


def substitute(text: str, data: ContactData) -> str:
    """Replace every ``$.Path`` in prompt text with its value (empty when absent),
    as Amazon Connect does for text-to-speech in *Play prompt*."""
    return _INLINE_PATH_RE.sub(lambda m: data.lookup(m.group(0)) or "", text)


# -- actions handed to the caller --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PlayPrompt:
    """Play one message to ``to`` and answer SUCCESS when it finished (or an error)."""

    message: Message
    to: str


@dataclass(frozen=True, slots=True)
class LoopPrompts:
    """Play ``messages`` in a loop to ``to`` (hold and queue flows).

    With ``interrupt_seconds`` set, answer ``Result.condition("MessagesInterrupted")``
    after that long; without it the loop runs until the caller abandons the run.
    """

    messages: tuple[Message, ...]
    to: str
    interrupt_seconds: float | None = None


@dataclass(frozen=True, slots=True)
class SetEventHook:
    """Remember ``flow`` (a registry flow name) for ``hook`` on the contact."""

    hook: EventHook
    flow: str


@dataclass(frozen=True, slots=True)
class SetTargetQueue:
    """The contact's working queue becomes ``queue`` (or the agent queue of ``agent``)."""

    queue: str | None
    agent: str | None = None


@dataclass(frozen=True, slots=True)
class TransferToQueue:
    """Put the contact into ``queue``; SUCCESS ends the flow, or Result.error("QueueAtCapacity")."""

    queue: str | None
    agent: str | None = None


@dataclass(frozen=True, slots=True)
class TransferToAgent:
    """Offer the contact to ``agent``; SUCCESS ends the flow. Fails (Result.error)
    at once if that agent is already on a contact."""

    agent: str | None


@dataclass(frozen=True, slots=True)
class CheckHours:
    """Answer ``Result.condition(True|False)``: is ``queue`` (or ``hours``) open now?"""

    queue: str | None
    hours: str | None = None


@dataclass(frozen=True, slots=True)
class CheckStaffing:
    """Answer ``Result.condition(n)``: how many agents of ``queue`` match ``metric``."""

    queue: str | None
    metric: StaffingMetric
    agent: str | None = None


@dataclass(frozen=True, slots=True)
class SetAttributes:
    """Attributes set on the contact (already applied to the run's ContactData on SUCCESS)."""

    attributes: tuple[tuple[str, str], ...]
    target_contact: str = "Current"

    def as_dict(self) -> dict[str, str]:
        return dict(self.attributes)


@dataclass(frozen=True, slots=True)
class HoldParticipant:
    """Hold the previous participant (``AgentOnHold``/``CustomerOnHold``) or take them off hold."""

    state: ParticipantState


@dataclass(frozen=True, slots=True)
class Disconnect:
    """Disconnect ``participant``; the run is finished (no resume)."""

    participant: str


@dataclass(frozen=True, slots=True)
class End:
    """The flow ended without disconnecting anyone; the run is finished (no resume)."""

    reason: str


Action = (
    PlayPrompt
    | LoopPrompts
    | SetEventHook
    | SetTargetQueue
    | TransferToQueue
    | TransferToAgent
    | CheckHours
    | CheckStaffing
    | SetAttributes
    | HoldParticipant
    | Disconnect
    | End
)


@dataclass(frozen=True, slots=True)
class Result:
    """The caller's answer to an action: success, an error type, or a value for conditions."""

    error_type: str | None = None
    value: str | int | float | bool | None = None

    SUCCESS: ClassVar[Result]

    @classmethod
    def error(cls, error_type: str) -> Result:
        return cls(error_type=error_type)

    @classmethod
    def condition(cls, value: str | int | float | bool) -> Result:
        return cls(value=value)


Result.SUCCESS = Result()


@dataclass(frozen=True, slots=True)
class BlockRun:
    """One block entered, for the contact trace record."""

    flow: str
    identifier: str
    type: str
    outcome: str = ""


# -- condition evaluation -------------------------------------------------------------------


def _as_text(value: str | int | float | bool | None) -> str:
    if isinstance(value, bool):
        return "True" if value else "False"
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _as_number(value: str) -> float | None:
    try:
        return float(value)
    except ValueError:
        return None


def matches(condition: Condition, value: str | int | float | bool | None) -> bool:
    """Evaluate one transition condition against a block's result."""
    text = _as_text(value)
    operand = condition.operands[0]
    op = condition.operator
    if op == Operator.EQUALS:
        left, right = _as_number(text), _as_number(operand)
        if left is not None and right is not None:
            return left == right
        return text == operand
    if op == Operator.TEXT_CONTAINS:
        return operand in text
    if op == Operator.TEXT_STARTS_WITH:
        return text.startswith(operand)
    if op == Operator.TEXT_ENDS_WITH:
        return text.endswith(operand)
    left, right = _as_number(text), _as_number(operand)
    if left is None or right is None:
        return False
    if op == Operator.NUMBER_GREATER_THAN:
        return left > right
    if op == Operator.NUMBER_GREATER_OR_EQUAL_TO:
        return left >= right
    if op == Operator.NUMBER_LESS_THAN:
        return left < right
    return left <= right  # NumberLessOrEqualTo


# -- the run ----------------------------------------------------------------------------------

Resolver = Callable[[str], str | None]


def _tail(ref: str) -> str | None:
    return resource_id(ref)


class FlowRun:
    """One execution of a flow for one participant of a contact.

    ``participant`` is who hears the prompts and who DisconnectParticipant
    disconnects (the customer in an inbound flow, the agent in an agent
    whisper, the transferring agent in a quick connect's transfer flow).
    ``queues``/``agents`` map a reference (name, id or ARN) to the lab's
    queue or agent name, or None when it names nothing (the block then takes
    its NoMatchingError branch, as Amazon Connect does at run time).
    """

    def __init__(
        self,
        flow: Flow,
        registry: FlowRegistry | None = None,
        context: ContactData | None = None,
        *,
        participant: str = "customer",
        queues: Resolver | None = None,
        agents: Resolver | None = None,
        max_steps_without_action: int = 1000,
    ) -> None:
        self.context = context if context is not None else ContactData()
        self.participant = participant
        self._registry = registry if registry is not None else FlowRegistry([flow])
        self._queues: Resolver = queues or _tail
        self._agents: Resolver = agents or _tail
        self._max_idle = max_steps_without_action
        self._flow = flow
        self._current: str | None = flow.start_action
        self._pending: tuple[Block, Action] | None = None
        self._finished = False
        self._end_reason: str | None = None
        self._trace: list[BlockRun] = []

    # -- public API --------------------------------------------------------------------------

    @property
    def flow(self) -> Flow:
        """The flow being run (changes on TransferToFlow)."""
        return self._flow

    @property
    def finished(self) -> bool:
        return self._finished

    @property
    def current_block(self) -> Block | None:
        """The block whose action awaits a result."""
        return self._pending[0] if self._pending else None

    def drain_trace(self) -> list[BlockRun]:
        trace, self._trace = self._trace, []
        return trace

    def next_action(self) -> Action | None:
        """The action to execute now (the same one until :meth:`resume`), None when finished."""
        if self._pending is not None:
            return self._pending[1]
        if self._finished:
            return None
        steps = 0
        while True:
            steps += 1
            if steps > self._max_idle:
                block = self._flow.blocks.get(self._current or "")
                raise FlowError.single(
                    self._flow.file,
                    f"flow loops: {self._max_idle} blocks ran without any action (infinite loop?)",
                    line=block.line if block else None,
                    where=f"block {self._current!r}",
                    block_id=self._current,
                    block_type=block.type if block else None,
                )
            if self._current is None:
                return self._finish(End(self._end_reason or "flow ended: no next block"))
            block = self._flow.blocks[self._current]
            self._trace.append(BlockRun(self._flow.name, block.identifier, block.type))
            action = self._enter(block)
            if action is None:
                continue  # evaluated internally; _current moved
            if isinstance(action, End | Disconnect):
                return self._finish(action)
            self._pending = (block, action)
            return action

    def resume(self, result: Result) -> None:
        """Report the outcome of the action returned by :meth:`next_action`."""
        if self._pending is None:
            raise FlowError.single(
                self._flow.file,
                "resume() without a pending action" + (" (run finished)" if self._finished else ""),
            )
        block, action = self._pending
        self._pending = None
        if result.error_type is not None:
            self._take_error(block, result.error_type)
            return
        if block.transitions.conditions:
            if result.value is None and not isinstance(action, LoopPrompts):
                raise FlowError.single(
                    self._flow.file,
                    f"{block.type} needs Result.condition(value), got {result!r}",
                    line=block.line,
                    where=f"block {block.identifier!r}",
                    block_id=block.identifier,
                    block_type=block.type,
                )
            if result.value is not None:
                self._take_condition(block, result.value)
                return
        self._succeed(block, action)

    # -- internals ---------------------------------------------------------------------------

    def _finish(self, action: End | Disconnect) -> Action:
        self._finished = True
        self._current = None
        return action

    def _value(self, raw: str) -> str | None:
        return self.context.lookup(raw) if is_dynamic(raw) else raw

    def _message(self, message: Message) -> Message:
        if message.text is not None:
            return Message(text=substitute(message.text, self.context))
        if message.ssml is not None:
            return Message(ssml=substitute(message.ssml, self.context))
        assert message.prompt is not None
        return Message(prompt=self._value(message.prompt) or "")

    def _resolve_queue(self, block: Block, raw: str | None, key: str) -> tuple[bool, str | None]:
        """(ok, name): a queue reference of ``block``, or the contact's TargetQueue when absent."""
        if raw is None:
            return True, self.context.queue
        value = self._value(raw)
        if value is None:
            return False, None
        name = self._queues(value)
        if name is None and block.display_names.get(key):
            name = self._queues(block.display_names[key])
        return name is not None, name

    def _resolve_agent(self, block: Block, raw: str) -> tuple[bool, str | None]:
        value = self._value(raw)
        if value is None:
            return False, None
        name = self._agents(value)
        if name is None and block.display_names.get("AgentId"):
            name = self._agents(block.display_names["AgentId"])
        return name is not None, name

    def _enter(self, block: Block) -> Action | None:
        """The action for ``block``, or None after evaluating it internally."""
        p = block.parameters
        if isinstance(p, MessageParticipantParameters):
            return PlayPrompt(self._message(p.message), self.participant)
        if isinstance(p, MessageParticipantIterativelyParameters):
            return LoopPrompts(
                tuple(self._message(m) for m in p.messages), self.participant, p.interrupt_seconds
            )
        if isinstance(p, UpdateContactEventHooksParameters):
            value = self._value(p.flow)
            hint = block.display_names.get(f"EventHooks.{p.hook.value}")
            flow = self._registry.find(value, display_name=hint) if value else None
            if flow is None:
                return self._internal_error(block, "NoMatchingError")
            return SetEventHook(p.hook, flow.name)
        if isinstance(p, UpdateContactTargetQueueParameters):
            if p.agent is not None:
                ok, agent = self._resolve_agent(block, p.agent)
                return (
                    SetTargetQueue(None, agent)
                    if ok
                    else self._internal_error(block, "NoMatchingError")
                )
            ok, queue = self._resolve_queue(block, p.queue, "QueueId")
            return SetTargetQueue(queue) if ok else self._internal_error(block, "NoMatchingError")
        if isinstance(p, TransferContactToQueueParameters):
            if self.context.queue is None and self.context.target_agent is None:
                return self._internal_error(block, "NoMatchingError")
            if self.context.queue is None:
                return TransferToQueue(None, self.context.target_agent)
            return TransferToQueue(self.context.queue)
        if isinstance(p, TransferContactToAgentParameters):
            return TransferToAgent(self.context.target_agent)
        if isinstance(p, TransferToFlowParameters):
            value = self._value(p.flow)
            target = (
                self._registry.find(value, display_name=block.display_names.get("ContactFlowId"))
                if value
                else None
            )
            if target is None:
                return self._internal_error(block, "NoMatchingError")
            self._flow = target
            self._current = target.start_action
            return None
        if isinstance(p, UpdateContactAttributesParameters):
            resolved = tuple((self._value(k) or "", self._value(v) or "") for k, v in p.attributes)
            return SetAttributes(resolved, p.target_contact)
        if isinstance(p, CompareParameters):
            self._take_condition(block, self.context.lookup(p.comparison_value) or "")
            return None
        if isinstance(p, CheckHoursOfOperationParameters):
            hours = self._value(p.hours_of_operation) if p.hours_of_operation else None
            return CheckHours(self.context.queue, hours)
        if isinstance(p, CheckMetricDataParameters):
            if p.agent is not None:
                ok, agent = self._resolve_agent(block, p.agent)
                return (
                    CheckStaffing(None, p.metric, agent)
                    if ok
                    else self._internal_error(block, "NoMatchingError")
                )
            ok, queue = self._resolve_queue(block, p.queue, "QueueId")
            return (
                CheckStaffing(queue, p.metric)
                if ok
                else self._internal_error(block, "NoMatchingError")
            )
        if isinstance(p, UpdatePreviousContactParticipantStateParameters):
            return HoldParticipant(p.state)
        if isinstance(p, DisconnectParticipantParameters):
            return Disconnect(self.participant)
        if isinstance(p, EndFlowExecutionParameters):
            return End("EndFlowExecution")
        raise AssertionError(f"unhandled block parameters {p!r}")  # pragma: no cover

    def _internal_error(self, block: Block, error_type: str) -> Action | None:
        self._take_error(block, error_type)
        return None

    def _goto(self, block: Block, target: str | None, outcome: str) -> None:
        if self._trace and self._trace[-1].identifier == block.identifier:
            last = self._trace[-1]
            self._trace[-1] = BlockRun(last.flow, last.identifier, last.type, outcome)
        self._current = target

    def _take_error(self, block: Block, error_type: str) -> None:
        branches = {b.error_type: b.next_action for b in block.transitions.errors}
        for candidate in (error_type, "NoMatchingError"):
            if candidate in branches:
                self._goto(block, branches[candidate], f"error:{error_type}")
                return
        # No branch for this error: the flow stops here (the next call yields End).
        self._goto(block, None, f"error:{error_type}")
        self._end_reason = f"error {error_type} in block {block.identifier!r} with no error branch"

    def _take_condition(self, block: Block, value: str | int | float | bool) -> None:
        for branch in block.transitions.conditions:
            if matches(branch.condition, value):
                self._goto(block, branch.next_action, f"condition:{_as_text(value)}")
                return
        self._take_error(block, "NoMatchingCondition")

    def _succeed(self, block: Block, action: Action) -> None:
        if isinstance(action, SetTargetQueue):
            if action.agent is not None:
                self.context.target_agent = action.agent
            else:
                self.context.queue = action.queue
        elif isinstance(action, SetAttributes) and action.target_contact == "Current":
            self.context.attributes.update(action.attributes)
        elif isinstance(action, SetEventHook):
            self.context.event_hooks[action.hook] = action.flow
        elif isinstance(action, TransferToQueue | TransferToAgent):
            # "Ends the current flow": the contact now belongs to the queue or agent.
            self._goto(block, None, "success")
            self._finished = True
            return
        if block.transitions.next_action is None:
            self._end_reason = f"flow ended after block {block.identifier!r}: no NextAction"
        self._goto(block, block.transitions.next_action, "success")
