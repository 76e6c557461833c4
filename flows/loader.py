"""Load Flow Language JSON files into :class:`~flows.model.Flow` values.

Every mistake in a file is collected (not just the first) and raised as one
:class:`~flows.errors.FlowError`, each problem naming the file, the line and
the block. An action type we do not implement is a load error naming the
type, the block and the file: a flow that silently skipped a block would
behave differently from the same flow in Amazon Connect.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from flows.errors import FlowError, Problem
from flows.model import (
    SUPPORTED_BLOCK_TYPES,
    Block,
    BlockParameters,
    CheckHoursOfOperationParameters,
    CheckMetricDataParameters,
    CompareParameters,
    Condition,
    ConditionBranch,
    DisconnectParticipantParameters,
    EndFlowExecutionParameters,
    ErrorBranch,
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
    Transitions,
    UpdateContactAttributesParameters,
    UpdateContactEventHooksParameters,
    UpdateContactTargetQueueParameters,
    UpdatePreviousContactParticipantStateParameters,
)
from flows.ssml import SsmlError, ssml_segments

DEFAULTS_DIR = Path(__file__).resolve().parent / "defaults"

# Names of the flows Amazon Connect uses when nothing else is set.
DEFAULT_CUSTOMER_HOLD = "Default customer hold"
DEFAULT_AGENT_HOLD = "Default agent hold"
DEFAULT_CUSTOMER_QUEUE = "Default customer queue"
DEFAULT_AGENT_WHISPER = "Default agent whisper"
DEFAULT_CUSTOMER_WHISPER = "Default customer whisper"
DEFAULT_AGENT_TRANSFER = "Default agent transfer"
DEFAULT_QUEUE_TRANSFER = "Default queue transfer"

DEFAULT_FLOW_FOR_HOOK: Mapping[EventHook, str] = {
    EventHook.CUSTOMER_HOLD: DEFAULT_CUSTOMER_HOLD,
    EventHook.AGENT_HOLD: DEFAULT_AGENT_HOLD,
    EventHook.CUSTOMER_QUEUE: DEFAULT_CUSTOMER_QUEUE,
    EventHook.AGENT_WHISPER: DEFAULT_AGENT_WHISPER,
    EventHook.CUSTOMER_WHISPER: DEFAULT_CUSTOMER_WHISPER,
}

# flow-language-actions: characters an Identifier may not contain.
_FORBIDDEN_ID_CHARS = set("%:(\\/)=$,;[]{}")
_IDENTIFIER_RE = re.compile(r'"Identifier"\s*:\s*("(?:[^"\\]|\\.)*")')
_ARN_RESOURCE_RE = re.compile(
    r"^arn:[^:]*:connect:[^:]*:[^:]*:instance/[^/]+/(?P<kind>[a-z-]+)/(?P<id>.+)$"
)


def resource_id(ref: str) -> str:
    """The trailing id of an Amazon Connect ARN, or ``ref`` itself.

    ``arn:aws:connect:us-east-1:123:instance/abc/contact-flow/xyz`` -> ``xyz``.
    """
    match = _ARN_RESOURCE_RE.match(ref)
    if match is None:
        return ref
    return match.group("id")


def is_dynamic(value: str) -> bool:
    """A parameter given as a single JSONPath identifier (``$.Attributes.x``)."""
    return value.startswith("$.")


# -- parsing --------------------------------------------------------------------------------


class _Reader:
    """Collects problems while reading one file."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.problems: list[Problem] = []
        self.first_block: tuple[str | None, str | None] = (None, None)

    def problem(
        self,
        message: str,
        *,
        line: int | None = None,
        where: str = "",
        block_id: str | None = None,
        block_type: str | None = None,
    ) -> None:
        if not self.problems:
            self.first_block = (block_id, block_type)
        self.problems.append(Problem(self.file, line, where, message))

    def error(self) -> FlowError:
        block_id, block_type = self.first_block
        return FlowError(self.problems, block_id=block_id, block_type=block_type)


