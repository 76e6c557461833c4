"""Routing, sans-I/O: which Available agent is offered which queued contact.

The rule (Amazon Connect's, for one voice contact per agent):

- A waiting contact is offered to an agent who is Available, not on a
  contact, not already ringing, and whose routing profile takes its queue
  (after the profile's ``delay`` for that queue has passed).
- Among the possible (contact, agent) pairs the router picks, in order:
  an agent who has not yet declined this contact; the lower routing-profile
  ``priority``; the contact waiting longest; the agent idle longest.
- One offer per agent and per contact at a time. An offer rings for the
  instance's ``ring_timeout``.
- Reject or ring timeout: a queued contact stays queued and goes to the
  NEXT agent. The agent who declined it is only offered it again when no
  other agent can take it (so a lab with one agent rings that agent again
  rather than leaving the customer in queue music forever). The declines are
  forgotten once the contact leaves the queue.
- A direct offer (TransferContactToAgent) is not queued: it fails at once
  when the agent is Offline, on a contact or already ringing, and a reject or
  ring timeout is final (the contact model ends the transfer).

Like aioquic's connection, the router never reads the clock: every call
takes ``now`` (POSIX seconds); :meth:`get_timer` says when it next needs
:meth:`handle_timer`. Call :meth:`poll` after any change to make offers.
"""

from __future__ import annotations

import itertools
from collections import deque
from dataclasses import dataclass
from datetime import datetime

from flows.model import StaffingMetric
from telephony.center.agents import AgentState, AgentStatus
from telephony.center.config import InstanceConfig
from telephony.center.events import (
    CenterError,
    CenterEvent,
    ContactDequeued,
    ContactQueued,
    OfferAccepted,
    OfferCancelled,
    OfferCreated,
    OfferRejected,
    OfferTimedOut,
)
from telephony.center.queues import ContactQueues, QueuedContact, Staffing, is_open, staffing


