"""The instance config: one YAML file describing the lab's contact center.

Validated with pydantic; every error is reported with FILE:LINE and the field
path (``agents.maria.routing_profile``), because the user edits YAML, not
Python. Line numbers come from the YAML node marks (``yaml.compose``), and
pydantic's error ``loc`` is walked down the same tree to find them.

With no config, ``qconnect serve`` runs :func:`demo_lab`, loaded from
``demo_lab.yaml`` next to this module by the same loader.
"""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from flows.errors import FlowError, Problem, ProblemsError
from flows.loader import (
    DEFAULT_AGENT_TRANSFER,
    DEFAULT_CUSTOMER_QUEUE,
    DEFAULT_QUEUE_TRANSFER,
    FlowRegistry,
    is_dynamic,
    load_flow,
    resource_id,
)
from flows.model import (
    Block,
    CheckHoursOfOperationParameters,
    CheckMetricDataParameters,
    Flow,
    Message,
    MessageParticipantIterativelyParameters,
    MessageParticipantParameters,
    UpdateContactTargetQueueParameters,
)
from telephony.sip.errors import SipParseError
from telephony.sip.parser import parse_uri

DEMO_LAB_PATH = Path(__file__).resolve().parent / "demo_lab.yaml"

_E164_RE = re.compile(r"^\+[1-9][0-9]{1,14}$")
# A SIP user part we can register and route (RFC 3261 25.1 "user" minus escapes).
_LOGIN_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._~!$&'*+,;=-]*$")
_CLOCK_RE = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])$|^24:00$")


class ConfigError(ProblemsError):
    """The instance config is invalid; ``problems`` lists every error found."""


# -- field types ----------------------------------------------------------------------------


def _e164(value: str) -> str:
    if not _E164_RE.match(value):
        raise ValueError(f"{value!r} is not an E.164 number such as +15550100")
    return value


def _login(value: str) -> str:
    if not _LOGIN_RE.match(value):
        raise ValueError(f"{value!r} is not usable as a SIP user name")
    return value


def _clock(value: str) -> str:
    if not _CLOCK_RE.match(value):
        raise ValueError(f"{value!r} is not a time of day HH:MM (00:00 to 24:00)")
    return value


E164 = Annotated[str, AfterValidator(_e164)]
Login = Annotated[str, AfterValidator(_login)]
Clock = Annotated[str, AfterValidator(_clock)]


def _minutes(clock: str) -> int:
    hours, minutes = clock.split(":")
    return int(hours) * 60 + int(minutes)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Weekday(StrEnum):
    MONDAY = "monday"
    TUESDAY = "tuesday"
    WEDNESDAY = "wednesday"
    THURSDAY = "thursday"
    FRIDAY = "friday"
    SATURDAY = "saturday"
    SUNDAY = "sunday"


_WEEKDAYS = list(Weekday)


# -- the sections ---------------------------------------------------------------------------


class Agent(_Model):
    """An agent (a user in Amazon Connect terms); the YAML key is the login."""

    display_name: str = Field(min_length=1)
    password: str = Field(min_length=1)  # the SIP digest password, also the HTTP API password
    routing_profile: str
    status: Literal["Available", "Offline"] = "Available"


class User(_Model):
    """A plain SIP user that is not an agent (a customer phone, a supplier)."""

    password: str = Field(min_length=1)
    display_name: str | None = None


class RoutingProfileQueue(_Model):
    queue: str
    priority: int = Field(default=1, ge=1)  # lower is routed first, as in Amazon Connect
    delay: float = Field(default=0.0, ge=0)  # seconds in queue before this profile is offered


class RoutingProfile(_Model):
    queues: list[RoutingProfileQueue] = Field(min_length=1)
    default_outbound_queue: str

    @field_validator("queues", mode="before")
    @classmethod
    def _plain_names(cls, value: Any) -> Any:
        # `queues: [BasicQueue]` is shorthand for `[{queue: BasicQueue}]`.
        if isinstance(value, list):
            return [{"queue": item} if isinstance(item, str) else item for item in value]
        return value

    def queue_names(self) -> list[str]:
        return [entry.queue for entry in self.queues]


class CallerId(_Model):
    name: str = Field(min_length=1)
    number: E164