class _BlockReader:
    """Typed access to one block's Parameters, reporting with the block's location."""

    def __init__(self, reader: _Reader, identifier: str, type_: str, line: int | None) -> None:
        self.reader = reader
        self.identifier = identifier
        self.type = type_
        self.line = line
        self.ok = True

    @property
    def where(self) -> str:
        return f"block {self.identifier!r} ({self.type})"

    def problem(self, message: str) -> None:
        self.ok = False
        self.reader.problem(
            message,
            line=self.line,
            where=self.where,
            block_id=self.identifier,
            block_type=self.type,
        )

    def string(self, params: Mapping[str, Any], key: str, *, required: bool) -> str | None:
        value = params.get(key)
        if value is None:
            if required:
                self.problem(f"Parameters.{key} is required")
            return None
        if not isinstance(value, str) or not value:
            self.problem(f"Parameters.{key} must be a non-empty string")
            return None
        return value

    def message(self, raw: Any, field: str) -> Message | None:
        if not isinstance(raw, Mapping):
            self.problem(f"{field} must be an object")
            return None
        if "Media" in raw:
            self.problem(f"{field}.Media (external S3 audio) is not supported; use PromptId")
            return None
        present = [key for key in ("Text", "PromptId", "SSML") if key in raw]
        if len(present) != 1:
            self.problem(
                f"{field} must have exactly one of Text, PromptId, SSML (found {present or 'none'})"
            )
            return None
        key = present[0]
        value = raw[key]
        if not isinstance(value, str) or not value:
            self.problem(f"{field}.{key} must be a non-empty string")
            return None
        if key == "Text":
            return Message(text=value)
        if key == "PromptId":
            return Message(prompt=value)
        try:
            ssml_segments(value)
        except SsmlError as exc:
            self.problem(f"{field}.SSML: {exc}")
            return None
        return Message(ssml=value)

    def no_parameters(self, params: Mapping[str, Any]) -> None:
        # The API reference says "No parameters are expected" for these types.
        if params:
            self.problem(f"takes no Parameters (found {sorted(params)})")