@dataclass(frozen=True, slots=True)
class Offer:
    """A contact ringing one agent until ``expires``."""

    id: str
    contact: str
    agent: str
    queue: str | None  # None: a direct offer (TransferContactToAgent), not from a queue
    created: float
    expires: float

    @property
    def direct(self) -> bool:
        return self.queue is None


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a direct offer could not be made (TransferContactToAgent fails at once)."""

    agent: str
    reason: str


class Router:
    """Agents, queues and offers of one instance."""

    def __init__(
        self, config: InstanceConfig, *, now: float = 0.0, ring_timeout: float | None = None
    ) -> None:
        self._config = config
        self.ring_timeout = ring_timeout if ring_timeout is not None else config.ring_timeout
        self.agents: dict[str, AgentState] = {
            login: AgentState.from_config(config, login, now) for login in config.agents
        }
        self.queues = ContactQueues(config)
        self._offers: dict[str, Offer] = {}
        self._offer_of_contact: dict[str, str] = {}
        self._declined: dict[str, set[str]] = {}  # contact -> agents who rejected / missed it
        self._events: deque[CenterEvent] = deque()
        self._ids = itertools.count(1)
        self._now = now

    # -- events and time -------------------------------------------------------------------

    def next_event(self) -> CenterEvent | None:
        return self._events.popleft() if self._events else None

    def get_timer(self) -> float | None:
        """When :meth:`handle_timer` (ring timeouts) or :meth:`poll` (a routing delay
        ending) must run next, or None."""
        times = [offer.expires for offer in self._offers.values()]
        for entry in self.queues.waiting():
            if entry.contact in self._offer_of_contact:
                continue
            for agent in self.agents.values():
                if agent.routable and agent.takes(entry.queue):
                    ready = entry.enqueued_at + self._delay(agent, entry.queue)
                    if ready > self._now:
                        times.append(ready)
        return min(times) if times else None

    def handle_timer(self, now: float) -> list[Offer]:
        """Expire offers whose ring timeout passed; they are declined by that agent."""
        self._now = now
        expired = [o for o in self._offers.values() if o.expires <= now]
        for offer in sorted(expired, key=lambda o: (o.expires, o.id)):
            self._close(offer)
            self._declined.setdefault(offer.contact, set()).add(offer.agent)
            self._events.append(OfferTimedOut(offer.id, offer.contact, offer.agent, now))
        return expired

    # -- agents ----------------------------------------------------------------------------

    def agent(self, login: str) -> AgentState:
        try:
            return self.agents[login]
        except KeyError:
            raise CenterError(f"unknown agent {login!r}", status=404) from None

    def set_status(self, login: str, status: AgentStatus, now: float) -> None:
        self._now = now
        agent = self.agent(login)
        event = agent.set_status(status, now)
        if event is None:
            return
        self._events.append(event)
        if status is AgentStatus.OFFLINE and agent.offer is not None:
            self._cancel(self._offers[agent.offer], "agent went Offline", now)

    def agent_busy(self, login: str, contact: str, now: float) -> None:
        """The agent is on ``contact`` (outside routing too, e.g. an outbound call)."""
        self._now = now
        self.agent(login).mark_busy(contact)

    def agent_freed(self, login: str, now: float) -> None:
        """The agent's contact is over; they are idle from ``now``."""
        self._now = now
        self.agent(login).mark_free(now)

    # -- queues ----------------------------------------------------------------------------

    def enqueue(self, contact: str, queue: str, now: float) -> QueuedContact:
        self._now = now
        if contact in self._offer_of_contact:
            raise CenterError(f"contact {contact} is being offered to an agent")
        entry = self.queues.add(contact, queue, now)
        self._events.append(ContactQueued(contact, queue, now))
        return entry

    def dequeue(self, contact: str, now: float, reason: str = "removed") -> QueuedContact | None:
        """Take ``contact`` out of its queue (the customer hung up …); a pending offer is
        cancelled. Also cancels a direct offer of a contact that is not queued."""
        self._now = now
        offer_id = self._offer_of_contact.get(contact)
        if offer_id is not None:
            self._cancel(self._offers[offer_id], reason, now)
        entry = self.queues.remove(contact)
        self._declined.pop(contact, None)
        if entry is not None:
            self._events.append(ContactDequeued(contact, entry.queue, reason, now))
        return entry

    def staffing(self, queue: str) -> Staffing:
        if queue not in self._config.queues:
            raise CenterError(f"unknown queue {queue!r}", status=422)
        return staffing(self.agents.values(), queue)

    def staffing_metric(self, queue: str, metric: StaffingMetric) -> int:
        return self.staffing(queue).metric(metric)

    def is_open(self, queue: str, at: datetime) -> bool:
        return is_open(self._config, queue, at)

    # -- offers ----------------------------------------------------------------------------

    def offer(self, offer_id: str) -> Offer:
        try:
            return self._offers[offer_id]
        except KeyError:
            raise CenterError(f"no offer {offer_id!r} is pending", status=404) from None

    def offer_for_contact(self, contact: str) -> Offer | None:
        offer_id = self._offer_of_contact.get(contact)
        return self._offers[offer_id] if offer_id is not None else None

    def offer_for_agent(self, login: str) -> Offer | None:
        offer_id = self.agent(login).offer
        return self._offers[offer_id] if offer_id is not None else None

    def poll(self, now: float) -> list[Offer]:
        """Make every offer possible now (see the module rule); returns the new offers."""
        self._now = now
        made: list[Offer] = []
        while True:
            best: tuple[tuple[bool, int, float, int, float, str], QueuedContact, AgentState] | None
            best = None
            for entry in self.queues.waiting():
                if entry.contact in self._offer_of_contact:
                    continue
                declined = self._declined.get(entry.contact, set())
                for agent in self.agents.values():
                    if not (agent.routable and agent.takes(entry.queue)):
                        continue
                    if entry.waited(now) < self._delay(agent, entry.queue):
                        continue
                    key = (
                        agent.login in declined,
                        self._priority(agent, entry.queue),
                        entry.enqueued_at,
                        entry.seq,
                        agent.idle_since,
                        agent.login,
                    )
                    if best is None or key < best[0]:
                        best = (key, entry, agent)
            if best is None:
                return made
            _, entry, agent = best
            made.append(self._make_offer(entry.contact, agent, entry.queue, now))

    def offer_to_agent(self, contact: str, login: str, now: float) -> Offer | Refusal:
        """Offer ``contact`` to ``login`` directly (TransferContactToAgent). Fails at once,
        with the reason, when the agent is Offline, on a contact or already ringing."""
        self._now = now
        if login not in self.agents:
            return Refusal(login, f"unknown agent {login!r}")
        if contact in self._offer_of_contact or contact in self.queues:
            raise CenterError(f"contact {contact} is already being routed")
        agent = self.agents[login]
        if agent.status is AgentStatus.OFFLINE:
            return Refusal(login, f"{login} is Offline")
        if agent.busy:
            return Refusal(login, f"{login} is already on a contact")
        if agent.offer is not None:
            return Refusal(login, f"{login} is already being offered a contact")
        return self._make_offer(contact, agent, None, now)

    def accept(self, offer_id: str, now: float) -> Offer:
        """The agent answered: the contact leaves its queue and the agent is on it."""
        self._now = now
        offer = self.offer(offer_id)
        self._close(offer)
        self.agents[offer.agent].mark_busy(offer.contact)
        self._events.append(OfferAccepted(offer.id, offer.contact, offer.agent, now))
        entry = self.queues.remove(offer.contact)
        self._declined.pop(offer.contact, None)
        if entry is not None:
            self._events.append(ContactDequeued(offer.contact, entry.queue, "accepted", now))
        return offer

    def reject(self, offer_id: str, now: float) -> Offer:
        """The agent declined: a queued contact stays queued for the next agent."""
        self._now = now
        offer = self.offer(offer_id)
        self._close(offer)
        self._declined.setdefault(offer.contact, set()).add(offer.agent)
        self._events.append(OfferRejected(offer.id, offer.contact, offer.agent, now))
        return offer

    # -- internals -------------------------------------------------------------------------

    def _make_offer(self, contact: str, agent: AgentState, queue: str | None, now: float) -> Offer:
        offer = Offer(
            f"offer-{next(self._ids)}", contact, agent.login, queue, now, now + self.ring_timeout
        )
        self._offers[offer.id] = offer
        self._offer_of_contact[contact] = offer.id
        agent.offer = offer.id
        self._events.append(OfferCreated(offer.id, contact, agent.login, queue, offer.expires, now))
        return offer

    def _close(self, offer: Offer) -> None:
        del self._offers[offer.id]
        del self._offer_of_contact[offer.contact]
        self.agents[offer.agent].offer = None

    def _cancel(self, offer: Offer, reason: str, now: float) -> None:
        self._close(offer)
        self._events.append(OfferCancelled(offer.id, offer.contact, offer.agent, reason, now))

    def _entry(self, agent: AgentState, queue: str) -> tuple[int, float]:
        for item in self._config.routing_profiles[agent.routing_profile].queues:
            if item.queue == queue:
                return item.priority, item.delay
        return 1, 0.0

    def _priority(self, agent: AgentState, queue: str) -> int:
        return self._entry(agent, queue)[0]

    def _delay(self, agent: AgentState, queue: str) -> float:
        return self._entry(agent, queue)[1]
