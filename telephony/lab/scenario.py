"""Scenario files: who takes part, what they do, and what each of them must hear.

A scenario is one YAML file, validated like the instance config
(:mod:`telephony.center.config`): every error names FILE:LINE and the field
path (``steps[4].ccp.action``), and all errors are reported at once. The
runner (which drives scripted phones against a live switch) executes
:attr:`Scenario.steps` in order and hands a :class:`telephony.lab.assertions.RunRecord`
to :func:`telephony.lab.assertions.evaluate`, which checks
:attr:`Scenario.expect`. Nothing here needs a switch.

The format::

    name: Scenario 1 - quick connect to an agent
    description: free text
    config: lab.yaml           # optional instance config, relative to this file;
                               # default: the built-in demo lab
    timeout: 120               # optional: the whole run may take at most this long
    parties:                   # name -> a phone (the SIP user defaults to the name)
      john:     {kind: agent, plays: 1850}          # a tone in Hz ...
      customer: {kind: customer, plays: Welcome}    # ... a prompt name or a .wav path
      supplier: {kind: external, user: supplier, answer: busy}
    steps:                     # run in order; each item has exactly one of these keys
      - call: {from: customer, to: "+15550100"}
      - wait: 2.5              # seconds
      - wait_for: {banner: {agent: john, connection: customer, state: Incoming}, within: 15}
      - wait_for: {event: {type: offerCreated, agent: maria}, within: 10}
      - wait_for: {call: {party: supplier, state: ringing}, within: 10}
      - ccp: {agent: john, action: quickConnect, name: Maria}
      - play: {party: john, prompt: Welcome}          # or tone: 440 / wav: file.wav
      - dtmf: {party: john, digits: "*3"}
      - hangup: customer
      - mark: consult          # a named instant, usable in every window below
    expect:                    # assertions; each item has one of these keys
      - heard: {party: john, prompt: Transferring to agent, within: [qc, qc+4]}
      - heard: {party: customer, music: true, during: [qc+1, join]}
      - not_heard: {party: john, voice: customer, during: [hold+1, resume]}
      - silence: {party: john, during: [hold+1, resume]}
      - two_way: [john, maria]
        during: [consult+0.5, join]
      - banner: {agent: maria, connection: customer, state: Connected, at: consult}
      - banners: {maria: [Incoming, Connecting, Connected]}
      - ctr: {holdCount: 1, "transfers[0].endpoint": maria}
        record: 0
      - quality: {party: maria, prompt: BasicQueue, min_snr_db: 10}

Times and windows: a time is seconds since the run started (``12.5``), a
mark (``consult``), a mark with an offset (``consult+0.5``, ``join-1``),
``start`` or ``end``. ``within: [a, b]`` means "occurs (starts) somewhere in
[a, b]"; ``during: [a, b]`` means "present throughout [a, b]" for continuous
sounds (tones, music, a party's voice) and "entirely inside [a, b]" for a
prompt. With neither, the whole recording is searched.

Heard items (exactly one per ``heard``/``not_heard``): ``prompt: NAME`` (a
prompt of the config or of the shipped manifest), ``text: "..."`` (speech for
this text, as a flow's ``Text`` plays it), ``wav: FILE``, ``beep: true``,
``music: true`` (the hold/queue music), ``tone: HZ``, ``voice: PARTY`` (what
that party plays, see ``plays``).

``ccp`` actions are the HTTP API / MQTT command names of ARCHITECTURE.md:
accept, reject, quickConnect (needs ``name``), conference, holdAll, swap,
leave, hold / resume / end (need ``connection``: the party name the agent's
CCP shows, e.g. ``customer``, ``maria``, ``PasswordReset``, ``+15557770000``)
and setStatus (needs ``status``). ``contact`` is optional: the runner uses the
agent's only live contact when it is absent.

Public API: :func:`load_scenario`, :func:`parse_scenario`, :class:`Scenario`,
:class:`ScenarioError` (the lab's exception family; ``problems`` are
:class:`flows.errors.Problem`), and :func:`resolve_time` for the runner and
the evaluator.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PrivateAttr,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from flows.errors import Problem, ProblemsError
from media.prompts import DEFAULT_AUDIO_DIR, PromptError, load_manifest
from telephony.center.config import (
    DEMO_LAB_PATH,
    ConfigError,
    InstanceConfig,
    compose_yaml,
    dotted_path,
    load_config,
    locate_field,
)

__all__ = [
    "BANNER_STATES",
    "CCP_ACTIONS",
    "Scenario",
    "ScenarioError",
    "Party",
    "Sound",
    "Step",
    "Expect",
    "TimeRef",
    "Window",
    "load_scenario",
    "parse_scenario",
    "resolve_time",
    "time_marks",
    "SCENARIOS_DIR",
]

SCENARIOS_DIR = Path(__file__).resolve().parent / "scenarios"

BANNER_STATES = ("Incoming", "Connecting", "Connected", "On hold", "Joined", "Ended")
CCP_ACTIONS = (
    "accept",
    "reject",
    "quickConnect",
    "conference",
    "holdAll",
    "swap",
    "leave",
    "hold",
    "resume",
    "end",
    "setStatus",
)
BannerState = Literal["Incoming", "Connecting", "Connected", "On hold", "Joined", "Ended"]
CcpAction = Literal[
    "accept",
    "reject",
    "quickConnect",
    "conference",
    "holdAll",
    "swap",
    "leave",
    "hold",
    "resume",
    "end",
    "setStatus",
]

_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
_TIME_RE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_.]*)\s*(?:([+-])\s*(\d+(?:\.\d+)?|\.\d+))?\s*$")
_DIGITS_RE = re.compile(r"^[0-9*#A-Da-d]+$")


class ScenarioError(ProblemsError):
    """A scenario file is invalid (or names a config that is); ``problems`` lists every error."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