def _parse_parameters(
    block: _BlockReader, params: Mapping[str, Any], transitions: Transitions
) -> BlockParameters | None:
    kind = block.type
    if kind == "MessageParticipant":
        message = block.message(params, "Parameters")
        return MessageParticipantParameters(message) if message else None

    if kind == "MessageParticipantIteratively":
        raw_messages = params.get("Messages")
        if not isinstance(raw_messages, list) or not raw_messages:
            block.problem("Parameters.Messages must be a non-empty list")
            return None
        messages = [
            block.message(raw, f"Parameters.Messages[{i}]") for i, raw in enumerate(raw_messages)
        ]
        interrupt = params.get("InterruptFrequencySeconds")
        seconds: float | None = None
        if interrupt is not None:
            try:
                seconds = float(interrupt)
            except (TypeError, ValueError):
                seconds = -1.0
            if seconds <= 0:
                block.problem("Parameters.InterruptFrequencySeconds must be a positive number")
        for branch in transitions.conditions:
            if branch.condition.operator != Operator.EQUALS or branch.condition.operands != (
                "MessagesInterrupted",
            ):
                block.problem('only the condition Equals "MessagesInterrupted" is supported')
        if any(m is None for m in messages) or not block.ok:
            return None
        return MessageParticipantIterativelyParameters(
            tuple(m for m in messages if m is not None), seconds
        )

    if kind == "UpdateContactEventHooks":
        hooks = params.get("EventHooks")
        if not isinstance(hooks, Mapping) or len(hooks) != 1:
            block.problem("Parameters.EventHooks must be an object with exactly one entry")
            return None
        ((key, value),) = hooks.items()
        try:
            hook = EventHook(key)
        except ValueError:
            block.problem(
                f"unknown event hook {key!r}; expected one of {', '.join(h.value for h in EventHook)}"
            )
            return None
        if not isinstance(value, str) or not value:
            block.problem(f"Parameters.EventHooks.{key} must be a flow id, ARN or name")
            return None
        return UpdateContactEventHooksParameters(hook, value)

    if kind == "UpdateContactTargetQueue":
        queue = block.string(params, "QueueId", required=False)
        agent = block.string(params, "AgentId", required=False)
        if (queue is None) == (agent is None):
            block.problem("exactly one of Parameters.QueueId and Parameters.AgentId is required")
            return None
        return UpdateContactTargetQueueParameters(queue, agent)

    if kind == "TransferContactToQueue":
        block.no_parameters(params)
        return TransferContactToQueueParameters() if block.ok else None

    if kind == "TransferContactToAgent":
        block.no_parameters(params)
        return TransferContactToAgentParameters() if block.ok else None

    if kind == "TransferToFlow":
        flow = block.string(params, "ContactFlowId", required=True)
        return TransferToFlowParameters(flow) if flow else None

    if kind == "UpdateContactAttributes":
        attributes = params.get("Attributes")
        if not isinstance(attributes, Mapping) or not attributes:
            block.problem("Parameters.Attributes must be a non-empty object")
            return None
        pairs: list[tuple[str, str]] = []
        for key, value in attributes.items():
            if not isinstance(value, str):
                block.problem(f"Parameters.Attributes.{key} must be a string")
                continue
            pairs.append((str(key), value))
        target = params.get("TargetContact", "Current")
        if target not in ("Current", "Related"):
            block.problem('Parameters.TargetContact must be "Current" or "Related"')
        return UpdateContactAttributesParameters(tuple(pairs), str(target)) if block.ok else None

    if kind == "Compare":
        value = block.string(params, "ComparisonValue", required=True)
        if value is not None and not is_dynamic(value):
            block.problem("Parameters.ComparisonValue must be a single JSONPath identifier ($.…)")
            return None
        if not transitions.conditions:
            block.problem("Compare needs at least one Condition")
        return CompareParameters(value) if value and block.ok else None

    if kind == "CheckHoursOfOperation":
        hours = block.string(params, "HoursOfOperationId", required=False)
        # "There must be a Condition provided for Equals True and a Condition for
        # Equals False, and no other conditions."
        seen = sorted(
            b.condition.operands[0] if b.condition.operands else ""
            for b in transitions.conditions
            if b.condition.operator == Operator.EQUALS
        )
        if seen != ["False", "True"] or len(transitions.conditions) != 2:
            block.problem('needs exactly the Conditions Equals "True" and Equals "False"')
            return None
        return CheckHoursOfOperationParameters(hours)

    if kind == "CheckMetricData":
        raw_metric = block.string(params, "MetricType", required=True)
        if raw_metric is None:
            return None
        try:
            metric = StaffingMetric(raw_metric)
        except ValueError:
            block.problem(
                f"MetricType {raw_metric!r} is not supported; expected one of "
                + ", ".join(m.value for m in StaffingMetric)
            )
            return None
        queue = block.string(params, "QueueId", required=False)
        agent = block.string(params, "AgentId", required=False)
        if queue is not None and agent is not None:
            block.problem("Parameters.QueueId and Parameters.AgentId may not both be given")
        # "If the MetricType is NumberOfAgents* then the only supported condition
        # is NumberGreaterThan 0."
        for branch in transitions.conditions:
            cond = branch.condition
            if cond.operator != Operator.NUMBER_GREATER_THAN or cond.operands != ("0",):
                block.problem(
                    'the only supported condition for NumberOfAgents* is NumberGreaterThan "0"'
                )
        if not transitions.conditions:
            block.problem('needs the Condition NumberGreaterThan "0"')
        return CheckMetricDataParameters(metric, queue, agent) if block.ok else None

    if kind == "UpdatePreviousContactParticipantState":
        raw_state = block.string(params, "PreviousContactParticipantState", required=True)
        if raw_state is None:
            return None
        try:
            return UpdatePreviousContactParticipantStateParameters(ParticipantState(raw_state))
        except ValueError:
            block.problem(
                f"PreviousContactParticipantState {raw_state!r} must be one of "
                + ", ".join(s.value for s in ParticipantState)
            )
            return None

    if kind == "DisconnectParticipant":
        block.no_parameters(params)
        return DisconnectParticipantParameters() if block.ok else None

    if kind == "EndFlowExecution":
        block.no_parameters(params)
        return EndFlowExecutionParameters() if block.ok else None

    raise AssertionError(f"no parser for supported type {kind}")  # pragma: no cover