class Queue(_Model):
    outbound_caller_id: CallerId
    customer_queue_flow: str = DEFAULT_CUSTOMER_QUEUE
    hours_of_operation: str | None = None  # none: always open
    quick_connects: list[str] = Field(default_factory=list)
    id: str | None = None  # lets flows exported from Amazon Connect name the queue by id/ARN
    max_contacts: int | None = Field(default=None, ge=1)  # TransferContactToQueue: QueueAtCapacity


class DayHours(_Model):
    start: Clock
    end: Clock

    @model_validator(mode="after")
    def _ordered(self) -> DayHours:
        if _minutes(self.end) <= _minutes(self.start):
            raise ValueError(f"end {self.end} must be after start {self.start}")
        return self


class HoursOfOperation(_Model):
    """Opening hours per weekday in one timezone; a day not listed is closed."""

    timezone: str = "UTC"
    days: dict[Weekday, DayHours] = Field(default_factory=dict)
    id: str | None = None

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown timezone {value!r} (use an IANA name such as Europe/Berlin)"
            ) from None
        return value

    def is_open(self, at: datetime) -> bool:
        """Whether ``at`` (timezone-aware) falls in the hours; the caller owns the clock."""
        if at.tzinfo is None:
            raise ValueError("is_open needs a timezone-aware datetime")
        local = at.astimezone(zoneinfo.ZoneInfo(self.timezone))
        hours = self.days.get(_WEEKDAYS[local.weekday()])
        if hours is None:
            return False
        midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
        minute = (local - midnight) / timedelta(minutes=1)
        return _minutes(hours.start) <= minute < _minutes(hours.end)


class UserQuickConnect(_Model):
    type: Literal["user"]
    agent: str
    flow: str = DEFAULT_AGENT_TRANSFER


class QueueQuickConnect(_Model):
    type: Literal["queue"]
    queue: str
    flow: str = DEFAULT_QUEUE_TRANSFER


class PhoneNumberQuickConnect(_Model):
    # No flow: the call carries the queue's outbound caller ID (seed, scenario 3).
    type: Literal["phone_number"]
    number: E164


QuickConnect = Annotated[
    UserQuickConnect | QueueQuickConnect | PhoneNumberQuickConnect,
    Field(discriminator="type"),
]


class PhoneNumber(_Model):
    """A DID of the instance and the inbound flow a call to it runs."""

    flow: str
    description: str = ""


class DialTarget(_Model):
    """Where a dialled external number goes in the lab: a registered user or a fixed SIP URI."""

    user: str | None = None
    uri: str | None = None

    @model_validator(mode="after")
    def _one_target(self) -> DialTarget:
        if (self.user is None) == (self.uri is None):
            raise ValueError("give exactly one of user, uri")
        if self.uri is not None:
            try:
                parse_uri(self.uri)
            except SipParseError as exc:
                raise ValueError(f"uri {self.uri!r} is not a SIP URI: {exc}") from None
        return self


class SilenceStep(_Model):
    silence: float = Field(gt=0, le=600)


class PromptStep(_Model):
    prompt: str
    seconds: float | None = Field(default=None, gt=0, le=3600)  # cut (or loop) to this length


PlayStep = str | SilenceStep | PromptStep


class PlaybackService(_Model):
    """A test line: answers, plays its steps in order, hangs up (like a milliwatt line)."""

    type: Literal["playback"]
    play: list[PlayStep] = Field(min_length=1)
    description: str = ""


class ConferenceService(_Model):
    """A conference room: everyone who dials it hears everyone else."""

    type: Literal["conference"]
    description: str = ""


Service = Annotated[PlaybackService | ConferenceService, Field(discriminator="type")]


class FeatureCodes(_Model):
    """DTMF codes on an agent's own phone, for labs with softphones only (Asterisk's
    attended-transfer codes in spirit): `quick_connect` + the quick connect's position in the
    agent's list (1-based) starts it; the others act on the current contact."""

    quick_connect: str = "**"
    abort: str = "*1"  # end the third-party connection (abort the transfer)
    complete: str = "*2"  # leave: the customer and the third party stay connected
    threeway: str = "*3"  # join (conference)
    swap: str = "*4"

    @model_validator(mode="after")
    def _distinct(self) -> FeatureCodes:
        codes = [self.abort, self.complete, self.threeway, self.swap]
        if len(set(codes)) != len(codes) or any(
            not c or set(c) - set("0123456789*#") for c in codes
        ):
            raise ValueError("feature codes must be distinct strings of 0-9, * and #")
        if any(c.startswith(self.quick_connect) for c in codes):
            raise ValueError("no feature code may start with the quick_connect prefix")
        return self