# -- times ------------------------------------------------------------------------------------


def _time_text(value: float | str) -> float | str:
    if isinstance(value, str):
        if not _TIME_RE.match(value):
            raise ValueError(
                f"{value!r} is not a time: use seconds (12.5), a mark (consult), "
                "a mark with an offset (consult+0.5) , start or end"
            )
        return value.strip()
    if value < 0:
        raise ValueError(f"a time cannot be negative ({value})")
    return float(value)


TimeRef = Annotated[float | str, AfterValidator(_time_text)]
Window = tuple[TimeRef, TimeRef]


def _time_mark(value: float | str) -> str | None:
    """The mark a time refers to (None for plain seconds, ``start`` and ``end``)."""
    if isinstance(value, str):
        found = _TIME_RE.match(value)
        if found is not None and found.group(1) not in ("start", "end"):
            return found.group(1)
    return None


def resolve_time(value: float | str, marks: Mapping[str, float], end: float) -> float:
    """Seconds since the run started for a time of the scenario (see the module docstring).

    Raises ``KeyError`` for a mark the run never reached.
    """
    if not isinstance(value, str):
        return float(value)
    found = _TIME_RE.match(value)
    if found is None:
        raise ValueError(f"not a time: {value!r}")
    name, sign, offset = found.groups()
    if name == "start":
        base = 0.0
    elif name == "end":
        base = end
    else:
        base = marks[name]
    delta = float(offset) if offset else 0.0
    return max(0.0, base - delta if sign == "-" else base + delta)


# -- parties ----------------------------------------------------------------------------------


class Sound(_Model):
    """Something a phone plays: a tone (Hz), a prompt (by name) or a WAV file."""

    tone: float | None = Field(default=None, gt=0, lt=4000)
    prompt: str | None = None
    wav: str | None = None  # relative to the scenario file

    @model_validator(mode="after")
    def _one(self) -> Sound:
        if sum(x is not None for x in (self.tone, self.prompt, self.wav)) != 1:
            raise ValueError("give exactly one of tone, prompt, wav")
        return self

    def describe(self) -> str:
        if self.tone is not None:
            return f"{self.tone:g} Hz tone"
        if self.prompt is not None:
            return f"prompt {self.prompt!r}"
        return f"WAV {self.wav}"