def _parse_transitions(block: _BlockReader, raw: Any) -> Transitions:
    if raw is None:
        return Transitions()
    if not isinstance(raw, Mapping):
        block.problem("Transitions must be an object")
        return Transitions()
    next_action = raw.get("NextAction")
    if next_action is not None and (not isinstance(next_action, str) or not next_action):
        block.problem("Transitions.NextAction must be a block Identifier")
        next_action = None

    errors: list[ErrorBranch] = []
    raw_errors = raw.get("Errors", [])
    if not isinstance(raw_errors, list):
        block.problem("Transitions.Errors must be a list")
        raw_errors = []
    for i, entry in enumerate(raw_errors):
        if (
            not isinstance(entry, Mapping)
            or not isinstance(entry.get("NextAction"), str)
            or not isinstance(entry.get("ErrorType"), str)
        ):
            block.problem(f"Transitions.Errors[{i}] needs string NextAction and ErrorType")
            continue
        errors.append(ErrorBranch(entry["NextAction"], entry["ErrorType"]))

    conditions: list[ConditionBranch] = []
    raw_conditions = raw.get("Conditions", [])
    if not isinstance(raw_conditions, list):
        block.problem("Transitions.Conditions must be a list")
        raw_conditions = []
    for i, entry in enumerate(raw_conditions):
        where = f"Transitions.Conditions[{i}]"
        if not isinstance(entry, Mapping) or not isinstance(entry.get("NextAction"), str):
            block.problem(f"{where} needs a string NextAction")
            continue
        cond = entry.get("Condition")
        if not isinstance(cond, Mapping):
            block.problem(f"{where}.Condition must be an object")
            continue
        try:
            operator = Operator(str(cond.get("Operator")))
        except ValueError:
            block.problem(
                f"{where}.Condition.Operator {cond.get('Operator')!r} must be one of "
                + ", ".join(o.value for o in Operator)
            )
            continue
        operands = cond.get("Operands")
        if (
            not isinstance(operands, list)
            or not operands
            or not all(
                isinstance(o, str | int | float) and not isinstance(o, bool) for o in operands
            )
        ):
            block.problem(f"{where}.Condition.Operands must be a non-empty list of strings")
            continue
        conditions.append(
            ConditionBranch(
                entry["NextAction"], Condition(operator, tuple(str(o) for o in operands))
            )
        )

    return Transitions(next_action, tuple(errors), tuple(conditions))


def _display_names(metadata: Any, identifier: str) -> dict[str, str]:
    """Flatten ``Metadata.ActionMetadata[id].parameters`` display names to dotted keys."""
    if not isinstance(metadata, Mapping):
        return {}
    action_meta = metadata.get("ActionMetadata")
    if not isinstance(action_meta, Mapping):
        return {}
    entry = action_meta.get(identifier)
    if not isinstance(entry, Mapping):
        return {}
    found: dict[str, str] = {}

    def walk(node: Any, prefix: str) -> None:
        if not isinstance(node, Mapping):
            return
        name = node.get("displayName")
        if isinstance(name, str) and prefix:
            found[prefix] = name
        for key, child in node.items():
            if key != "displayName":
                walk(child, f"{prefix}.{key}" if prefix else str(key))

    walk(entry.get("parameters"), "")
    return found


def _identifier_lines(text: str) -> dict[str, int]:
    lines: dict[str, int] = {}
    for match in _IDENTIFIER_RE.finditer(text):
        try:
            identifier = json.loads(match.group(1))
        except json.JSONDecodeError:  # pragma: no cover - the document parsed already
            continue
        lines.setdefault(identifier, text.count("\n", 0, match.start()) + 1)
    return lines