class Prompt(_Model):
    """A prompt: text to synthesise, a WAV file, or a synthesised tone."""

    text: str | None = None
    wav: str | None = None  # relative to the config file
    tone: Literal["beep", "music"] | None = None
    id: str | None = None  # lets exported flows name the prompt by id/ARN

    @model_validator(mode="after")
    def _one_source(self) -> Prompt:
        if sum(x is not None for x in (self.text, self.wav, self.tone)) != 1:
            raise ValueError("give exactly one of text, wav, tone")
        return self


# Prompts the default flows use; a config may redefine them by name.
BUILTIN_PROMPTS: Mapping[str, Prompt] = {
    "Beep": Prompt(tone="beep"),
    "Hold music": Prompt(tone="music"),
    "Queue music": Prompt(tone="music"),
}


class InstanceConfig(_Model):
    """The whole instance; mapping keys are the names (agent login, queue name …)."""

    name: str = "qconnect lab"
    ring_timeout: float = Field(default=20.0, gt=0)  # seconds an offered contact rings an agent
    feature_codes: FeatureCodes = Field(default_factory=FeatureCodes)
    flows_dir: str | None = None  # relative to the config file; adds to / overrides the defaults
    agents: dict[Login, Agent] = Field(min_length=1)
    users: dict[Login, User] = Field(default_factory=dict)
    routing_profiles: dict[str, RoutingProfile] = Field(min_length=1)
    queues: dict[str, Queue] = Field(min_length=1)
    hours_of_operation: dict[str, HoursOfOperation] = Field(default_factory=dict)
    quick_connects: dict[str, QuickConnect] = Field(default_factory=dict)
    phone_numbers: dict[E164, PhoneNumber] = Field(default_factory=dict)
    dial_plan: dict[E164, DialTarget] = Field(default_factory=dict)
    prompts: dict[str, Prompt] = Field(default_factory=dict)
    services: dict[str, Service] = Field(default_factory=dict)  # dial string -> lab service

    _source: Path | None = PrivateAttr(default=None)
    _flows: FlowRegistry | None = PrivateAttr(default=None)

    # -- what the rest of the switch asks ---------------------------------------------------

    @property
    def source(self) -> Path | None:
        """The YAML file this config came from."""
        return self._source

    @property
    def flows(self) -> FlowRegistry:
        """The default flows plus those of ``flows_dir``, checked against this config."""
        if self._flows is None:
            self._flows = FlowRegistry.load(*self._flow_dirs())
        return self._flows

    def _flow_dirs(self) -> list[Path]:
        if self.flows_dir is None:
            return []
        base = self._source.parent if self._source is not None else Path.cwd()
        return [base / self.flows_dir]

    def all_prompts(self) -> dict[str, Prompt]:
        return {**BUILTIN_PROMPTS, **self.prompts}

    def prompt(self, ref: str) -> tuple[str, Prompt] | None:
        """The prompt a PromptId names (name, id or ARN), as (name, prompt)."""
        wanted = {ref.casefold(), resource_id(ref).casefold()}
        for name, prompt in self.all_prompts().items():
            if name.casefold() in wanted or (
                prompt.id is not None and prompt.id.casefold() in wanted
            ):
                return name, prompt
        return None

    def prompt_path(self, prompt: Prompt) -> Path | None:
        """The WAV file of a ``wav`` prompt, resolved against the config file."""
        if prompt.wav is None:
            return None
        base = self._source.parent if self._source is not None else Path.cwd()
        return base / prompt.wav

    def queue_named(self, ref: str) -> str | None:
        """The queue a reference names (name, id or ARN), or None."""
        return _find(ref, {name: q.id for name, q in self.queues.items()})

    def agent_named(self, ref: str) -> str | None:
        return _find(ref, {name: None for name in self.agents})

    def hours_named(self, ref: str) -> str | None:
        return _find(ref, {name: h.id for name, h in self.hours_of_operation.items()})

    def hours_for_queue(self, queue: str) -> HoursOfOperation | None:
        """The hours of ``queue``; None means always open."""
        name = self.queues[queue].hours_of_operation
        return self.hours_of_operation[name] if name is not None else None

    def agent_queues(self, agent: str) -> list[str]:
        """The queues ``agent`` takes contacts from (its routing profile)."""
        return self.routing_profiles[self.agents[agent].routing_profile].queue_names()

    def quick_connects_for(self, agent: str) -> list[str]:
        """Quick connects ``agent`` sees: those of the queues of its routing profile, in order."""
        seen: list[str] = []
        for queue in self.agent_queues(agent):
            for name in self.queues[queue].quick_connects:
                if name not in seen:
                    seen.append(name)
        return seen

    def outbound_queue(self, agent: str) -> str:
        return self.routing_profiles[self.agents[agent].routing_profile].default_outbound_queue