def _sound_shorthand(value: Any) -> Any:
    # `plays: 1850` is a tone, `plays: x.wav` a file, `plays: Welcome` a prompt.
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return {"tone": value}
    if isinstance(value, str):
        return {"wav": value} if value.lower().endswith(".wav") else {"prompt": value}
    return value


class Party(_Model):
    """A scripted phone taking part: an agent's softphone, the customer, an external number."""

    kind: Literal["agent", "customer", "external"]
    user: str | None = None  # the SIP user it registers as; default: the party's name
    plays: Sound | None = None  # sent whenever its call is up (for voice/two_way checks)
    answer: Literal["auto", "manual", "never", "busy"] = "auto"

    @field_validator("plays", mode="before")
    @classmethod
    def _plays(cls, value: Any) -> Any:
        return _sound_shorthand(value)


# -- steps ------------------------------------------------------------------------------------


class CallSpec(_Model):
    caller: str = Field(alias="from")
    to: str = Field(min_length=1)

    @field_validator("to", mode="before")
    @classmethod
    def _number_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) else value


class CallStep(_Model):
    call: CallSpec


class WaitStep(_Model):
    wait: float = Field(gt=0, le=3600)


class BannerSpec(_Model):
    """A connection's banner as ``agent``'s CCP shows it; ``connection`` is the party name."""

    agent: str
    connection: str
    state: BannerState


class CallStateSpec(_Model):
    party: str
    state: Literal["ringing", "established", "ended"]


class WaitForSpec(_Model):
    banner: BannerSpec | None = None
    event: dict[str, Any] | None = None  # fields an event's JSON must have (MQTT/WS shape)
    call: CallStateSpec | None = None
    within: float = Field(default=10.0, gt=0, le=3600)

    @model_validator(mode="after")
    def _one(self) -> WaitForSpec:
        if sum(x is not None for x in (self.banner, self.event, self.call)) != 1:
            raise ValueError("give exactly one of banner, event, call")
        if self.event is not None and not self.event:
            raise ValueError("event needs at least one field to match (e.g. type)")
        return self


class WaitForStep(_Model):
    wait_for: WaitForSpec


class CcpSpec(_Model):
    agent: str
    action: CcpAction
    contact: str | None = None  # default: the agent's only live contact
    name: str | None = None  # quickConnect: the quick connect's name
    connection: str | None = None  # hold/resume/end: the party name the CCP shows
    status: Literal["Available", "Offline"] | None = None  # setStatus

    @model_validator(mode="after")
    def _arguments(self) -> CcpSpec:
        needs = {"quickConnect": "name", "hold": "connection", "resume": "connection"}
        needs |= {"end": "connection", "setStatus": "status"}
        wanted = needs.get(self.action)
        if wanted is not None and getattr(self, wanted) is None:
            raise ValueError(f"action {self.action} needs {wanted}")
        for extra in ("name", "connection", "status"):
            if extra != wanted and getattr(self, extra) is not None:
                raise ValueError(f"action {self.action} takes no {extra}")
        return self


class CcpStep(_Model):
    ccp: CcpSpec


class PlaySpec(_Model):
    party: str
    tone: float | None = Field(default=None, gt=0, lt=4000)
    prompt: str | None = None
    wav: str | None = None
    seconds: float | None = Field(default=None, gt=0, le=3600)  # tones: how long

    @model_validator(mode="after")
    def _one(self) -> PlaySpec:
        if sum(x is not None for x in (self.tone, self.prompt, self.wav)) != 1:
            raise ValueError("give exactly one of tone, prompt, wav")
        return self

    @property
    def sound(self) -> Sound:
        return Sound(tone=self.tone, prompt=self.prompt, wav=self.wav)


class PlayStep(_Model):
    play: PlaySpec


class HangupStep(_Model):
    hangup: str


