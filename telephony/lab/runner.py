"""Run scenario files against a switch with scripted phones, and collect what everyone heard.

The runner starts the switch embedded (in this process, on free loopback ports, with the
scenario's instance config) or talks to a running one (`--target`), registers one scripted
phone per party, executes the steps in order, and hands the recordings, the event timeline
and the contact trace records to `telephony.lab.assertions.evaluate`.

Everything it needs from the switch goes through a :class:`Control`: the CCP actions, the
agents' snapshots, the event stream, the contact trace records and where phones register.
:class:`EmbeddedControl` calls the contact center in-process; ``telephony.lab.remote``'s
``RemoteControl`` uses the HTTP API and the agents' WebSockets of a running ``qconnect serve``.

Answer modes of the parties (scenario.py): an *agent* with ``auto`` answers its ringing phone
when the CCP accepts (Amazon Connect's softphone), ``manual`` only when a step accepts,
``never`` lets it ring, ``busy`` answers 486; a customer or external party with ``auto``
answers as soon as it rings.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from telephony.api.commands import Command, execute
from telephony.center.config import InstanceConfig, users_with_passwords
from telephony.center.events import CenterError
from telephony.center.executor import ContactCenter
from telephony.lab.assertions import (
    Recording,
    RunRecord,
    ScenarioResult,
    SoundLibrary,
    TimelineEvent,
    evaluate,
)
from telephony.lab.phone import CallFailed, CallState, Phone, PhoneCall
from telephony.lab.scenario import (
    CallStep,
    CcpStep,
    DtmfStep,
    HangupStep,
    MarkStep,
    PlayStep,
    Scenario,
    Sound,
    WaitForStep,
    WaitStep,
)
from telephony.switch.server import Switch, SwitchSettings
from telephony.transport.base import Address

log = logging.getLogger("qconnect.lab")
RATE = 8000

Narrator = Callable[[float, str], None]
EventListener = Callable[[dict[str, Any]], None]


class Control(Protocol):
    """The switch as the runner sees it; embedded and remote runs differ only here."""

    #: The switch outlives the run (a running ``qconnect serve``): phones unregister at the
    #: end so the next run's INVITEs do not fork to dead bindings.
    shared: bool

    @property
    def sip_address(self) -> Address:
        """Where the phones register and send their calls."""
        ...

    @property
    def phone_bind(self) -> str:
        """The local address the phones listen on (one the switch can reach)."""
        ...

    async def start(self) -> None: ...

    def subscribe(self, listener: EventListener) -> None:
        """Every center event from now on, as its JSON (docs/events.md), each once."""
        ...

    async def act(self, agent: str, command: Command) -> None:
        """One CCP action by ``agent``; raises CenterError when the switch refuses it."""
        ...

    async def snapshot(self, agent: str) -> dict[str, Any]: ...

    async def contact_records(self) -> list[dict[str, Any]]:
        """The run's contact trace records, oldest first."""
        ...

    def backfill(self, ctrs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Events the subscription could not see, rebuilt from the records (with ``t``)."""
        ...

    async def stop(self) -> None: ...


class EmbeddedControl:
    """A switch of the run's own, in this process, on free loopback ports."""

    shared = False
    phone_bind = "127.0.0.1"

    def __init__(self, config: InstanceConfig, data_dir: Path) -> None:
        self.config = config
        self.data_dir = data_dir
        self.switch: Switch | None = None

    @property
    def center(self) -> ContactCenter:
        assert self.switch is not None, "the switch has not started"
        return self.switch.center

    @property
    def sip_address(self) -> Address:
        assert self.switch is not None, "the switch has not started"
        return Address("udp", "127.0.0.1", self.switch.endpoint.port)

    async def start(self) -> None:
        base = 20000 + random.randrange(0, 400) * 100
        settings = SwitchSettings(sip_port=0, rtp_ports=(base, base + 99), data_dir=self.data_dir)
        self.switch = Switch(settings, self.config)
        await self.switch.start()

    def subscribe(self, listener: EventListener) -> None:
        self.center.subscribe(listener)

    async def act(self, agent: str, command: Command) -> None:
        execute(self.center, agent, command)

    async def snapshot(self, agent: str) -> dict[str, Any]:
        return dict(self.center.snapshot(agent))

    async def contact_records(self) -> list[dict[str, Any]]:
        if self.switch is None:
            return []
        ids = [c["contact"] for c in self.center.ctr.list_contacts()]
        return [self.center.ctr.get(i) for i in ids]

    def backfill(self, ctrs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return []  # the center's own subscription misses nothing

    async def stop(self) -> None:
        if self.switch is not None:
            await self.switch.stop()


class StepFailed(Exception):
    """A step could not be carried out (a banner never came, a call failed)."""


@dataclass(eq=False)
class PartyPhone:
    name: str
    kind: str
    answer: str
    phone: Phone
    sound: npt.NDArray[np.int16] | None
    calls: list[PhoneCall] = field(default_factory=list)

    @property
    def current(self) -> PhoneCall | None:
        live = [c for c in self.calls if c.state is not CallState.ENDED]
        return live[-1] if live else (self.calls[-1] if self.calls else None)

    def ringing(self) -> PhoneCall | None:
        for call in reversed(self.calls):
            if call.state is CallState.RINGING and not call.outgoing:
                return call
        return None


class ScenarioRunner:
    def __init__(
        self,
        scenario: Scenario,
        *,
        data_dir: Path | None = None,
        narrate: Narrator | None = None,
        control: Control | None = None,
    ) -> None:
        self.scenario = scenario
        self.data_dir = data_dir or Path(tempfile.mkdtemp(prefix="qconnect-run-"))
        self.narrate = narrate or (lambda t, text: None)
        self.library = SoundLibrary(scenario.instance_config)
        self.control: Control = control or EmbeddedControl(
            scenario.instance_config, self.data_dir / "switch"
        )
        self.parties: dict[str, PartyPhone] = {}
        self.record = RunRecord()
        self._t0 = 0.0  # time.monotonic() of t = 0
        self._t0_loop = 0.0  # the event loop's time of t = 0
        self._events: list[dict[str, Any]] = []
        self._event_arrived = asyncio.Event()
        self._prompt_starts: dict[str, dict[str, Any]] = {}
        self._accepted: set[str] = set()  # agents who accepted in the CCP before their phone rang

    # --- the run ---

    async def run(self) -> ScenarioResult:
        started = time.monotonic()
        error: str | None = None
        try:
            await asyncio.wait_for(self._run(), self.scenario.timeout)
        except TimeoutError:
            error = f"the run exceeded its timeout of {self.scenario.timeout} s"
        except StepFailed as exc:
            error = str(exc)
        except Exception as exc:  # the report must still be written
            log.exception("scenario %s failed", self.scenario.name)
            error = f"{type(exc).__name__}: {exc}"
        finally:
            await self._collect()
            await self._teardown()
        if error is not None:
            self.record.errors.append(error)
        results = evaluate(self.scenario, self.record, self.library)
        return ScenarioResult(
            self.scenario, self.record, results, time.monotonic() - started, error
        )

    @property
    def switch(self) -> Switch | None:
        """The embedded switch (None for a remote run, or before it starts)."""
        return self.control.switch if isinstance(self.control, EmbeddedControl) else None

    async def _run(self) -> None:
        config = self.scenario.instance_config
        await self.control.start()
        # The run's clock is time.monotonic() (uvloop's loop clock has 1 ms steps, so a mark
        # and the event it causes could tie); recordings are placed via the loop's clock.
        self._t0_loop = asyncio.get_running_loop().time()
        self._t0 = time.monotonic()
        self.record.started_at = time.time()
        self.control.subscribe(self._on_event)
        passwords = users_with_passwords(config)
        for name, party in self.scenario.parties.items():
            user = self.scenario.sip_user(name)
            phone = Phone(
                user, passwords[user], self.control.sip_address, bind=self.control.phone_bind
            )
            await phone.start()
            response = await phone.register()
            if response.status != 200:
                raise StepFailed(f"{name} could not register as {user}: {response.status}")
            entry = PartyPhone(name, party.kind, party.answer, phone, self._samples(party.plays))
            phone.on_call = lambda call, entry=entry: self._ringing(entry, call)
            self.parties[name] = entry
        for index, step in enumerate(self.scenario.steps):
            await self._step(index, step)

    def now(self) -> float:
        return time.monotonic() - self._t0

    def _samples(self, sound: Sound | None) -> npt.NDArray[np.int16] | None:
        if sound is None:
            return None
        if sound.tone is not None:
            t = np.arange(RATE * 4) / RATE  # 4 s of a whole number of periods loops cleanly
            return (5000 * np.sin(2 * np.pi * sound.tone * t)).astype(np.int16)
        reference = self.library.sound(sound, sound.prompt or sound.wav or "sound", self.scenario)
        if reference.samples is None:
            raise StepFailed(f"{reference.label}: not a playable sound")
        return (np.clip(reference.samples, -1.0, 1.0) * 32767).astype(np.int16)

    # --- phones ---

    def _ringing(self, party: PartyPhone, call: PhoneCall) -> None:
        party.calls.append(call)
        self.narrate(self.now(), f"{party.name}'s phone rings")
        if party.answer == "busy":
            call.reject(486)
        elif party.name in self._accepted and party.answer in ("auto", "manual"):
            self._accepted.discard(party.name)
            asyncio.get_running_loop().create_task(self._answer(party, call))
        elif party.answer == "auto" and party.kind != "agent":
            asyncio.get_running_loop().create_task(self._answer(party, call, delay=0.5))

    async def _answer(self, party: PartyPhone, call: PhoneCall, delay: float = 0.0) -> None:
        if delay:
            await asyncio.sleep(delay)
        if call.state is CallState.RINGING:
            await call.answer()
            self._start_sound(party, call)
            self.narrate(self.now(), f"{party.name} answers")

    def _start_sound(self, party: PartyPhone, call: PhoneCall) -> None:
        if party.sound is not None:
            call.media.play(party.sound, loop=True)

    # --- events from the switch ---

    def _on_event(self, event: dict[str, Any]) -> None:
        # Place every event on the runner's own clock as it arrives: marks use that clock,
        # and an event caused by a step must never appear to precede it.
        event = {**event, "t": self.record.started_at + self.now()}
        self._events.append(event)
        self._event_arrived.set()
        kind = event.get("type")
        t = self.now()
        if kind == "promptStarted":
            self._prompt_starts[str(event.get("prompt"))] = event
            self.narrate(t, f"{str(event.get('to', '')).capitalize()} hears: {event.get('what')}")
            return
        if kind == "promptEnded":
            start = self._prompt_starts.pop(str(event.get("prompt")), None)
            if start is not None:
                self.record.timeline.append(
                    TimelineEvent.from_event_json(
                        {
                            "type": "prompt",
                            "what": event.get("what"),
                            "to": event.get("to"),
                            "t": start["t"],
                            "end": event["t"],
                        },
                        self.record.started_at,
                    )
                )
            return
        self.record.timeline.append(TimelineEvent.from_event_json(event, self.record.started_at))
        if (kind == "banner" or kind == "connectionAdded") and event.get("agent"):
            self.narrate(
                t, f"{event.get('agent')}'s CCP: {event.get('party')} -> {event.get('banner')}"
            )
        elif kind == "flowBlock":
            self.narrate(t, f"flow {event.get('flow')}: {event.get('block')}")

    def _banner(self, agent: str, connection: str) -> str | None:
        state = None
        for event in self._events:
            if event.get("type") in ("banner", "connectionAdded") and event.get("agent") == agent:
                if event.get("party") == connection:
                    state = event.get("banner")
        return state

    # --- steps ---

    async def _step(self, index: int, step: Any) -> None:
        line = self.scenario.line("steps", index)
        where = f"{self.scenario.source or 'scenario'}:{line or '?'}: step {index + 1}"
        match step:
            case MarkStep(mark=name):
                self.record.timeline.append(TimelineEvent.mark(self.now(), name))
            case WaitStep(wait=seconds):
                await asyncio.sleep(seconds)
            case CallStep(call=spec):
                party = self.parties[spec.caller]
                self.narrate(self.now(), f"{spec.caller} dials {spec.to}")
                asyncio.get_running_loop().create_task(self._place(party, spec.to))
                await asyncio.sleep(0)
            case WaitForStep(wait_for=spec):
                await self._wait_for(spec, where)
            case CcpStep(ccp=spec):
                await self._ccp(spec, where)
            case PlayStep(play=spec):
                call = self.parties[spec.party].current
                if call is None:
                    raise StepFailed(f"{where}: {spec.party} has no call to play into")
                sound = Sound(tone=spec.tone, prompt=spec.prompt, wav=spec.wav)
                samples = self._samples(sound)
                assert samples is not None
                if spec.seconds is not None:
                    samples = np.resize(samples, int(spec.seconds * RATE))
                call.media.play(samples)
            case HangupStep(hangup=name):
                call = self.parties[name].current
                if call is not None:
                    self.narrate(self.now(), f"{name} hangs up")
                    await call.hangup()
            case DtmfStep(dtmf=spec):
                call = self.parties[spec.party].current
                if call is None:
                    raise StepFailed(f"{where}: {spec.party} has no call for DTMF")
                call.send_dtmf(spec.digits)
            case _:
                raise StepFailed(f"{where}: unsupported step {step!r}")

    async def _place(self, party: PartyPhone, number: str) -> None:
        try:
            call_task = asyncio.ensure_future(party.phone.call(number))
            # The call object exists before the answer: record it as soon as the INVITE goes.
            await asyncio.sleep(0)
            call = await call_task
            if call not in party.calls:
                party.calls.append(call)
            self._start_sound(party, call)
        except CallFailed as exc:
            self.record.errors.append(f"{party.name} calling {number}: {exc.status} {exc.reason}")

    async def _wait_for(self, spec: Any, where: str) -> None:
        deadline = self.now() + spec.within
        while self.now() < deadline:
            if self._satisfied(spec):
                return
            self._event_arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._event_arrived.wait(), 0.05)
        raise StepFailed(f"{where}: waited {spec.within} s for {_describe_wait(spec)}")

    def _satisfied(self, spec: Any) -> bool:
        if spec.banner is not None:
            return bool(
                self._banner(spec.banner.agent, spec.banner.connection) == spec.banner.state
            )
        if spec.event is not None:
            return any(all(e.get(k) == v for k, v in spec.event.items()) for e in self._events)
        if spec.call is not None:
            party = self.parties[spec.call.party]
            wanted = spec.call.state
            calls = party.calls
            if wanted == "ringing":
                return party.ringing() is not None
            if wanted == "established":
                return any(c.state is CallState.ESTABLISHED for c in calls)
            return bool(calls) and all(c.state is CallState.ENDED for c in calls)
        return True

    async def _ccp(self, spec: Any, where: str) -> None:
        act = self.control.act
        agent = spec.agent
        action = spec.action
        self.narrate(
            self.now(), f"{agent} clicks {action}" + (f" {spec.name}" if spec.name else "")
        )
        try:
            if action == "setStatus":
                await act(agent, Command("setStatus", status=spec.status))
                return
            contact = spec.contact or await self._contact_of(agent, where)
            match action:
                case "accept":
                    await act(agent, Command("accept", contact=contact))
                    party = self.parties.get(agent)
                    ringing = party.ringing() if party is not None else None
                    if party is not None and party.answer in ("auto", "manual"):
                        if ringing is not None:
                            await self._answer(party, ringing)  # the softphone connects on accept
                        else:
                            self._accepted.add(agent)  # the INVITE is still on its way
                case "quickConnect":
                    await act(agent, Command(action, contact=contact, name=spec.name))
                case "reject" | "conference" | "holdAll" | "swap" | "leave":
                    await act(agent, Command(action, contact=contact))
                case "hold" | "resume" | "end":
                    connection = await self._connection_of(agent, contact, spec.connection, where)
                    await act(agent, Command(action, connection=connection))
        except CenterError as exc:
            raise StepFailed(f"{where}: {agent} {action}: {exc} ({exc.status})") from None

    async def _contact_of(self, agent: str, where: str) -> str:
        contacts = (await self.control.snapshot(agent))["contacts"]
        if len(contacts) != 1:
            raise StepFailed(f"{where}: {agent} has {len(contacts)} contacts; name one")
        return str(contacts[0]["id"])

    async def _connection_of(self, agent: str, contact: str, party: str | None, where: str) -> str:
        for c in (await self.control.snapshot(agent))["contacts"]:
            if c["id"] == contact:
                for conn in c["connections"]:
                    if conn["party"] == party:
                        return str(conn["id"])
        raise StepFailed(f"{where}: {agent} has no connection to {party}")

    # --- results ---

    async def _collect(self) -> None:
        end = self.now()
        for name, party in self.parties.items():
            timeline = np.zeros(int((end + 1) * RATE), dtype=np.int16)
            for call in party.calls:
                if call.media.started_at is None:
                    continue  # rejected or never answered: it heard nothing
                samples = call.heard()
                start = call.media.started_at - self._t0_loop
                first = max(0, int(round(start * RATE)))
                chunk = samples[: max(0, len(timeline) - first)]
                timeline[first : first + len(chunk)] = chunk
            heard = timeline.astype(np.float64) / 32768.0
            self.record.recordings[name] = Recording(name, heard, RATE, 0.0)
        self.record.ctrs = await self.control.contact_records()
        for event in self.control.backfill(self.record.ctrs):
            self.record.timeline.append(
                TimelineEvent.from_event_json(event, self.record.started_at)
            )

    async def _teardown(self) -> None:
        for party in self.parties.values():
            with contextlib.suppress(Exception):
                if self.control.shared:
                    await asyncio.wait_for(party.phone.register(expires=0), 2.0)
            with contextlib.suppress(Exception):
                await party.phone.stop()
        await self.control.stop()


def _describe_wait(spec: Any) -> str:
    if spec.banner is not None:
        b = spec.banner
        return f"{b.agent}'s banner for {b.connection} to read {b.state}"
    if spec.event is not None:
        return f"an event {spec.event}"
    return f"{spec.call.party}'s call to be {spec.call.state}"


async def run_scenarios(
    scenarios: list[Scenario], *, narrate: Narrator | None = None, data_dir: Path | None = None
) -> list[ScenarioResult]:
    results = []
    for scenario in scenarios:
        run_dir = None if data_dir is None else data_dir / slug(scenario.name)
        results.append(await ScenarioRunner(scenario, data_dir=run_dir, narrate=narrate).run())
    return results


def slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")[:60]
