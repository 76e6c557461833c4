"""The contact-center executor: the sans-I/O model and flows, run on real SIP legs and media.

`ContactModel` decides (banners, offers, who hears whom); `FlowRun` walks flows. This module
does what they ask, on the switch's legs and media engine, and tells them what happened:

- a customer dials a DID: their leg is answered and the number's inbound flow runs on it;
- an offer rings the agent's registered phone; answering it (or Accept in the CCP) accepts;
- on accept the agent whisper plays to the agent only, then the customer whisper to the
  other side only, then the model says Connected and the parties are bridged (seed order);
- a quick connect runs its transfer flow on the transferring agent's leg, or dials the
  number with the queue's outbound caller ID in From and P-Asserted-Identity;
- after every change the model's `audio_plan` is applied to the bridge: links are
  connected, held parties get their hold flow, nobody else hears anything.

Every flow block, prompt (what, to whom, start, end), banner and transfer goes to the contact
trace record as it happens and to the event listeners (API, WebSocket, MQTT).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flows.errors import FlowError, Problem
from flows.interpreter import (
    CheckHours,
    CheckStaffing,
    ContactData,
    Disconnect,
    End,
    FlowRun,
    HoldParticipant,
    LoopPrompts,
    PlayPrompt,
    Result,
    SetAttributes,
    SetEventHook,
    SetTargetQueue,
    TransferToAgent,
    TransferToQueue,
    substitute,
)
from flows.model import EventHook, Flow, Message
from flows.ssml import Pause, Speech, ssml_segments
from media.player import Clip, PlayItem, Silence, Tone
from media.sdp import SdpError
from media.tones import ToneSpec
from telephony.center.contact import ContactModel, ContactState
from telephony.center.ctr import CtrStore
from telephony.center.events import (
    BannerChanged,
    CenterError,
    CenterEvent,
    ContactEnded,
    ContactHandedOver,
    ContactQueued,
    OfferCancelled,
    OfferCreated,
    OfferRejected,
    OfferTimedOut,
    PartyDisconnected,
    QuickConnectStarted,
    TransferFailed,
    iso8601,
)
from telephony.sip.headers import NameAddr
from telephony.sip.message import Request
from telephony.sip.parser import parse_uri
from telephony.sip.uri import SipUri
from telephony.switch.endpoint import Incoming
from telephony.switch.leg import Leg, LegState, OutgoingLeg, build_invite, prepare_incoming
from telephony.switch.rtp_ports import PortsExhausted
from telephony.transport.base import Address

if TYPE_CHECKING:
    from telephony.switch.server import Switch

log = logging.getLogger("qconnect.center")

CUSTOMER = "customer"
# North American ringback (ANSI T1.401): 440 + 480 Hz, 2 s on, 4 s off.
RINGBACK = ToneSpec(frequencies=(440.0, 480.0), cadence=(2.0, 4.0), level_dbfs=-16.0)

Listener = Callable[[dict[str, Any]], None]


@dataclass(eq=False)
class Feed:
    """What a flow (or a tone) is playing to one party right now."""

    kind: str  # "flow:<name>", "queue", "hold:customer", "hold:agent", "ringback"
    task: asyncio.Task[Any]


@dataclass(eq=False)
class PartyLeg:
    party: str  # "customer", an agent login, an E.164 number
    leg: Leg
    feed: Feed | None = None
    contact: str | None = None  # the contact this leg was set up for (agent legs)
    connection: str | None = None  # the third-party connection this leg serves (numbers)
    whispering: bool = False  # the accept sequence (whispers, then Connected) has started

    @property
    def answered(self) -> bool:
        return self.leg.state is LegState.CONFIRMED


@dataclass(eq=False)
class CustomerCall:
    """Everything of one customer's call: the chain of contacts and every leg on it."""

    initial: str
    parties: dict[str, PartyLeg] = field(default_factory=dict)
    data: dict[str, ContactData] = field(default_factory=dict)  # per contact id
    links: set[frozenset[str]] = field(default_factory=set)
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)