class DtmfSpec(_Model):
    party: str
    digits: str

    @field_validator("digits", mode="before")
    @classmethod
    def _digits(cls, value: Any) -> Any:
        value = str(value) if isinstance(value, int) else value
        if isinstance(value, str) and not _DIGITS_RE.match(value):
            raise ValueError(f"{value!r}: DTMF digits are 0-9, *, # and A-D (RFC 4733)")
        return value


class DtmfStep(_Model):
    dtmf: DtmfSpec


class MarkStep(_Model):
    mark: str

    @field_validator("mark")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME_RE.match(value) or value in ("start", "end") or "." in value:
            raise ValueError(
                f"{value!r} cannot name a mark: letters, digits, _ and -, not start/end"
            )
        return value


_STEP_KINDS = ("call", "wait", "wait_for", "ccp", "play", "hangup", "dtmf", "mark")


def _first_known_key(kinds: Sequence[str]) -> Any:
    def tag(value: Any) -> str | None:
        if isinstance(value, Mapping):
            for key in value:
                if key in kinds:
                    return str(key)
        if isinstance(value, BaseModel):
            for key in type(value).model_fields:
                if key in kinds:
                    return key
        return None

    return tag


Step = Annotated[
    Annotated[CallStep, Tag("call")]
    | Annotated[WaitStep, Tag("wait")]
    | Annotated[WaitForStep, Tag("wait_for")]
    | Annotated[CcpStep, Tag("ccp")]
    | Annotated[PlayStep, Tag("play")]
    | Annotated[HangupStep, Tag("hangup")]
    | Annotated[DtmfStep, Tag("dtmf")]
    | Annotated[MarkStep, Tag("mark")],
    Discriminator(
        _first_known_key(_STEP_KINDS),
        custom_error_type="step_kind",
        custom_error_message=f"a step is one of: {', '.join(_STEP_KINDS)}",
    ),
]


# -- expectations -----------------------------------------------------------------------------

ItemKind = Literal["prompt", "text", "wav", "beep", "music", "tone", "voice"]
_ITEM_KINDS: tuple[ItemKind, ...] = ("prompt", "text", "wav", "beep", "music", "tone", "voice")