def _find(ref: str, ids: Mapping[str, str | None]) -> str | None:
    tail = resource_id(ref)
    for candidate in (ref, tail):
        if candidate in ids:
            return candidate
    for name, id_ in ids.items():
        if id_ is not None and id_ in (ref, tail):
            return name
    folded = {name.casefold(): name for name in ids}
    return folded.get(ref.casefold()) or folded.get(tail.casefold())


def users_with_passwords(cfg: InstanceConfig) -> dict[str, str]:
    """Every SIP user the registrar accepts: agents and plain users, with passwords."""
    users = {login: agent.password for login, agent in cfg.agents.items()}
    users.update({login: user.password for login, user in cfg.users.items()})
    return users


# -- YAML with line numbers -----------------------------------------------------------------

Path_ = tuple[str | int, ...]
_INT_TAG = "tag:yaml.org,2002:int"
_FLOAT_TAG = "tag:yaml.org,2002:float"


def compose_yaml(text: str, file: str) -> tuple[Any, dict[Path_, int]]:
    """Parse YAML keeping the line of every mapping key and list item."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        raise ConfigError(
            [Problem(file, line, "", f"invalid YAML: {exc.problem or exc}")]
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError([Problem(file, None, "", f"invalid YAML: {exc}")]) from None
    lines: dict[Path_, int] = {(): 1}
    problems: list[Problem] = []
    constructor = yaml.SafeLoader("")

    def convert(node: yaml.Node, path: Path_) -> Any:
        if isinstance(node, yaml.MappingNode):
            out: dict[str, Any] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    problems.append(
                        Problem(
                            file,
                            key_node.start_mark.line + 1,
                            dotted_path(path),
                            "keys must be plain names",
                        )
                    )
                    continue
                # Keys stay the text the user wrote: "+15550100" is a number, not 15550100.
                key = str(key_node.value)
                if key in out:
                    problems.append(
                        Problem(
                            file,
                            key_node.start_mark.line + 1,
                            dotted_path((*path, key)),
                            "duplicate key",
                        )
                    )
                    continue
                lines[(*path, key)] = key_node.start_mark.line + 1
                out[key] = convert(value_node, (*path, key))
            return out
        if isinstance(node, yaml.SequenceNode):
            items = []
            for index, item in enumerate(node.value):
                lines[(*path, index)] = item.start_mark.line + 1
                items.append(convert(item, (*path, index)))
            return items
        assert isinstance(node, yaml.ScalarNode)
        # YAML 1.1 reads +15550100 as an int and 17:30 as 1050 (base 60); both are text here.
        if node.tag in (_INT_TAG, _FLOAT_TAG) and (node.value.startswith("+") or ":" in node.value):
            return node.value
        return constructor.construct_object(node, deep=True)

    data = convert(root, ()) if root is not None else {}
    if problems:
        raise ConfigError(problems)
    return data, lines


def dotted_path(path: Iterable[str | int]) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out


def locate_field(
    data: Any, lines: Mapping[Path_, int], loc: Sequence[str | int], *, missing: bool = False
) -> tuple[Path_, int | None]:
    """Follow a pydantic ``loc`` through the YAML data and return the real path and
    the line of its deepest node. Parts that are not keys (a union's tag,
    ``[key]``) are skipped; a ``missing`` field is named but located at its parent."""
    path: list[str | int] = []
    node = data
    for index, part in enumerate(loc):
        if isinstance(node, Mapping) and isinstance(part, str) and part in node:
            path.append(part)
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            path.append(part)
            node = node[part]
        elif missing and index == len(loc) - 1:
            path.append(part)
    for depth in range(len(path), -1, -1):
        line = lines.get(tuple(path[:depth]))
        if line is not None:
            return tuple(path), line
    return tuple(path), None


# -- cross references -----------------------------------------------------------------------


def _cross_check(cfg: InstanceConfig, flows: FlowRegistry | None) -> list[tuple[Path_, str]]:
    errors: list[tuple[Path_, str]] = []

    def need(ok: bool, path: Path_, message: str) -> None:
        if not ok:
            errors.append((path, message))

    def flow_ok(ref: str, path: Path_) -> None:
        if flows is not None:
            need(
                ref in flows,
                path,
                f"unknown flow {ref!r} (known: {', '.join(sorted(flows.names()))})",
            )

    for login in cfg.agents.keys() & cfg.users.keys():
        errors.append((("users", login), f"{login!r} is already an agent"))
    for login, agent in cfg.agents.items():
        need(
            agent.routing_profile in cfg.routing_profiles,
            ("agents", login, "routing_profile"),
            f"unknown routing profile {agent.routing_profile!r}",
        )
    for name, profile in cfg.routing_profiles.items():
        seen: set[str] = set()
        for i, entry in enumerate(profile.queues):
            need(
                entry.queue in cfg.queues,
                ("routing_profiles", name, "queues", i),
                f"unknown queue {entry.queue!r}",
            )
            need(
                entry.queue not in seen,
                ("routing_profiles", name, "queues", i),
                f"queue {entry.queue!r} listed twice",
            )
            seen.add(entry.queue)
        need(
            profile.default_outbound_queue in cfg.queues,
            ("routing_profiles", name, "default_outbound_queue"),
            f"unknown queue {profile.default_outbound_queue!r}",
        )
    for name, queue in cfg.queues.items():
        if queue.hours_of_operation is not None:
            need(
                queue.hours_of_operation in cfg.hours_of_operation,
                ("queues", name, "hours_of_operation"),
                f"unknown hours of operation {queue.hours_of_operation!r}",
            )
        for i, qc_name in enumerate(queue.quick_connects):
            need(
                qc_name in cfg.quick_connects,
                ("queues", name, "quick_connects", i),
                f"unknown quick connect {qc_name!r}",
            )
        flow_ok(queue.customer_queue_flow, ("queues", name, "customer_queue_flow"))
    for name, qc in cfg.quick_connects.items():
        if isinstance(qc, UserQuickConnect):
            need(
                qc.agent in cfg.agents,
                ("quick_connects", name, "agent"),
                f"unknown agent {qc.agent!r}",
            )
            flow_ok(qc.flow, ("quick_connects", name, "flow"))
        elif isinstance(qc, QueueQuickConnect):
            need(
                qc.queue in cfg.queues,
                ("quick_connects", name, "queue"),
                f"unknown queue {qc.queue!r}",
            )
            flow_ok(qc.flow, ("quick_connects", name, "flow"))
    for number, did in cfg.phone_numbers.items():
        flow_ok(did.flow, ("phone_numbers", number, "flow"))
    for number, target in cfg.dial_plan.items():
        if target.user is not None:
            need(
                target.user in cfg.users or target.user in cfg.agents,
                ("dial_plan", number, "user"),
                f"unknown user {target.user!r}",
            )
    for name, prompt in cfg.prompts.items():
        path = cfg.prompt_path(prompt)
        if path is not None:
            need(path.is_file(), ("prompts", name, "wav"), f"no such file {str(path)!r}")
    known_prompts = cfg.all_prompts()
    for number, service in cfg.services.items():
        need(
            number not in cfg.agents and number not in cfg.users,
            ("services", number),
            f"{number!r} is also a user name",
        )
        if isinstance(service, PlaybackService):
            for index, step in enumerate(service.play):
                ref = step if isinstance(step, str) else getattr(step, "prompt", None)
                if ref is not None:
                    need(
                        cfg.prompt(ref) is not None,
                        ("services", number, "play", index),
                        f"unknown prompt {ref!r} (known: {', '.join(sorted(known_prompts))})",
                    )
    return errors


def _flow_block_refs(cfg: InstanceConfig) -> Any:
    """Per-block checks of flows against this config: prompts, queues, hours."""

    def check(flow: Flow, block: Block) -> list[str]:
        found: list[str] = []
        params = block.parameters
        messages: tuple[Message, ...] = ()
        if isinstance(params, MessageParticipantParameters):
            messages = (params.message,)
        elif isinstance(params, MessageParticipantIterativelyParameters):
            messages = params.messages
        for message in messages:
            ref = message.prompt
            if ref is not None and not is_dynamic(ref) and cfg.prompt(ref) is None:
                found.append(
                    f"names unknown prompt {ref!r} (known: {', '.join(sorted(cfg.all_prompts()))})"
                )
        queue_ref: str | None = None
        agent_ref: str | None = None
        if isinstance(params, UpdateContactTargetQueueParameters | CheckMetricDataParameters):
            queue_ref, agent_ref = params.queue, params.agent
        if queue_ref is not None and not is_dynamic(queue_ref):
            hint = block.display_names.get("QueueId")
            if cfg.queue_named(queue_ref) is None and (
                hint is None or cfg.queue_named(hint) is None
            ):
                found.append(f"names unknown queue {queue_ref!r}")
        if agent_ref is not None and not is_dynamic(agent_ref):
            hint = block.display_names.get("AgentId")
            if cfg.agent_named(agent_ref) is None and (
                hint is None or cfg.agent_named(hint) is None
            ):
                found.append(f"names unknown agent {agent_ref!r}")
        if (
            isinstance(params, CheckHoursOfOperationParameters)
            and params.hours_of_operation is not None
        ):
            ref = params.hours_of_operation
            if not is_dynamic(ref) and cfg.hours_named(ref) is None:
                found.append(f"names unknown hours of operation {ref!r}")
        return found

    return check


# -- loading ----------------------------------------------------------------------------------


def parse_config(text: str, file: str, *, base_dir: Path | None = None) -> InstanceConfig:
    """Validate config YAML ``text``; ``file`` names it in errors. Raises :class:`ConfigError`."""
    data, lines = compose_yaml(text, file)
    if not isinstance(data, Mapping):
        raise ConfigError(
            [Problem(file, 1, "", "the config must be a mapping of sections (agents:, queues: …)")]
        )
    try:
        cfg = InstanceConfig.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            path, line = locate_field(data, lines, err["loc"], missing=err["type"] == "missing")
            message = err["msg"].removeprefix("Value error, ")
            problems.append(Problem(file, line, dotted_path(path), message))
        raise ConfigError(problems) from None
    cfg._source = (base_dir / Path(file).name) if base_dir is not None else Path(file)

    problems = []
    flows: FlowRegistry | None = None
    try:
        flows = cfg.flows
    except FlowError as exc:
        problems.extend(exc.problems)
    for path, message in _cross_check(cfg, flows):
        real, line = locate_field(data, lines, path)
        problems.append(Problem(file, line, dotted_path(real), message))
    if flows is not None:
        problems.extend(flows.validate(_flow_block_refs(cfg)))
    if problems:
        raise ConfigError(problems)
    return cfg


def load_config(path: str | Path) -> InstanceConfig:
    """Load and validate the instance config at ``path``; raises :class:`ConfigError`."""
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            [Problem(file, None, "", f"cannot read config: {exc.strerror or exc}")]
        ) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([Problem(file, None, "", f"not UTF-8 text: {exc.reason}")]) from None
    return parse_config(text, file, base_dir=Path(path).resolve().parent)


def demo_lab() -> InstanceConfig:
    """The built-in demo lab (``demo_lab.yaml``), used when no config is given."""
    return load_config(DEMO_LAB_PATH)


# -- qconnect check ---------------------------------------------------------------------------


def _looks_like_flow(path: Path) -> bool:
    if path.suffix.lower() == ".json":
        return True
    if path.suffix.lower() in (".yaml", ".yml"):
        return False
    try:
        head = path.read_text(encoding="utf-8", errors="replace").lstrip()[:1]
    except OSError:
        return False
    return head == "{"


def check(path: str | Path) -> list[str]:
    """Validate a config (YAML) or a flow (JSON) file; ``FILE:LINE: field: message`` per error.

    A flow is checked on its own and against the default flows and the flows
    next to it (its references to other flows must resolve).
    """
    target = Path(path)
    if not _looks_like_flow(target):
        try:
            load_config(target)
        except ConfigError as exc:
            return [str(p) for p in exc.problems]
        return []
    try:
        flow = load_flow(target)
    except FlowError as exc:
        return [str(p) for p in exc.problems]
    registry = FlowRegistry.load()
    for sibling in sorted(target.parent.glob("*.json")):
        if sibling.resolve() == target.resolve():
            continue
        try:
            registry.add(load_flow(sibling))
        except FlowError:
            continue  # checked when that file is checked
    registry.add(flow)
    return [str(p) for p in registry.validate() if p.file == flow.file]