def parse_flow(text: str, file: str, *, default_name: str | None = None) -> Flow:
    """Parse Flow Language JSON ``text``; ``file`` is only used in messages."""
    reader = _Reader(file)
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise FlowError.single(
            file, f"invalid JSON: {exc.msg} (column {exc.colno})", line=exc.lineno
        ) from None
    if not isinstance(document, Mapping):
        raise FlowError.single(file, "a flow must be a JSON object", line=1)

    version = document.get("Version")
    if not isinstance(version, str):
        reader.problem('"Version" must be a string such as "2019-10-30"', line=1, where="Version")
    start = document.get("StartAction")
    if not isinstance(start, str):
        reader.problem('"StartAction" must name the first block', line=1, where="StartAction")
    raw_actions = document.get("Actions")
    if not isinstance(raw_actions, list):
        reader.problem('"Actions" must be a list of blocks', line=1, where="Actions")
        raise reader.error()

    metadata = document.get("Metadata")
    lines = _identifier_lines(text)
    blocks: dict[str, Block] = {}
    all_targets: list[tuple[_BlockReader, str]] = []

    for index, raw in enumerate(raw_actions):
        if not isinstance(raw, Mapping):
            reader.problem("each action must be an object", where=f"Actions[{index}]")
            continue
        identifier = raw.get("Identifier")
        type_ = raw.get("Type")
        if not isinstance(identifier, str) or not identifier:
            reader.problem(
                "Identifier must be a non-empty string",
                where=f"Actions[{index}]",
                block_type=str(type_),
            )
            continue
        line = lines.get(identifier)
        block = _BlockReader(reader, identifier, str(type_), line)
        if not isinstance(type_, str):
            block.problem("Type must be a string")
            continue
        bad_chars = sorted(set(identifier) & _FORBIDDEN_ID_CHARS)
        if bad_chars:
            block.problem(f"Identifier may not contain {' '.join(bad_chars)}")
        if identifier in blocks:
            block.problem("duplicate Identifier")
            continue
        if type_ not in SUPPORTED_BLOCK_TYPES:
            block.problem(f"unsupported block type {type_!r}")
            continue
        params = raw.get("Parameters", {})
        if params is None:
            params = {}
        if not isinstance(params, Mapping):
            block.problem("Parameters must be an object")
            continue
        transitions = _parse_transitions(block, raw.get("Transitions"))
        parameters = _parse_parameters(block, params, transitions)
        all_targets.extend((block, target) for target in transitions.targets())
        if parameters is None or not block.ok:
            continue
        blocks[identifier] = Block(
            identifier=identifier,
            type=type_,
            parameters=parameters,
            transitions=transitions,
            line=line,
            display_names=_display_names(metadata, identifier),
        )

    known = {a.get("Identifier") for a in raw_actions if isinstance(a, Mapping)}
    for block, target in all_targets:
        if target not in known:
            block.problem(f"transition to unknown block {target!r}")
    if isinstance(start, str) and start not in known:
        reader.problem(f"StartAction {start!r} names no block", line=1, where="StartAction")

    if reader.problems:
        raise reader.error()
    assert isinstance(version, str) and isinstance(start, str)

    name = default_name or Path(file).stem
    flow_type: str | None = None
    description = ""
    if isinstance(metadata, Mapping):
        if isinstance(metadata.get("name"), str) and metadata["name"]:
            name = metadata["name"]
        if isinstance(metadata.get("type"), str):
            flow_type = metadata["type"]
        if isinstance(metadata.get("description"), str):
            description = metadata["description"]
    return Flow(
        name=name,
        id=Path(file).stem,
        file=file,
        version=version,
        start_action=start,
        blocks=blocks,
        flow_type=flow_type,
        description=description,
    )