class HeardSpec(_Model):
    """What ``party`` heard: exactly one item, optionally in a window."""

    party: str
    prompt: str | None = None
    text: str | None = None
    wav: str | None = None
    beep: Literal[True] | None = None
    music: Literal[True] | None = None
    tone: float | None = Field(default=None, gt=0, lt=4000)
    voice: str | None = None  # another party: what it plays
    within: Window | None = None
    during: Window | None = None
    min_score: float | None = Field(default=None, gt=0, le=1)  # correlation (prompts, music)
    min_duration: float | None = Field(default=None, gt=0)  # seconds a tone must last
    min_coverage: float | None = Field(default=None, gt=0, le=1)  # share of `during` covered

    @model_validator(mode="after")
    def _one_item(self) -> HeardSpec:
        given = [kind for kind in _ITEM_KINDS if getattr(self, kind) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of {', '.join(_ITEM_KINDS)}")
        if self.within is not None and self.during is not None:
            raise ValueError("give within or during, not both")
        return self

    @property
    def item(self) -> tuple[ItemKind, Any]:
        for kind in _ITEM_KINDS:
            value = getattr(self, kind)
            if value is not None:
                return kind, value
        raise AssertionError("validated to have one item")


class HeardExpect(_Model):
    heard: HeardSpec
    name: str | None = None


class NotHeardExpect(_Model):
    not_heard: HeardSpec
    name: str | None = None


class SilenceSpec(_Model):
    party: str
    during: Window | None = None
    max_level_db: float = Field(default=-40.0, le=0)  # dBFS of the loudest 100 ms


class SilenceExpect(_Model):
    silence: SilenceSpec
    name: str | None = None


class TwoWayExpect(_Model):
    """Each party hears what the other plays, throughout ``during``."""

    two_way: tuple[str, str]
    during: Window | None = None
    min_coverage: float | None = Field(default=None, gt=0, le=1)
    name: str | None = None

    @model_validator(mode="after")
    def _distinct(self) -> TwoWayExpect:
        if self.two_way[0] == self.two_way[1]:
            raise ValueError("two_way needs two different parties")
        return self


class BannerAtSpec(BannerSpec):
    at: TimeRef | None = None  # the banner reads `state` at this instant
    within: Window | None = None  # the banner changed to `state` in this window

    @model_validator(mode="after")
    def _at_or_within(self) -> BannerAtSpec:
        if self.at is not None and self.within is not None:
            raise ValueError("give at or within, not both")
        return self


class BannerExpect(_Model):
    banner: BannerAtSpec
    name: str | None = None


class BannersExpect(_Model):
    """Banner sequences, in order (other states may come between them):
    ``{agent: [states]}`` over all the agent's connections, or
    ``{agent: {connection: [states]}}`` per connection."""

    banners: dict[str, list[BannerState] | dict[str, list[BannerState]]] = Field(min_length=1)
    name: str | None = None


class CtrExpect(_Model):
    """Fields of a contact trace record: ``{path: value}``. A path is dotted with list
    indexes (``transfers[0].endpoint``, ``prompts[*].what``); a value is compared for
    equality, or is ``{gte|lte|gt|lt|contains|len: x}``."""

    ctr: dict[str, Any] = Field(min_length=1)
    record: int = 0  # which record of the run, in creation order (0: the first contact)
    name: str | None = None


class QualitySpec(_Model):
    """Objective quality of a prompt as heard: matched-filter correlation and SNR
    (signal to residual after the best gain), and level. PESQ is not available."""

    party: str
    prompt: str | None = None
    text: str | None = None
    wav: str | None = None
    within: Window | None = None
    min_score: float | None = Field(default=None, gt=0, le=1)
    min_snr_db: float | None = None
    min_level_db: float | None = Field(default=None, le=0)
    max_level_db: float | None = Field(default=None, le=0)

    @model_validator(mode="after")
    def _one(self) -> QualitySpec:
        if sum(x is not None for x in (self.prompt, self.text, self.wav)) != 1:
            raise ValueError("give exactly one of prompt, text, wav")
        return self


class QualityExpect(_Model):
    quality: QualitySpec
    name: str | None = None


_EXPECT_KINDS = (
    "heard",
    "not_heard",
    "silence",
    "two_way",
    "banner",
    "banners",
    "ctr",
    "quality",
)

Expect = Annotated[
    Annotated[HeardExpect, Tag("heard")]
    | Annotated[NotHeardExpect, Tag("not_heard")]
    | Annotated[SilenceExpect, Tag("silence")]
    | Annotated[TwoWayExpect, Tag("two_way")]
    | Annotated[BannerExpect, Tag("banner")]
    | Annotated[BannersExpect, Tag("banners")]
    | Annotated[CtrExpect, Tag("ctr")]
    | Annotated[QualityExpect, Tag("quality")],
    Discriminator(
        _first_known_key(_EXPECT_KINDS),
        custom_error_type="expect_kind",
        custom_error_message=f"an expectation is one of: {', '.join(_EXPECT_KINDS)}",
    ),
]


def expect_kind(expect: BaseModel) -> str:
    """The key naming an expectation's kind (``heard``, ``two_way`` …)."""
    tag = _first_known_key(_EXPECT_KINDS)(expect)
    assert tag is not None
    return str(tag)


def step_kind(step: BaseModel) -> str:
    """The key naming a step's kind (``call``, ``ccp`` …)."""
    tag = _first_known_key(_STEP_KINDS)(step)
    assert tag is not None
    return str(tag)


# -- the scenario -----------------------------------------------------------------------------


class Scenario(_Model):
    name: str = Field(min_length=1)
    description: str = ""
    config: str | None = None  # instance config, relative to the scenario file
    timeout: float = Field(default=120.0, gt=0, le=3600)
    parties: dict[str, Party] = Field(min_length=1)
    steps: list[Step] = Field(min_length=1)
    expect: list[Expect] = Field(default_factory=list)

    _source: Path | None = PrivateAttr(default=None)
    _lines: dict[tuple[str | int, ...], int] = PrivateAttr(default_factory=dict)
    _config: InstanceConfig | None = PrivateAttr(default=None)

    @field_validator("parties")
    @classmethod
    def _party_names(cls, value: dict[str, Party]) -> dict[str, Party]:
        for name in value:
            if not _NAME_RE.match(name):
                raise ValueError(f"{name!r} cannot name a party: letters, digits, _ and -")
        return value

    @property
    def source(self) -> Path | None:
        """The YAML file this scenario came from."""
        return self._source

    @property
    def config_path(self) -> Path:
        """The instance config this scenario runs against (the demo lab by default)."""
        if self.config is None:
            return DEMO_LAB_PATH
        base = self._source.parent if self._source is not None else Path.cwd()
        return (base / self.config).resolve()

    @property
    def instance_config(self) -> InstanceConfig:
        """The loaded instance config (loaded once; raises :class:`ScenarioError`)."""
        if self._config is None:
            try:
                self._config = load_config(self.config_path)
            except ConfigError as exc:
                raise ScenarioError(exc.problems) from None
        return self._config

    def line(self, *path: str | int) -> int | None:
        """The line of a node of the file (``line("expect", 3)``), when loaded from YAML."""
        for depth in range(len(path), -1, -1):
            found = self._lines.get(tuple(path[:depth]))
            if found is not None:
                return found
        return None

    def sip_user(self, party: str) -> str:
        found = self.parties[party]
        return found.user if found.user is not None else party

    def marks(self) -> list[str]:
        """The marks the steps set, in order."""
        return [step.mark for step in self.steps if isinstance(step, MarkStep)]

    def resolve_path(self, relative: str) -> Path:
        """A file named in the scenario (``wav:``), relative to the scenario file."""
        base = self._source.parent if self._source is not None else Path.cwd()
        return (base / relative).resolve()


def time_marks(value: Any) -> list[str]:
    """Every mark named by a time or window value (for cross-checks)."""
    if isinstance(value, tuple | list):
        return [m for part in value for m in time_marks(part)]
    mark = _time_mark(value) if isinstance(value, str | float | int) else None
    return [mark] if mark is not None else []


# -- cross references ---------------------------------------------------------------------------

_Path = tuple[str | int, ...]


def _known_prompts(cfg: InstanceConfig | None) -> dict[str, str]:
    """Prompt names a scenario may use, casefolded -> as written."""
    names: set[str] = set()
    try:
        names.update(load_manifest(DEFAULT_AUDIO_DIR))
    except PromptError:
        pass
    if cfg is not None:
        names.update(cfg.all_prompts())
    return {name.casefold(): name for name in sorted(names)}


def _cross_check(sc: Scenario, cfg: InstanceConfig | None) -> list[tuple[_Path, str]]:
    errors: list[tuple[_Path, str]] = []
    parties = sc.parties
    prompts = _known_prompts(cfg)

    def party(name: str, path: _Path, kind: str | None = None) -> None:
        if name not in parties:
            errors.append((path, f"unknown party {name!r} (parties: {', '.join(parties)})"))
        elif kind is not None and parties[name].kind != kind:
            errors.append((path, f"{name!r} is a {parties[name].kind}, not an {kind}"))

    def prompt(name: str, path: _Path) -> None:
        if name.casefold() not in prompts:
            known = ", ".join(prompts.values())
            errors.append((path, f"unknown prompt {name!r} (known: {known})"))

    def wav(name: str, path: _Path) -> None:
        if not sc.resolve_path(name).is_file():
            errors.append((path, f"no such file {str(sc.resolve_path(name))!r}"))

    def sound(s: Sound | PlaySpec | HeardSpec | QualitySpec, path: _Path) -> None:
        if s.prompt is not None:
            prompt(s.prompt, (*path, "prompt"))
        if s.wav is not None:
            wav(s.wav, (*path, "wav"))

    def marks_known(value: Any, path: _Path) -> None:
        for mark in time_marks(value):
            if mark not in seen_marks:
                errors.append((path, f"unknown mark {mark!r} (marks: {', '.join(seen_marks)})"))

    for name, p in parties.items():
        if p.plays is not None:
            sound(p.plays, ("parties", name, "plays"))
        if cfg is not None:
            user = sc.sip_user(name)
            if p.kind == "agent" and user not in cfg.agents:
                errors.append(
                    (("parties", name), f"{user!r} is not an agent of {sc.config_path.name}")
                )
            elif p.kind != "agent" and user not in cfg.users and user not in cfg.agents:
                errors.append(
                    (("parties", name), f"{user!r} is not a SIP user of {sc.config_path.name}")
                )

    seen_marks: list[str] = []
    for i, step in enumerate(sc.steps):
        at: _Path = ("steps", i)
        if isinstance(step, CallStep):
            party(step.call.caller, (*at, "call", "from"))
            if cfg is not None:
                to = step.call.to
                known = (
                    to in cfg.phone_numbers
                    or to in cfg.dial_plan
                    or to in cfg.services
                    or to in cfg.agents
                    or to in cfg.users
                )
                if not known:
                    errors.append(
                        (
                            (*at, "call", "to"),
                            f"{to!r} is no DID, dial plan number, service or user",
                        )
                    )
        elif isinstance(step, WaitForStep):
            spec = step.wait_for
            if spec.banner is not None:
                party(spec.banner.agent, (*at, "wait_for", "banner", "agent"), "agent")
            if spec.call is not None:
                party(spec.call.party, (*at, "wait_for", "call", "party"))
        elif isinstance(step, CcpStep):
            party(step.ccp.agent, (*at, "ccp", "agent"), "agent")
            qc_name = step.ccp.name
            if cfg is not None and qc_name is not None and qc_name not in cfg.quick_connects:
                errors.append(
                    (
                        (*at, "ccp", "name"),
                        f"unknown quick connect {qc_name!r} (known: {', '.join(cfg.quick_connects)})",
                    )
                )
        elif isinstance(step, PlayStep):
            party(step.play.party, (*at, "play", "party"))
            sound(step.play, (*at, "play"))
        elif isinstance(step, HangupStep):
            party(step.hangup, (*at, "hangup"))
        elif isinstance(step, DtmfStep):
            party(step.dtmf.party, (*at, "dtmf", "party"))
        elif isinstance(step, MarkStep):
            if step.mark in seen_marks:
                errors.append(((*at, "mark"), f"mark {step.mark!r} is set twice"))
            seen_marks.append(step.mark)

    for i, expect in enumerate(sc.expect):
        at = ("expect", i)
        if isinstance(expect, HeardExpect | NotHeardExpect):
            key = "heard" if isinstance(expect, HeardExpect) else "not_heard"
            spec_h = expect.heard if isinstance(expect, HeardExpect) else expect.not_heard
            party(spec_h.party, (*at, key, "party"))
            sound(spec_h, (*at, key))
            if spec_h.voice is not None:
                party(spec_h.voice, (*at, key, "voice"))
                if spec_h.voice in parties and parties[spec_h.voice].plays is None:
                    errors.append(
                        ((*at, key, "voice"), f"party {spec_h.voice!r} plays nothing to listen for")
                    )
            marks_known(spec_h.within, (*at, key, "within"))
            marks_known(spec_h.during, (*at, key, "during"))
        elif isinstance(expect, SilenceExpect):
            party(expect.silence.party, (*at, "silence", "party"))
            marks_known(expect.silence.during, (*at, "silence", "during"))
        elif isinstance(expect, TwoWayExpect):
            for j, name in enumerate(expect.two_way):
                party(name, (*at, "two_way", j))
                if name in parties and parties[name].plays is None:
                    errors.append(((*at, "two_way", j), f"party {name!r} plays nothing"))
            marks_known(expect.during, (*at, "during"))
        elif isinstance(expect, BannerExpect):
            party(expect.banner.agent, (*at, "banner", "agent"), "agent")
            marks_known(expect.banner.at, (*at, "banner", "at"))
            marks_known(expect.banner.within, (*at, "banner", "within"))
        elif isinstance(expect, BannersExpect):
            for agent in expect.banners:
                party(agent, (*at, "banners", agent), "agent")
        elif isinstance(expect, QualityExpect):
            party(expect.quality.party, (*at, "quality", "party"))
            sound(expect.quality, (*at, "quality"))
            marks_known(expect.quality.within, (*at, "quality", "within"))
    return errors


# -- loading ----------------------------------------------------------------------------------


def _without_tag(loc: Sequence[str | int]) -> tuple[str | int, ...]:
    """Drop the union tag pydantic puts in an error's ``loc`` (``expect.0.two_way.during``):
    the tag is also a real key of the item, so it would be followed as one."""
    kinds = {"steps": _STEP_KINDS, "expect": _EXPECT_KINDS}.get(str(loc[0])) if loc else None
    if kinds is not None and len(loc) >= 3 and isinstance(loc[1], int) and loc[2] in kinds:
        return (*loc[:2], *loc[3:])
    return tuple(loc)


def parse_scenario(
    text: str, file: str, *, base_dir: Path | None = None, check_config: bool = True
) -> Scenario:
    """Validate scenario YAML ``text``; ``file`` names it in errors. Raises :class:`ScenarioError`.

    With ``check_config`` the instance config is loaded too and the scenario is
    checked against it (SIP users, numbers, quick connects, prompts).
    """
    try:
        data, lines = compose_yaml(text, file)
    except ConfigError as exc:
        raise ScenarioError(exc.problems) from None
    if not isinstance(data, Mapping):
        raise ScenarioError([Problem(file, 1, "", "a scenario is a mapping (name:, parties:, …)")])
    try:
        sc = Scenario.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = _without_tag(err["loc"])
            path, line = locate_field(data, lines, loc, missing=err["type"] == "missing")
            message = err["msg"].removeprefix("Value error, ")
            problems.append(Problem(file, line, dotted_path(path), message))
        raise ScenarioError(problems) from None
    sc._source = (base_dir / Path(file).name) if base_dir is not None else Path(file)
    sc._lines = dict(lines)
    cfg: InstanceConfig | None = None
    problems = []
    if check_config:
        try:
            cfg = sc.instance_config
        except ScenarioError as exc:
            where = locate_field(data, lines, ("config",))[1]
            problems.append(
                Problem(file, where, "config", f"invalid instance config {sc.config_path}")
            )
            problems.extend(exc.problems)
    for path, message in _cross_check(sc, cfg):
        real, line = locate_field(data, lines, path)
        problems.append(Problem(file, line, dotted_path(real), message))
    if problems:
        raise ScenarioError(problems)
    return sc


def load_scenario(path: str | Path, *, check_config: bool = True) -> Scenario:
    """Load and validate the scenario at ``path``; raises :class:`ScenarioError`."""
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError(
            [Problem(file, None, "", f"cannot read scenario: {exc.strerror or exc}")]
        ) from None
    except UnicodeDecodeError as exc:
        raise ScenarioError([Problem(file, None, "", f"not UTF-8 text: {exc.reason}")]) from None
    return parse_scenario(
        text, file, base_dir=Path(path).resolve().parent, check_config=check_config
    )


def shipped_scenarios(include_broken: bool = False) -> list[Path]:
    """The scenario files shipped in ``telephony/lab/scenarios/`` (sorted)."""
    found = sorted(SCENARIOS_DIR.glob("*.yaml"))
    if include_broken:
        found += sorted((SCENARIOS_DIR / "broken").glob("*.yaml"))
    return [p for p in found if not p.name.startswith("_")]