class ContactCenter:
    def __init__(self, switch: Switch, data_dir: Path) -> None:
        self.switch = switch
        self.config = switch.config
        self.engine = switch.engine
        self.endpoint = switch.endpoint
        self.prompts = switch.prompts
        self.legs = switch.b2bua.legs_by_dialog
        self.model = ContactModel(self.config, now=time.time())
        self.ctr = CtrStore(data_dir / "ctr.sqlite3")
        self.calls: dict[str, CustomerCall] = {}
        self.listeners: list[Listener] = []
        self._timer: asyncio.TimerHandle | None = None
        self._prompt_ids = itertools.count(1)
        self._phone_held: dict[str, list[str]] = {}  # agent -> connections their phone held
        self._digits: dict[str, str] = {}  # agent -> feature code typed so far
        self._draining = False

    async def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        tasks = [task for call in self.calls.values() for task in call.tasks]
        for task in tasks:
            task.cancel()
        # Let flows finish their trace entries before the record store closes.
        await asyncio.gather(*tasks, return_exceptions=True)
        self.ctr.close()

    # --- what the API calls (each raises CenterError: 404/403/409/422) ---

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        self.listeners.append(listener)
        return lambda: self.listeners.remove(listener) if listener in self.listeners else None

    def snapshot(self, agent: str) -> dict[str, Any]:
        return self.model.snapshot(agent)

    def quick_connects(self, agent: str) -> list[dict[str, Any]]:
        out = []
        for name in self.model.quick_connects(agent):
            qc = self.config.quick_connects[name]
            out.append({"name": name, "type": qc.type})
        return out

    def set_status(self, agent: str, status: str) -> None:
        self._act(self.model.set_status, agent, status)

    def accept(self, agent: str, contact: str) -> None:
        self._act(self.model.accept, agent, contact)

    def reject(self, agent: str, contact: str) -> None:
        self._act(self.model.reject, agent, contact)

    def quick_connect(self, agent: str, contact: str, name: str) -> None:
        self._act(self.model.quick_connect, agent, contact, name)

    def conference(self, agent: str, contact: str) -> None:
        self._act(self.model.conference, agent, contact)

    def hold_all(self, agent: str, contact: str) -> None:
        self._act(self.model.hold_all, agent, contact)

    def swap(self, agent: str, contact: str) -> None:
        self._act(self.model.swap, agent, contact)

    def leave(self, agent: str, contact: str) -> None:
        self._act(self.model.leave, agent, contact)

    def hold(self, agent: str, connection: str) -> None:
        self._act(self.model.hold, agent, connection)

    def resume(self, agent: str, connection: str) -> None:
        self._act(self.model.resume, agent, connection)

    def end_connection(self, agent: str, connection: str) -> None:
        self._act(self.model.end_connection, agent, connection)

    def contact_record(self, contact: str) -> dict[str, Any]:
        self.model.contact(contact)  # 404 for a contact this switch never had
        return self.ctr.get(contact)

    def _try(self, action: Callable[..., Any], *args: Any) -> Any:
        """An action the executor takes on the phones' behalf: the model may say it is no
        longer valid (the caller hung up meanwhile); that is logged, not raised."""
        try:
            return self._act(action, *args)
        except CenterError as exc:
            log.info("%s%s not applied: %s", action.__name__, args, exc)
            return None

    def _act(self, action: Callable[..., Any], *args: Any) -> Any:
        try:
            return action(*args, time.time())
        finally:
            self._drain()

    # --- the first leg: a customer dials a DID ---

    def handles(self, number: str) -> bool:
        return number in self.config.phone_numbers

    async def inbound(self, incoming: Incoming, caller: str, number: str) -> None:
        prepared = await prepare_incoming(
            self.endpoint, self.engine, self.legs, incoming, CUSTOMER, f"{caller}-{number}"
        )
        if prepared is None:
            return
        leg, sdp = prepared
        leg.answer(sdp)
        contact = self.model.create_contact(time.time(), customer=CUSTOMER)
        call = CustomerCall(contact.id)
        self.calls[contact.id] = call
        call.parties[CUSTOMER] = PartyLeg(CUSTOMER, leg, contact=contact.id)
        call.data[contact.id] = ContactData(
            contact_id=contact.id,
            initiation_method="INBOUND",
            customer_address=caller,
            system_address=number,
        )
        leg.on_bye = functools.partial(self._customer_gone, call)
        self._record_leg(contact.id, CUSTOMER, leg)
        log.info("contact %s: %s called %s (%s)", contact.id, caller, number, leg.call_id)
        self._drain()
        flow = self.config.phone_numbers[number].flow
        self._feed(call, CUSTOMER, f"flow:{flow}", self._inbound_flow(call, contact.id, flow))

    async def _inbound_flow(self, call: CustomerCall, contact_id: str, flow_ref: str) -> None:
        outcome = await self._run_flow(call, contact_id, flow_ref, CUSTOMER)
        state = self.model.contact(contact_id).state
        if outcome in ("disconnect", "end", "error") and state is ContactState.ROUTING:
            # The inbound flow ended without putting the call anywhere: hang up, as Connect does.
            await self._hang_up(call, CUSTOMER, f"inbound flow {outcome}")
            self._act(self.model.customer_hung_up, contact_id)

    # --- running flows ---

    def _flow(self, ref: str) -> Flow:
        try:
            return self.config.flows.get(ref)
        except KeyError:
            # `qconnect check` resolves every reference at load; a hook set at run time by a
            # flow may still name something unknown.
            raise FlowError([Problem("<flows>", None, "flow", f"no flow named {ref!r}")]) from None

    def _hook_flow(self, data: ContactData, hook: EventHook) -> Flow:
        ref = data.event_hooks.get(hook)
        if ref is not None:
            with contextlib.suppress(KeyError):
                return self.config.flows.get(ref)
        return self.config.flows.default_for(hook)

    async def _run_flow(
        self, call: CustomerCall, contact_id: str, flow: str | Flow, party: str
    ) -> str:
        """Run a flow whose prompts go to `party`; returns how it ended: "queued", "offered",
        "disconnect", "end" or "error"."""
        data = call.data[contact_id]
        try:
            flow_obj = self._flow(flow) if isinstance(flow, str) else flow
        except (FlowError, KeyError) as exc:
            log.error("contact %s: flow %s cannot run: %s", contact_id, flow, exc)
            return "error"
        run = FlowRun(
            flow_obj,
            self.config.flows,
            data,
            participant=party,
            queues=self.config.queue_named,
            agents=self.config.agent_named,
        )
        log.info("contact %s: flow %r runs for %s", contact_id, flow_obj.name, party)
        while True:
            try:
                action = run.next_action()
            except FlowError as exc:
                log.error("contact %s: flow %r failed: %s", contact_id, flow_obj.name, exc)
                self._trace(contact_id, run)
                return "error"
            self._trace(contact_id, run)
            match action:
                case None | End():
                    return "end"
                case Disconnect():
                    return "disconnect"
                case PlayPrompt(message=message, to=to):
                    ok = await self._play_message(call, contact_id, to, message, data)
                    run.resume(Result.SUCCESS if ok else Result.error("NoMatchingError"))
                case LoopPrompts(messages=messages, to=to, interrupt_seconds=seconds):
                    items: list[PlayItem] = []
                    for message in messages:
                        items.extend(await self._items(message, data))
                    await self._play(
                        call, contact_id, to, items, _label(messages), loop=True, limit=seconds
                    )
                    run.resume(Result.condition("MessagesInterrupted"))
                case SetEventHook() | SetTargetQueue() | SetAttributes() | HoldParticipant():
                    run.resume(Result.SUCCESS)
                case CheckHours(queue=queue):
                    is_open = queue is None or self.model.router.is_open(queue, datetime.now(UTC))
                    run.resume(Result.condition(is_open))
                case CheckStaffing(queue=queue, metric=metric):
                    count = 0 if queue is None else self.model.router.staffing_metric(queue, metric)
                    run.resume(Result.condition(count))
                case TransferToQueue(queue=queue):
                    if queue is None:
                        run.resume(Result.error("NoMatchingError"))
                        continue
                    try:
                        self._act(self.model.enqueue, contact_id, queue)
                    except CenterError as exc:
                        log.warning("contact %s: cannot queue in %s: %s", contact_id, queue, exc)
                        run.resume(Result.error("QueueAtCapacity"))
                        continue
                    return "queued"
                case TransferToAgent(agent=agent):
                    if agent is None:
                        run.resume(Result.error("NoMatchingError"))
                        continue
                    result = self._act(self.model.transfer_to_agent, contact_id, agent)
                    if hasattr(result, "reason"):
                        log.info("contact %s: %s refused: %s", contact_id, agent, result.reason)
                        run.resume(Result.error("NoMatchingError"))
                        continue
                    return "offered"
                case _:
                    run.resume(Result.error("NoMatchingError"))

    def _trace(self, contact_id: str, run: FlowRun) -> None:
        now = time.time()
        for block in run.drain_trace():
            self.ctr.record(
                contact_id,
                "flowBlock",
                now,
                flow=block.flow,
                block=block.identifier,
                blockType=block.type,
                outcome=block.outcome,
            )
            self._publish(
                {
                    "type": "flowBlock",
                    "contact": contact_id,
                    "flow": block.flow,
                    "block": block.identifier,
                    "blockType": block.type,
                    "outcome": block.outcome,
                    "at": iso8601(now),
                }
            )

    async def _items(self, message: Message, data: ContactData) -> list[PlayItem]:
        loop = asyncio.get_running_loop()
        if message.text is not None:
            text = substitute(message.text, data).strip()
            if not text:
                return []
            return [Clip(await loop.run_in_executor(None, self.prompts.text, text))]
        if message.prompt is not None:
            ref = substitute(message.prompt, data)
            return [Clip(self.prompts.named(ref))]
        items: list[PlayItem] = []
        for segment in ssml_segments(substitute(message.ssml or "", data)):
            if isinstance(segment, Speech) and segment.text.strip():
                path = await loop.run_in_executor(None, self.prompts.text, segment.text)
                items.append(Clip(path))
            elif isinstance(segment, Pause) and segment.seconds > 0:
                items.append(Silence(segment.seconds))
        return items

    async def _play_message(
        self, call: CustomerCall, contact_id: str, party: str, message: Message, data: ContactData
    ) -> bool:
        try:
            items = await self._items(message, data)
        except Exception as exc:  # a missing prompt or a failing synthesiser: the error branch
            log.error("contact %s: prompt %r unavailable: %s", contact_id, message.value, exc)
            return False
        if items:
            await self._play(call, contact_id, party, items, _label((message,)))
        return True

    async def _play(
        self,
        call: CustomerCall,
        contact_id: str,
        party: str,
        items: list[PlayItem],
        label: str,
        *,
        loop: bool = False,
        limit: float | None = None,
    ) -> None:
        """Play to one party only and wait for the end (or `limit` seconds of a loop)."""
        target = call.parties.get(party)
        if target is None or target.leg.state is LegState.ENDED or not items:
            return
        playback = self.engine.play(target.leg.media, *items, loop=loop, label=label)
        prompt_id = f"p{next(self._prompt_ids)}"
        started = time.time()
        self.ctr.record(
            contact_id,
            "prompt",
            started,
            what=label,
            to=party,
            start=iso8601(started),
            id=prompt_id,
        )
        self._publish(
            {
                "type": "promptStarted",
                "contact": contact_id,
                "prompt": prompt_id,
                "what": label,
                "to": party,
                "at": iso8601(started),
            }
        )
        try:
            if limit is None and not loop:
                await asyncio.shield(playback.done)
            elif limit is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(playback.done), limit)
            else:
                await asyncio.shield(playback.done)
        finally:
            playback.stop()
            ended = time.time()
            self.ctr.record(contact_id, "promptEnd", ended, id=prompt_id, end=iso8601(ended))
            self._publish(
                {
                    "type": "promptEnded",
                    "contact": contact_id,
                    "prompt": prompt_id,
                    "what": label,
                    "to": party,
                    "at": iso8601(ended),
                }
            )

    # --- feeds: at most one flow or tone plays to a party at a time ---

    def _feed(self, call: CustomerCall, party: str, kind: str, coro: Any) -> None:
        target = call.parties.get(party)
        if target is None:
            coro.close()
            return
        self._stop_feed(target)
        task = asyncio.get_running_loop().create_task(coro)
        target.feed = Feed(kind, task)
        call.tasks.add(task)

        def done(t: asyncio.Task[Any]) -> None:
            call.tasks.discard(t)
            if target.feed is not None and target.feed.task is t:
                target.feed = None
            if not t.cancelled() and t.exception() is not None:
                log.error("feed %s to %s failed", kind, party, exc_info=t.exception())

        task.add_done_callback(done)

    def _stop_feed(self, target: PartyLeg) -> None:
        if target.feed is not None:
            target.feed.task.cancel()
            target.feed = None

    # --- reacting to the model ---

    def _drain(self) -> None:
        if self._draining:
            return  # an action taken while reacting: the outer loop picks its events up
        self._draining = True
        touched: set[str] = set()
        try:
            while (event := self.model.next_event()) is not None:
                self.ctr.record_event(event)
                self._publish(event.to_json())
                contact = getattr(event, "contact", None)
                if contact is not None:
                    call = self._call_of(contact)
                    if call is not None:
                        touched.add(call.initial)
                try:
                    self._react(event)
                except Exception:
                    log.exception("reacting to %s", event)
        finally:
            self._draining = False
        for initial in touched:
            call = self.calls.get(initial)
            if call is not None:
                self._apply_audio(call)
        self._arm_timer()

    def _arm_timer(self) -> None:
        deadline = self.model.get_timer()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if deadline is not None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(max(0.0, deadline - time.time()), self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._act(self.model.handle_timer)

    def _call_of(self, contact_id: str) -> CustomerCall | None:
        try:
            initial = self.model.contact(contact_id).initial_contact_id
        except CenterError:
            return None
        return self.calls.get(initial)

    def _react(self, event: CenterEvent) -> None:
        match event:
            case ContactQueued(contact=contact):
                self._queued(contact)
            case OfferCreated(contact=contact, agent=agent):
                self._spawn(contact, self._ring_agent(contact, agent))
            case (
                OfferRejected(contact=contact, agent=agent)
                | OfferTimedOut(contact=contact, agent=agent)
                | OfferCancelled(contact=contact, agent=agent)
            ):
                self._stop_ringing(contact, agent)
            case BannerChanged(
                contact=contact, agent=agent, banner="Connecting", previous="Incoming"
            ):
                if agent is not None:
                    self._accepted(contact, agent)
            case QuickConnectStarted():
                self._quick_connect(event)
            case TransferFailed(contact=contact, party=party, reason=reason):
                self._transfer_failed(contact, party, reason)
            case ContactHandedOver(contact=contact, agent=agent):
                self._drop_party(contact, agent, "left the call")
            case PartyDisconnected(contact=contact, party=party, reason=reason):
                self._drop_party(contact, party, reason)
            case ContactEnded(contact=contact):
                self._contact_ended(contact)
            case _:
                pass

    def _spawn(self, contact: str, coro: Any) -> None:
        call = self._call_of(contact)
        task = asyncio.get_running_loop().create_task(coro)
        if call is not None:
            call.tasks.add(task)
            task.add_done_callback(call.tasks.discard)
        task.add_done_callback(_log_failure)

    # --- queues and offers ---

    def _caller_side(self, contact_id: str) -> str:
        """Who the contact's agent talks to: the customer, or for a transfer the agent who
        transferred while they are still on (Amazon Connect: whispers go to that side)."""
        contact = self.model.contact(contact_id)
        if contact.previous_contact_id is not None:
            previous = self.model.contact(contact.previous_contact_id)
            if previous.agent is not None and previous.state is ContactState.ACTIVE:
                return previous.agent
        return contact.customer

    def _queued(self, contact_id: str) -> None:
        call = self._call_of(contact_id)
        if call is None:
            return
        data = call.data[contact_id]
        contact = self.model.contact(contact_id)
        queue = contact.queue
        party = self._caller_side(contact_id)
        ref = data.event_hooks.get(EventHook.CUSTOMER_QUEUE)
        if ref is None and queue is not None:
            ref = self.config.queues[queue].customer_queue_flow
        flow = self._flow(ref) if ref else self.config.flows.default_for(EventHook.CUSTOMER_QUEUE)
        self._feed(call, party, "queue", self._run_flow(call, contact_id, flow, party))

    async def _ring_agent(self, contact_id: str, agent: str) -> None:
        call = self._call_of(contact_id)
        if call is None:
            return
        bindings = self.switch.registrar.lookup(agent, self.endpoint.now())
        if not bindings:
            # Like a phone that does not answer: the offer runs into the ring timeout and
            # goes to the next agent (rejecting at once would re-offer in a tight loop when
            # this agent is the only one of the queue).
            log.warning(
                "contact %s: %s is Available but has no registered phone; the offer will time out",
                contact_id,
                agent,
            )
            return
        binding = bindings[0]
        try:
            media = await self.engine.open_leg(f"{agent}-{contact_id[:8]}")
        except PortsExhausted:
            self._try(self.model.reject, agent, contact_id)
            return
        leg = OutgoingLeg(self.endpoint, media, agent, Address(*binding.source))
        contact = self.model.contact(contact_id)
        party = PartyLeg(agent, leg, contact=contact_id)
        old = call.parties.get(agent)
        if old is not None and old.leg.state is not LegState.ENDED:
            await old.leg.hangup("replaced")
        call.parties[agent] = party
        leg.on_bye = functools.partial(self._agent_gone, call, agent)
        leg.on_reinvite = functools.partial(self._agent_reinvite, agent)
        media.on_digit = functools.partial(self._agent_digit, agent)
        display = f"{contact.queue or 'Transfer'}: {call.data[call.initial].customer_address or 'customer'}"
        invite = build_invite(
            self.endpoint,
            binding.contact.uri,
            binding.source[0],
            from_=NameAddr(
                uri=SipUri(user=CUSTOMER, host=self.endpoint.advertise),
                display_name=display,
                params=(("tag", self.endpoint.new_tag()),),
            ),
            to=NameAddr(uri=SipUri(user=agent, host=self.endpoint.advertise)),
            sdp=media.offer(),
        )
        log.info("contact %s: ringing %s at %s", contact_id, agent, binding.source)
        response = await leg.call(invite)
        if not response.is_success:
            if leg.end_reason.startswith("cancel") or self._offer_gone(contact_id, agent):
                return
            log.info("contact %s: %s's phone answered %d", contact_id, agent, response.status)
            self._try(self.model.reject, agent, contact_id)
            return
        assert leg.dialog is not None
        self.legs[(leg.call_id, leg.dialog.local_tag)] = leg
        try:
            media.apply_answer(response.body)
        except (SdpError, ValueError) as exc:
            log.warning("contact %s: %s's SDP unusable: %s", contact_id, agent, exc)
        self._record_leg(contact_id, agent, leg)
        contact = self.model.contact(contact_id)
        if contact.state is ContactState.OFFERED:
            self._try(self.model.accept, agent, contact_id)  # answering the phone accepts
        elif contact.state is ContactState.ACTIVE and contact.agent == agent:
            self._accepted(contact_id, agent)  # accepted in the CCP first; now audio can flow
        else:
            await leg.hangup("offer gone")

    def _offer_gone(self, contact_id: str, agent: str) -> bool:
        offer = self.model.router.offer_for_contact(contact_id)
        return offer is None or offer.agent != agent

    def _stop_ringing(self, contact_id: str, agent: str) -> None:
        call = self._call_of(contact_id)
        if call is None:
            return
        party = call.parties.get(agent)
        if party is not None and party.contact == contact_id and not party.answered:
            self._spawn(contact_id, party.leg.hangup("cancelled: offer ended"))

    def _accepted(self, contact_id: str, agent: str) -> None:
        """Accepted (CCP or phone). Once the phone is answered: whispers, then Connected."""
        call = self._call_of(contact_id)
        if call is None:
            return
        party = call.parties.get(agent)
        if party is None or not party.answered or party.contact != contact_id:
            # The phone still rings: `_ring_agent` comes back here when it answers. If it
            # never does, the agent is gone (as if they hung up) after the ring timeout.
            asyncio.get_running_loop().call_later(
                self.config.ring_timeout, self._accepted_but_silent, contact_id, agent
            )
            return
        if party.whispering:
            return
        party.whispering = True
        self._feed(call, agent, "whisper", self._whispers(call, contact_id, agent))

    def _accepted_but_silent(self, contact_id: str, agent: str) -> None:
        call = self._call_of(contact_id)
        party = call.parties.get(agent) if call is not None else None
        contact = self.model.contact(contact_id)
        if party is None or party.answered or party.contact != contact_id:
            return
        if contact.state is not ContactState.ACTIVE or contact.agent != agent:
            return
        log.warning("contact %s: %s accepted but the phone never answered", contact_id, agent)
        self._spawn(contact_id, party.leg.hangup("accepted but not answered"))
        self._try(self.model.agent_hung_up, agent)

    async def _whispers(self, call: CustomerCall, contact_id: str, agent: str) -> None:
        data = call.data[contact_id]
        contact = self.model.contact(contact_id)
        data.agent = agent
        data.queue = contact.queue
        caller_side = self._caller_side(contact_id)
        side = call.parties.get(caller_side)
        if side is not None and side.feed is not None and side.feed.kind == "queue":
            self._stop_feed(side)  # queue music ends when an agent takes the contact
        # Seed steps 6-7: agent whisper to the agent only, then customer whisper to the
        # other side only; nobody is bridged yet (the model's audio plan has no link).
        await self._run_flow(
            call, contact_id, self._hook_flow(data, EventHook.AGENT_WHISPER), agent
        )
        side_flow = self._hook_flow(data, EventHook.CUSTOMER_WHISPER)
        await self._run_flow(call, contact_id, side_flow, caller_side)
        self._try(self.model.connected, contact_id)

    # --- quick connects ---

    def _quick_connect(self, event: QuickConnectStarted) -> None:
        call = self._call_of(event.contact)
        if call is None:
            return
        previous = call.data[event.contact]
        if event.transfer_contact is not None:
            transfer = self.model.contact(event.transfer_contact)
            call.data[transfer.id] = ContactData(
                contact_id=transfer.id,
                initiation_method=transfer.initiation,
                customer_address=previous.customer_address,
                system_address=previous.system_address,
                queue=transfer.queue,
                target_agent=event.target if event.quick_connect_type == "user" else None,
                attributes=dict(previous.attributes),
            )
            assert event.flow is not None
            self._feed(
                call,
                event.agent,
                f"flow:{event.flow}",
                self._transfer_flow(call, transfer.id, event.flow, event.agent),
            )
        else:
            self._feed(
                call, event.agent, "ringback", self._ringback(call, event.contact, event.agent)
            )
            self._spawn(event.contact, self._dial_number(call, event))

    async def _transfer_flow(
        self, call: CustomerCall, contact_id: str, flow: str, agent: str
    ) -> None:
        outcome = await self._run_flow(call, contact_id, flow, agent)
        if outcome in ("disconnect", "end", "error"):
            contact = self.model.contact(contact_id)
            if contact.state in (ContactState.ROUTING, ContactState.QUEUED, ContactState.OFFERED):
                self._try(self.model.abandon_transfer, contact_id, f"transfer flow {outcome}")

    async def _ringback(self, call: CustomerCall, contact_id: str, agent: str) -> None:
        await self._play(call, contact_id, agent, [Tone(RINGBACK, None)], "ringback", loop=True)

    async def _dial_number(self, call: CustomerCall, event: QuickConnectStarted) -> None:
        number = event.target
        target = self.config.dial_plan.get(number)
        destination: tuple[SipUri, Address] | None = None
        if target is not None and target.user is not None:
            bindings = self.switch.registrar.lookup(target.user, self.endpoint.now())
            if bindings:
                b = bindings[0]
                uri = b.contact.uri
                assert isinstance(uri, SipUri)
                destination = (uri, Address(*b.source))
        elif target is not None and target.uri is not None:
            uri = parse_uri(target.uri)
            assert isinstance(uri, SipUri)
            destination = (uri, Address(uri.transport, uri.host, uri.port or 5060))
        if destination is None:
            reason = "404 Not Found" if target is None else "480 Temporarily Unavailable"
            self._try(self.model.third_party_failed, event.connection, reason)
            return
        uri, address = destination
        try:
            media = await self.engine.open_leg(f"{number}-{event.contact[:8]}")
        except PortsExhausted:
            self._try(self.model.third_party_failed, event.connection, "503 No RTP ports free")
            return
        leg = OutgoingLeg(self.endpoint, media, number, address)
        party = PartyLeg(number, leg, contact=event.contact, connection=event.connection)
        call.parties[number] = party
        leg.on_bye = functools.partial(self._number_gone, call, number)
        # Seed scenario 3: the queue's outbound caller ID, in From and P-Asserted-Identity.
        caller = NameAddr(
            uri=SipUri(user=event.caller_id_number or "anonymous", host=self.endpoint.advertise),
            display_name=event.caller_id_name,
        )
        invite = build_invite(
            self.endpoint,
            uri,
            address.transport,
            from_=caller.with_params(tag=self.endpoint.new_tag()),
            to=NameAddr(uri=SipUri(user=number, host=self.endpoint.advertise)),
            sdp=media.offer(),
            extra=(("P-Asserted-Identity", str(caller)),),
        )
        log.info("contact %s: dialling %s as %s", event.contact, number, caller)
        response = await leg.call(invite)
        agent_leg = call.parties.get(event.agent)
        if (
            agent_leg is not None
            and agent_leg.feed is not None
            and agent_leg.feed.kind == "ringback"
        ):
            self._stop_feed(agent_leg)
        if not response.is_success:
            self._try(
                self.model.third_party_failed,
                event.connection,
                f"{response.status} {response.reason}",
            )
            return
        assert leg.dialog is not None
        self.legs[(leg.call_id, leg.dialog.local_tag)] = leg
        try:
            media.apply_answer(response.body)
        except (SdpError, ValueError) as exc:
            log.warning("contact %s: %s's SDP unusable: %s", event.contact, number, exc)
        self._record_leg(event.contact, number, leg)
        self._try(self.model.third_party_answered, event.connection)

    def _transfer_failed(self, contact_id: str, party: str, reason: str) -> None:
        log.info("contact %s: transfer to %s failed: %s", contact_id, party, reason)
        call = self._call_of(contact_id)
        if call is None:
            return
        target = call.parties.get(party)
        if (
            target is not None
            and target.contact != call.initial
            and target.leg.state is not LegState.ENDED
        ):
            # Only the leg set up for this transfer goes; an agent already on the call stays.
            owner = self.model.contact(target.contact) if target.contact else None
            if owner is None or owner.state in (
                ContactState.ENDED,
                ContactState.OFFERED,
                ContactState.ROUTING,
                ContactState.QUEUED,
            ):
                self._spawn(contact_id, target.leg.hangup(f"transfer failed: {reason}"))

    # --- parties leaving ---

    def _drop_party(self, contact_id: str, party: str, reason: str) -> None:
        call = self._call_of(contact_id)
        if call is None:
            return
        target = call.parties.get(party)
        if target is not None and target.leg.state is not LegState.ENDED:
            log.info("contact %s: %s leaves (%s)", contact_id, party, reason)
            self._stop_feed(target)
            self._spawn(contact_id, target.leg.hangup(reason))

    def _contact_ended(self, contact_id: str) -> None:
        call = self._call_of(contact_id)
        if call is None:
            return
        contacts = self.model.chain(call.initial)
        if all(c.state is ContactState.ENDED for c in contacts):
            log.info("call of contact %s is over", call.initial)
            for party in call.parties.values():
                self._stop_feed(party)
                if party.leg.state is not LegState.ENDED:
                    self._spawn(contact_id, party.leg.hangup("contact ended"))
            self.calls.pop(call.initial, None)

    def _customer_gone(self, call: CustomerCall, leg: Leg) -> None:
        self._try(self.model.customer_hung_up, call.initial)

    def _agent_gone(self, call: CustomerCall, agent: str, leg: Leg) -> None:
        party = call.parties.get(agent)
        if party is None or party.leg is not leg:
            return
        self._try(self.model.agent_hung_up, agent)

    def _number_gone(self, call: CustomerCall, number: str, leg: Leg) -> None:
        party = call.parties.get(number)
        if party is None or party.leg is not leg or party.connection is None:
            return
        self._try(self.model.third_party_hung_up, party.connection)

    # --- the agent's own phone: hold button and DTMF feature codes (issue 5 item 6) ---

    def _agent_contact(self, agent: str) -> str | None:
        contacts = self.model.contacts_of(agent)
        return contacts[-1].id if contacts else None

    def _agent_reinvite(self, agent: str, leg: Leg, request: Request) -> Any:
        """The agent's hold button is Hold in the CCP: sendonly/inactive holds whoever the
        agent is talking to; sendrecv resumes what the phone held."""
        response = leg.answer_offer(request)
        if not response.is_success:
            return response
        contact_id = self._agent_contact(agent)
        if contact_id is None:
            return response
        contact = self.model.contact(contact_id)
        if leg.media.on_hold_by_phone:
            held = [
                c.id
                for c in contact.connections.values()
                if c.banner.value in ("Connected", "Joined")
            ]
            self._phone_held[agent] = held
            for connection in held:
                self._try(self.model.hold, agent, connection)
        else:
            for connection in self._phone_held.pop(agent, []):
                self._try(self.model.resume, agent, connection)
        return response

    def _agent_digit(self, agent: str, digit: Any) -> None:
        codes = self.config.feature_codes
        typed = self._digits.get(agent, "") + digit.digit
        self._digits[agent] = typed
        contact_id = self._agent_contact(agent)
        actions = {
            codes.abort: "abort",
            codes.complete: "leave",
            codes.threeway: "conference",
            codes.swap: "swap",
        }
        if typed.startswith(codes.quick_connect):
            rest = typed[len(codes.quick_connect) :]
            if not rest:
                return
            self._digits[agent] = ""
            names = self.model.quick_connects(agent)
            if contact_id is None or not rest.isdigit() or not 1 <= int(rest) <= len(names):
                log.info("%s typed %s: no such quick connect", agent, typed)
                return
            log.info("%s typed %s: quick connect %s", agent, typed, names[int(rest) - 1])
            self._try(self.model.quick_connect, agent, contact_id, names[int(rest) - 1])
            return
        action = actions.get(typed)
        if action is None:
            if not any(code.startswith(typed) for code in [*actions, codes.quick_connect]):
                self._digits[agent] = digit.digit if digit.digit == "*" else ""
            return
        self._digits[agent] = ""
        if contact_id is None:
            return
        log.info("%s typed %s: %s", agent, typed, action)
        if action == "abort":
            third = self.model.contact(contact_id).third_party
            if third is not None:
                self._try(self.model.end_connection, agent, third.id)
            return
        self._try(
            getattr(
                self.model, {"leave": "leave", "conference": "conference", "swap": "swap"}[action]
            ),
            agent,
            contact_id,
        )

    async def _hang_up(self, call: CustomerCall, party: str, reason: str) -> None:
        target = call.parties.get(party)
        if target is not None:
            await target.leg.hangup(reason)

    # --- who hears whom ---

    def _apply_audio(self, call: CustomerCall) -> None:
        try:
            plan = self.model.audio_plan(call.initial)
        except (CenterError, KeyError):
            return
        answered = {p for p, leg in call.parties.items() if leg.answered}
        desired = {link for link in plan.links if link <= answered}
        for link in call.links - desired:
            a, b = tuple(link)
            if a in call.parties and b in call.parties:
                self.engine.disconnect(call.parties[a].leg.media, call.parties[b].leg.media)
        for link in desired - call.links:
            a, b = tuple(link)
            self.engine.connect(call.parties[a].leg.media, call.parties[b].leg.media)
        call.links = desired
        holder = self.model.customer_contact(call.initial)
        data = call.data.get(holder.id) or call.data[call.initial]
        for name, party in call.parties.items():
            hold = plan.on_hold.get(name)
            kind = f"hold:{hold}" if hold else None
            current = party.feed.kind if party.feed is not None else None
            if kind is not None and current != kind and party.answered:
                hook = EventHook.CUSTOMER_HOLD if hold == "customer" else EventHook.AGENT_HOLD
                flow = self._hook_flow(data, hook)
                self._feed(call, name, kind, self._run_flow(call, holder.id, flow, name))
            elif kind is None and current is not None and current.startswith("hold:"):
                self._stop_feed(party)

    # --- records and events ---

    def _record_leg(self, contact_id: str, party: str, leg: Leg) -> None:
        path = leg.media.recording
        if path is not None:
            self.ctr.record(
                contact_id, "recording", time.time(), leg=leg.name, party=party, path=str(path)
            )

    def _publish(self, event: dict[str, Any]) -> None:
        for listener in list(self.listeners):
            try:
                listener(event)
            except Exception:
                log.exception("event listener failed")


def _label(messages: tuple[Message, ...]) -> str:
    """What a person reads in a timeline: SSML without its tags, pauses as "(10 s)"."""
    parts = []
    for message in messages:
        if message.ssml is not None:
            try:
                segments = ssml_segments(message.ssml)
            except Exception:
                parts.append(message.value)
                continue
            text = " ".join(
                s.text.strip() if isinstance(s, Speech) else f"({s.seconds:g} s)" for s in segments
            )
            parts.append(text.strip())
        else:
            parts.append(message.value)
    return " + ".join(parts)


def _log_failure(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("contact task failed", exc_info=task.exception())