def load_flow(path: str | Path) -> Flow:
    """Load and validate one flow file; raises :class:`FlowError`."""
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise FlowError.single(file, f"cannot read flow: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise FlowError.single(file, f"not UTF-8 text: {exc.reason}") from None
    return parse_flow(text, file)


# -- the registry ---------------------------------------------------------------------------


def _key(ref: str) -> str:
    return ref.strip().casefold()


class FlowRegistry:
    """The flows of one instance, found by name, file id or ARN.

    Flow references in flows and in the instance config may be a flow's name
    (``Metadata.name``, else the file name), its id (the file name without
    ``.json``) or an ARN ``arn:aws:connect:…:instance/…/contact-flow/<id>``
    whose ``<id>`` is one of those. When an exported flow names an ARN of the
    instance it came from, the console's display name kept in its Metadata is
    tried as well.
    """

    def __init__(self, flows: Iterable[Flow] = ()) -> None:
        self._by_key: dict[str, Flow] = {}
        self._flows: dict[str, Flow] = {}
        for flow in flows:
            self.add(flow)

    def add(self, flow: Flow) -> None:
        """Add ``flow``; one with the same name (e.g. a default) is replaced."""
        old = self._flows.pop(_key(flow.name), None)
        if old is not None:
            self._by_key = {k: f for k, f in self._by_key.items() if f is not old}
        self._flows[_key(flow.name)] = flow
        self._by_key[_key(flow.id)] = flow
        self._by_key[_key(flow.name)] = flow

    @classmethod
    def load(cls, *directories: str | Path, include_defaults: bool = True) -> FlowRegistry:
        """Load every ``*.json`` of the defaults, then of each directory (later ones win).

        Raises one :class:`FlowError` with the problems of every bad file and
        every flow reference that names no flow.
        """
        registry = cls()
        problems: list[Problem] = []
        first: FlowError | None = None
        dirs = ([DEFAULTS_DIR] if include_defaults else []) + [Path(d) for d in directories]
        for directory in dirs:
            if not directory.is_dir():
                problems.append(Problem(str(directory), None, "", "flows directory does not exist"))
                continue
            names: dict[str, str] = {}
            for path in sorted(directory.glob("*.json")):
                try:
                    flow = load_flow(path)
                except FlowError as exc:
                    first = first or exc
                    problems.extend(exc.problems)
                    continue
                if _key(flow.name) in names:
                    problems.append(
                        Problem(
                            str(path),
                            None,
                            "",
                            f"flow name {flow.name!r} is also used by {names[_key(flow.name)]}",
                        )
                    )
                    continue
                names[_key(flow.name)] = str(path)
                registry.add(flow)
        problems.extend(registry.validate())
        if problems:
            raise FlowError(
                problems,
                block_id=first.block_id if first else None,
                block_type=first.block_type if first else None,
            )
        return registry

    def find(self, ref: str, *, display_name: str | None = None) -> Flow | None:
        for candidate in (ref, resource_id(ref), display_name):
            if candidate is None:
                continue
            flow = self._by_key.get(_key(candidate))
            if flow is not None:
                return flow
        return None

    def get(self, ref: str, *, display_name: str | None = None) -> Flow:
        flow = self.find(ref, display_name=display_name)
        if flow is None:
            raise KeyError(ref)
        return flow

    def default_for(self, hook: EventHook) -> Flow:
        """The flow Amazon Connect runs for ``hook`` when no flow set one."""
        return self.get(DEFAULT_FLOW_FOR_HOOK[hook])

    def __contains__(self, ref: object) -> bool:
        return isinstance(ref, str) and self.find(ref) is not None

    def __iter__(self) -> Iterator[Flow]:
        return iter(self._flows.values())

    def __len__(self) -> int:
        return len(self._flows)

    def names(self) -> list[str]:
        return [flow.name for flow in self._flows.values()]

    def validate(self, extra: Callable[[Flow, Block], list[str]] | None = None) -> list[Problem]:
        """Problems with static flow references between flows (and ``extra`` checks per block)."""
        problems: list[Problem] = []
        for flow in self:
            for block in flow.blocks.values():
                where = f"block {block.identifier!r} ({block.type})"
                params = block.parameters
                ref: str | None = None
                hint: str | None = None
                if isinstance(params, UpdateContactEventHooksParameters):
                    ref, hint = (
                        params.flow,
                        block.display_names.get(f"EventHooks.{params.hook.value}"),
                    )
                elif isinstance(params, TransferToFlowParameters):
                    ref, hint = params.flow, block.display_names.get("ContactFlowId")
                if (
                    ref is not None
                    and not is_dynamic(ref)
                    and self.find(ref, display_name=hint) is None
                ):
                    problems.append(
                        Problem(flow.file, block.line, where, f"names unknown flow {ref!r}")
                    )
                if extra is not None:
                    problems.extend(
                        Problem(flow.file, block.line, where, m) for m in extra(flow, block)
                    )
        return problems
