"""The CCP state model, sans-I/O: contacts, connections, banners.

A **contact** belongs to one agent (Amazon Connect: every transfer makes a
new contact, linked by ``previous_contact_id``/``initial_contact_id``). Its
**connections** are what that agent's CCP lists:

- the *initial connection*, party ``customer``: the agent's own link to the
  contact. Its banner walks ``Incoming`` (ringing; accept/reject) →
  ``Connecting`` (accepted, whispers playing) → ``Connected``. On a
  transferred contact (Maria's) the party is still the contact's customer,
  as in Amazon Connect's CCP, although while the transferring agent stays on
  it is that agent Maria talks to;
- at most one *third-party connection*, added by a quick connect: an agent
  login, a queue name (until an agent takes it) or an E.164 number.

Banners change only through :data:`TRANSITIONS` (STYLE.md, the h11 shape):
one lookup, and an illegal step raises :class:`CenterError` (HTTP 409).
Contact-level actions (conference, hold all, swap, leave, quick connect)
are allowed exactly when :meth:`ContactModel.available_actions` lists them.

The model does no I/O and reads no clock: each call takes ``now`` (POSIX
seconds) and the executor drains :meth:`ContactModel.next_event` to ring
phones, play flows and re-bridge media. It owns a :class:`Router` and keeps
agents busy/free in step with their contacts.

Who hears whom follows from the banners of the *customer's* contact
(:meth:`ContactModel.customer_contact`): the agent hears a ``Connected``
party; ``Joined`` parties all hear each other; an ``On hold`` party hears
its hold flow (customer hold for the customer and phone numbers, agent hold
for an agent). After the agent leaves, the customer and the third party are
bridged (:class:`ContactHandedOver`).
"""

from __future__ import annotations

import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from typing import Any

from telephony.center.agents import AgentStatus, parse_status
from telephony.center.config import (
    InstanceConfig,
    PhoneNumberQuickConnect,
    QueueQuickConnect,
    UserQuickConnect,
)
from telephony.center.events import (
    AgentAction,
    BannerChanged,
    CenterError,
    CenterEvent,
    ConnectionAdded,
    ContactCreated,
    ContactEnded,
    ContactHandedOver,
    OfferCancelled,
    OfferCreated,
    OfferRejected,
    OfferTimedOut,
    PartyDisconnected,
    QuickConnectStarted,
    TransferFailed,
)
from telephony.center.routing import Offer, Refusal, Router


class Banner(StrEnum):
    """What the agent's CCP shows on a connection (ARCHITECTURE.md)."""

    INCOMING = "Incoming"
    CONNECTING = "Connecting"
    CONNECTED = "Connected"
    ON_HOLD = "On hold"
    JOINED = "Joined"
    ENDED = "Ended"


class ConnectionState(Enum):
    """A connection's state; several states may show the same banner."""

    INCOMING = "incoming"  # offered to the agent, ringing
    CONNECTING = "connecting"  # accepted and whispering; or a queue/phone quick connect pending
    TRANSFERRING = "transferring"  # agent quick connect running: banner Connected (seed step 1)
    CONNECTED = "connected"
    ON_HOLD = "on_hold"
    JOINED = "joined"
    ENDED = "ended"

    @property
    def banner(self) -> Banner:
        return _BANNERS[self]


_BANNERS: Mapping[ConnectionState, Banner] = {
    ConnectionState.INCOMING: Banner.INCOMING,
    ConnectionState.CONNECTING: Banner.CONNECTING,
    ConnectionState.TRANSFERRING: Banner.CONNECTED,
    ConnectionState.CONNECTED: Banner.CONNECTED,
    ConnectionState.ON_HOLD: Banner.ON_HOLD,
    ConnectionState.JOINED: Banner.JOINED,
    ConnectionState.ENDED: Banner.ENDED,
}


class Step(StrEnum):
    ACCEPT = "accept"
    CONNECT = "connect"
    HOLD = "hold"
    RESUME = "resume"
    JOIN = "join"
    UNJOIN = "unjoin"  # the conference broke up around this connection
    END = "end"


_S = ConnectionState
TRANSITIONS: Mapping[ConnectionState, Mapping[Step, ConnectionState]] = {
    _S.INCOMING: {Step.ACCEPT: _S.CONNECTING, Step.END: _S.ENDED},
    _S.CONNECTING: {Step.CONNECT: _S.CONNECTED, Step.END: _S.ENDED},
    _S.TRANSFERRING: {Step.CONNECT: _S.CONNECTED, Step.END: _S.ENDED},
    _S.CONNECTED: {Step.HOLD: _S.ON_HOLD, Step.JOIN: _S.JOINED, Step.END: _S.ENDED},
    _S.ON_HOLD: {Step.RESUME: _S.CONNECTED, Step.JOIN: _S.JOINED, Step.END: _S.ENDED},
    _S.JOINED: {Step.HOLD: _S.ON_HOLD, Step.UNJOIN: _S.CONNECTED, Step.END: _S.ENDED},
    _S.ENDED: {},
}

ANSWERED = frozenset({_S.CONNECTED, _S.ON_HOLD, _S.JOINED})
PENDING = frozenset({_S.CONNECTING, _S.TRANSFERRING})


class PartyKind(StrEnum):
    CUSTOMER = "customer"
    AGENT = "agent"
    QUEUE = "queue"
    PHONE = "phone_number"


class ContactState(StrEnum):
    ROUTING = "routing"  # in a flow (inbound IVR, a transfer flow): no agent, not queued
    QUEUED = "queued"
    OFFERED = "offered"  # ringing an agent
    ACTIVE = "active"  # an agent is on it
    UNATTENDED = "unattended"  # the agent left; customer and a phone number go on talking
    ENDED = "ended"


@dataclass(slots=True)
class Connection:
    id: str
    contact: str
    party: str
    kind: PartyKind
    state: ConnectionState
    created: float
    transfer_contact: str | None = None  # the contact a user/queue quick connect created
    quick_connect: str | None = None
    ended_reason: str | None = None

    @property
    def banner(self) -> Banner:
        return self.state.banner

    @property
    def live(self) -> bool:
        return self.state is not ConnectionState.ENDED


@dataclass(slots=True)
class Contact:
    id: str
    initial_contact_id: str
    previous_contact_id: str | None
    initiation: str  # INBOUND | TRANSFER | QUEUE_TRANSFER
    created: float
    customer: str = "customer"
    channel: str = "VOICE"
    queue: str | None = None
    attributes: dict[str, str] = field(default_factory=dict)
    agent: str | None = None
    state: ContactState = ContactState.ROUTING
    connections: dict[str, Connection] = field(default_factory=dict)
    initial: str | None = None  # id of the agent's current initial connection
    third: str | None = None  # id of the current third-party connection
    origin: str | None = None  # the third-party connection on the previous contact feeding this
    ended_at: float | None = None
    end_reason: str | None = None
    end_party: str | None = None

    @property
    def initial_connection(self) -> Connection | None:
        return self.connections[self.initial] if self.initial is not None else None

    @property
    def third_party(self) -> Connection | None:
        """The live third-party connection, if any."""
        if self.third is None:
            return None
        conn = self.connections[self.third]
        return conn if conn.live else None


_ACTIVE_VIEW = (ContactState.OFFERED, ContactState.ACTIVE)


@dataclass(frozen=True, slots=True)
class AudioPlan:
    """Who hears whom on one customer's call, derived from the banners.

    ``links`` are pairs of parties bridged both ways (pjmedia: connect the two
    slots); ``on_hold`` maps a held party to the hold flow it hears
    (``customer`` = the customer hold flow, ``agent`` = the agent hold flow).
    Parties are ``customer``, agent logins and E.164 numbers.
    """

    links: frozenset[frozenset[str]]
    on_hold: Mapping[str, str]

    def hears(self, a: str, b: str) -> bool:
        return frozenset((a, b)) in self.links


class ContactModel:
    """All contacts of the instance and the router behind them."""

    def __init__(
        self,
        config: InstanceConfig,
        *,
        now: float = 0.0,
        router: Router | None = None,
        new_id: Callable[[], str] | None = None,
    ) -> None:
        self.config = config
        self.router = router if router is not None else Router(config, now=now)
        self._contacts: dict[str, Contact] = {}
        self._connections: dict[str, Connection] = {}
        self._customer_at: dict[str, str] = {}  # initial contact id -> contact holding the customer
        self._ending: set[str] = set()
        self._events: deque[CenterEvent] = deque()
        self._new_id = new_id if new_id is not None else (lambda: str(uuid.uuid4()))

    # -- queries ---------------------------------------------------------------------------

    def contact(self, contact_id: str) -> Contact:
        try:
            return self._contacts[contact_id]
        except KeyError:
            raise CenterError(f"unknown contact {contact_id!r}", status=404) from None

    def connection(self, connection_id: str) -> Connection:
        try:
            return self._connections[connection_id]
        except KeyError:
            raise CenterError(f"unknown connection {connection_id!r}", status=404) from None

    def own_contact(self, agent: str, contact_id: str) -> Contact:
        """``contact_id`` as ``agent`` may act on it (404 unknown, 403 someone else's)."""
        self.router.agent(agent)
        contact = self.contact(contact_id)
        if contact.agent != agent or contact.state not in _ACTIVE_VIEW:
            raise CenterError(f"contact {contact_id} is not one of {agent}'s contacts", status=403)
        return contact

    def contacts_of(self, agent: str) -> list[Contact]:
        """The contacts in ``agent``'s CCP, oldest first."""
        return [c for c in self._contacts.values() if c.agent == agent and c.state in _ACTIVE_VIEW]

    def chain(self, initial_contact_id: str) -> list[Contact]:
        """Every contact of one customer's call (the initial one and its transfers)."""
        return [c for c in self._contacts.values() if c.initial_contact_id == initial_contact_id]

    def customer_contact(self, contact_id: str) -> Contact:
        """The contact of ``contact_id``'s chain that holds the customer now."""
        return self._contacts[self._customer_at[self.contact(contact_id).initial_contact_id]]

    def snapshot(self, agent: str) -> dict[str, Any]:
        """The agent's CCP state, in ARCHITECTURE.md's JSON shape."""
        state = self.router.agent(agent)
        return {
            "agent": agent,
            "status": state.status.value,
            "contacts": [
                {
                    "id": c.id,
                    "queue": c.queue,
                    "connections": [
                        {"id": conn.id, "party": conn.party, "banner": conn.banner.value}
                        for conn in c.connections.values()
                        if conn.live
                    ],
                }
                for c in self.contacts_of(agent)
            ],
        }

    def audio_plan(self, contact_id: str) -> AudioPlan:
        """Who hears whom now on the call of ``contact_id``'s customer (any contact of the
        chain). Pending parties (ringing, in a flow, whispering) are in no link: the
        executor plays them their flow or ringback."""
        holder = self.customer_contact(contact_id)
        links: set[frozenset[str]] = set()
        on_hold: dict[str, str] = {}

        def link(a: str, b: str) -> None:
            links.add(frozenset((a, b)))

        initial = holder.initial_connection
        third = holder.third_party
        customer = holder.customer
        if holder.state is ContactState.UNATTENDED:
            if third is not None and third.state in ANSWERED:
                link(customer, third.party)
        elif holder.state is ContactState.ACTIVE and holder.agent is not None:
            agent = holder.agent
            customer_live = initial is not None and initial.live
            third_live = third is not None and third.state in ANSWERED
            if customer_live and initial is not None:
                if initial.state is _S.CONNECTED:
                    link(agent, customer)
                elif initial.state is _S.ON_HOLD:
                    on_hold[customer] = "customer"
            if third_live and third is not None:
                party = third.party
                held_by_them = False
                if third.transfer_contact is not None:
                    theirs = self._contacts[third.transfer_contact].initial_connection
                    held_by_them = theirs is not None and theirs.state is _S.ON_HOLD
                joined = (
                    third.state is _S.JOINED
                    and customer_live
                    and initial is not None
                    and initial.state is _S.JOINED
                )
                if held_by_them:
                    # Maria put her side on hold: she drops out of the conference, and
                    # an agent left talking to nobody hears the agent hold flow.
                    if joined:
                        link(agent, customer)
                    elif third.state is _S.CONNECTED:
                        on_hold[agent] = "agent"
                elif third.state is _S.CONNECTED:
                    link(agent, party)
                elif third.state is _S.ON_HOLD:
                    on_hold[party] = "agent" if third.kind is PartyKind.AGENT else "customer"
                elif third.state is _S.JOINED:
                    link(agent, party)
                    if joined:
                        link(agent, customer)
                        link(customer, party)
        return AudioPlan(frozenset(links), on_hold)

    def available_actions(self, agent: str, contact_id: str) -> dict[str, Any]:
        """What ``agent`` may do now: ``{"contact": [...], "connections": {id: [...]}}``;
        anything else is a 409."""
        return self._actions(self.own_contact(agent, contact_id))

    # -- events and time -------------------------------------------------------------------

    def next_event(self) -> CenterEvent | None:
        return self._events.popleft() if self._events else None

    def get_timer(self) -> float | None:
        return self.router.get_timer()

    def handle_timer(self, now: float) -> None:
        self.router.handle_timer(now)
        self._settle(now)

    def set_status(self, agent: str, status: AgentStatus | str, now: float) -> None:
        self.router.set_status(agent, parse_status(status), now)
        self._settle(now)

    # -- the first leg: inbound, queue, offer ----------------------------------------------

    def create_contact(
        self,
        now: float,
        *,
        customer: str = "customer",
        queue: str | None = None,
        attributes: Mapping[str, str] | None = None,
    ) -> Contact:
        """A new inbound contact (the customer's call entered its inbound flow)."""
        contact_id = self._new_id()
        contact = Contact(
            contact_id,
            contact_id,
            None,
            "INBOUND",
            now,
            customer=customer,
            queue=queue,
            attributes=dict(attributes or {}),
        )
        self._contacts[contact_id] = contact
        self._customer_at[contact_id] = contact_id
        self._emit(ContactCreated(contact_id, contact_id, None, "INBOUND", queue, now))
        return contact

    def enqueue(self, contact_id: str, queue: str, now: float) -> None:
        """TransferContactToQueue: the contact waits in ``queue`` (raises QueueAtCapacity)."""
        contact = self.contact(contact_id)
        if contact.state is not ContactState.ROUTING:
            raise CenterError(f"contact {contact_id} is {contact.state.value}, not in a flow")
        self.router.enqueue(contact_id, queue, now)
        contact.queue = queue
        contact.state = ContactState.QUEUED
        self._settle(now)

    def transfer_to_agent(self, contact_id: str, agent: str, now: float) -> Offer | Refusal:
        """TransferContactToAgent: ring ``agent`` directly. A :class:`Refusal` (agent
        Offline or on a contact) comes back at once; resume the flow with an error and
        call :meth:`abandon_transfer` if the flow ends without another transfer."""
        contact = self.contact(contact_id)
        if contact.state is not ContactState.ROUTING:
            raise CenterError(f"contact {contact_id} is {contact.state.value}, not in a flow")
        result = self.router.offer_to_agent(contact_id, agent, now)
        self._settle(now)
        return result

    def abandon_transfer(self, contact_id: str, reason: str, now: float) -> None:
        """A quick connect's transfer flow ended without transferring (queue closed, nobody
        staffed, agent busy): the third-party connection ends and the agent is told why."""
        contact = self.contact(contact_id)
        if contact.state is ContactState.ENDED:
            return
        if contact.state not in (ContactState.ROUTING, ContactState.QUEUED, ContactState.OFFERED):
            raise CenterError(f"contact {contact_id} is {contact.state.value}: already transferred")
        self._fail_transfer(contact, reason, now)
        self._settle(now)

    def accept(self, agent: str, contact_id: str, now: float) -> Contact:
        """The agent accepted (CCP button or answering the phone): banner Connecting while
        the whispers play; call :meth:`connected` after them."""
        contact = self.contact(contact_id)
        offer = self.router.offer_for_contact(contact_id)
        if contact.state is not ContactState.OFFERED or offer is None or offer.agent != agent:
            raise CenterError(f"contact {contact_id} is not ringing for {agent}")
        self.router.accept(offer.id, now)
        self._pump(now)  # OfferAccepted goes out before the banner it causes
        contact.state = ContactState.ACTIVE
        self._step(contact, self._initial(contact), Step.ACCEPT, now)
        self._settle(now)
        return contact

    def reject(self, agent: str, contact_id: str, now: float) -> None:
        """The agent rejected: a queued contact goes to the next agent; a direct
        transfer to this agent fails."""
        contact = self.contact(contact_id)
        offer = self.router.offer_for_contact(contact_id)
        if contact.state is not ContactState.OFFERED or offer is None or offer.agent != agent:
            raise CenterError(f"contact {contact_id} is not ringing for {agent}")
        self.router.reject(offer.id, now)
        self._settle(now)

    def connected(self, contact_id: str, now: float) -> None:
        """The whispers finished: the agent's banner reads Connected, and so does the
        transferring agent's third-party connection (seed steps 5-8)."""
        contact = self.contact(contact_id)
        if contact.state is not ContactState.ACTIVE:
            raise CenterError(f"contact {contact_id} is {contact.state.value}, not accepted")
        self._step(contact, self._initial(contact), Step.CONNECT, now)
        if contact.origin is not None:
            link = self._connections[contact.origin]
            previous = self._contacts[link.contact]
            if link.live and link.state in PENDING and previous.state is ContactState.ACTIVE:
                assert contact.agent is not None
                link.party, link.kind = contact.agent, PartyKind.AGENT
                self._third_answered(previous, link, now)
        self._settle(now)

    # -- quick connects --------------------------------------------------------------------

    def quick_connects(self, agent: str) -> list[str]:
        """The quick connects ``agent`` may pick (those of their routing profile's queues)."""
        self.router.agent(agent)
        return self.config.quick_connects_for(agent)

    def quick_connect(
        self, agent: str, contact_id: str, name: str, now: float
    ) -> QuickConnectStarted:
        """Seed step 1: the customer goes on hold and a third-party connection appears.
        The returned event tells the executor what to run (a flow) or dial (a number)."""
        contact = self.own_contact(agent, contact_id)
        if name not in self.quick_connects(agent):
            raise CenterError(f"{agent} has no quick connect named {name!r}", status=422)
        self._require(contact, "quickConnect")
        customer = self._initial(contact)
        if customer.state is ConnectionState.CONNECTED:
            self._step(contact, customer, Step.HOLD, now, reason=f"quick connect {name}")
        qc = self.config.quick_connects[name]
        flow: str | None = None
        transfer: Contact | None = None
        caller_name: str | None = None
        caller_number: str | None = None
        if isinstance(qc, UserQuickConnect):
            # Seed scenario 1 step 1: "Connected", though not yet connected to Maria.
            third = self._add_connection(contact, qc.agent, PartyKind.AGENT, _S.TRANSFERRING, now)
            transfer = self._transfer_contact(contact, third, "TRANSFER", contact.queue, now)
            flow, target = qc.flow, qc.agent
        elif isinstance(qc, QueueQuickConnect):
            # Seed scenario 2 step 1: "Connecting"; the contact is not in the queue yet.
            third = self._add_connection(contact, qc.queue, PartyKind.QUEUE, _S.CONNECTING, now)
            transfer = self._transfer_contact(contact, third, "QUEUE_TRANSFER", qc.queue, now)
            flow, target = qc.flow, qc.queue
        else:
            assert isinstance(qc, PhoneNumberQuickConnect)
            # Seed scenario 3: no flow; the queue's outbound caller ID (the agent's
            # default outbound queue when the contact has none).
            third = self._add_connection(contact, qc.number, PartyKind.PHONE, _S.CONNECTING, now)
            queue = contact.queue or self.config.outbound_queue(agent)
            caller = self.config.queues[queue].outbound_caller_id
            caller_name, caller_number, target = caller.name, caller.number, qc.number
        third.quick_connect = name
        event = QuickConnectStarted(
            contact.id,
            third.id,
            agent,
            name,
            qc.type,
            target,
            flow,
            transfer.id if transfer is not None else None,
            caller_name,
            caller_number,
            now,
        )
        self._emit(event)
        self._settle(now)
        return event

    def third_party_answered(self, connection_id: str, now: float) -> None:
        """The dialled phone number answered (200 OK)."""
        conn = self.connection(connection_id)
        contact = self._contacts[conn.contact]
        if conn.kind is not PartyKind.PHONE or conn.state is not ConnectionState.CONNECTING:
            raise CenterError(f"connection {connection_id} is not a ringing phone number")
        if contact.state is ContactState.UNATTENDED:
            self._step(contact, conn, Step.CONNECT, now)
        else:
            self._third_answered(contact, conn, now)
        self._settle(now)

    def third_party_failed(self, connection_id: str, reason: str, now: float) -> None:
        """The third party could not be reached (``486 Busy Here``, ``480``, no answer …)."""
        conn = self.connection(connection_id)
        contact = self._contacts[conn.contact]
        if not conn.live or conn.state not in PENDING:
            raise CenterError(f"connection {connection_id} is not being connected")
        if conn.transfer_contact is not None:
            self._fail_transfer(self._contacts[conn.transfer_contact], reason, now)
        else:
            self._end_third(contact, conn, reason, None, now, failed=True)
        self._settle(now)

    def third_party_hung_up(self, connection_id: str, now: float) -> None:
        """The third party hung up; the agent gets the customer back on hold to resume."""
        conn = self.connection(connection_id)
        contact = self._contacts[conn.contact]
        if not conn.live or conn.id != contact.third:
            raise CenterError(f"connection {connection_id} is not a live third party")
        if conn.state in PENDING:
            self.third_party_failed(connection_id, "hung up", now)
            return
        if conn.transfer_contact is not None:
            other = self._contacts[conn.transfer_contact]
            self._agent_drops(other, "agent hung up", now)
        else:
            self._end_third(contact, conn, "hung up", conn.party, now)
        self._settle(now)

    # -- the agent's controls --------------------------------------------------------------

    def hold(self, agent: str, connection_id: str, now: float) -> None:
        conn, contact = self._own_connection(agent, connection_id)
        was_joined = conn.state is ConnectionState.JOINED
        self._step(contact, conn, Step.HOLD, now)
        if was_joined:
            self._unjoin_others(contact, now)
        self._sync_linked(contact, now)
        self._settle(now)

    def resume(self, agent: str, connection_id: str, now: float) -> None:
        conn, contact = self._own_connection(agent, connection_id)
        for other in contact.connections.values():
            if other is not conn and other.state is ConnectionState.CONNECTED:
                raise CenterError(
                    f"cannot resume {conn.party}: {other.party} is connected (swap or conference)"
                )
        self._step(contact, conn, Step.RESUME, now)
        self._settle(now)

    def hold_all(self, agent: str, contact_id: str, now: float) -> None:
        contact = self.own_contact(agent, contact_id)
        self._require(contact, "holdAll")
        for conn in self._pair(contact):
            if conn.state is not ConnectionState.ON_HOLD:
                self._step(contact, conn, Step.HOLD, now, reason="hold all")
        self._emit(AgentAction(contact.id, agent, "holdAll", now))
        self._sync_linked(contact, now)
        self._settle(now)

    def swap(self, agent: str, contact_id: str, now: float) -> None:
        contact = self.own_contact(agent, contact_id)
        self._require(contact, "swap")
        active, held = sorted(self._pair(contact), key=lambda c: c.state is not _S.CONNECTED)
        self._step(contact, active, Step.HOLD, now, reason="swap")
        self._step(contact, held, Step.RESUME, now, reason="swap")
        self._emit(AgentAction(contact.id, agent, "swap", now))
        self._sync_linked(contact, now)
        self._settle(now)

    def conference(self, agent: str, contact_id: str, now: float) -> None:
        """Join: all parties hear each other; every banner reads Joined."""
        contact = self.own_contact(agent, contact_id)
        self._require(contact, "conference")
        for conn in self._pair(contact):
            if conn.state is not ConnectionState.JOINED:
                self._step(contact, conn, Step.JOIN, now, reason="conference")
        self._emit(AgentAction(contact.id, agent, "conference", now))
        self._sync_linked(contact, now)
        self._settle(now)

    def leave(self, agent: str, contact_id: str, now: float) -> None:
        """End call: the agent drops. With a third party (connected or still being
        connected) the customer stays with it; without one the call ends."""
        contact = self.own_contact(agent, contact_id)
        self._require(contact, "leave")
        self._emit(AgentAction(contact.id, agent, "leave", now))
        self._leave(contact, now)
        self._settle(now)

    def end_connection(self, agent: str, connection_id: str, now: float) -> None:
        """End one connection: the third party (abort the transfer, drop it) or the
        customer side (the customer is disconnected; a connected third party stays)."""
        conn, contact = self._own_connection(agent, connection_id)
        if conn.state is ConnectionState.INCOMING:
            raise CenterError("an incoming contact is rejected, not ended")
        if conn.id == contact.third:
            if conn.transfer_contact is not None:
                other = self._contacts[conn.transfer_contact]
                if other.state is ContactState.ACTIVE:
                    self._agent_drops(other, f"{agent} ended the connection", now, by=agent)
                else:
                    self._cancel_transfer(other, f"{agent} ended the connection", now)
            else:
                self._end_third(contact, conn, f"{agent} ended the connection", agent, now)
        else:
            self._end_initial(contact, f"{agent} ended the connection", agent, now)
        self._settle(now)

    def agent_hung_up(self, agent: str, now: float) -> None:
        """The agent's phone hung up: reject when ringing, leave with a third party, end the
        call otherwise."""
        state = self.router.agent(agent)
        if state.offer is not None:
            offer = self.router.offer(state.offer)
            self.reject(agent, offer.contact, now)
            return
        if state.contact is None:
            return
        contact = self._contacts[state.contact]
        if contact.third_party is not None:
            self._emit(AgentAction(contact.id, agent, "leave", now))
            self._leave(contact, now)
        else:
            self._end_initial(contact, "agent hung up", agent, now)
        self._settle(now)

    def customer_hung_up(self, contact_id: str, now: float) -> None:
        """The customer's leg is gone (any contact id of the chain)."""
        contact = self.customer_contact(contact_id)
        if contact.state is ContactState.ENDED:
            return
        reason = "customer disconnected"
        party = contact.customer
        if contact.state in (ContactState.ROUTING, ContactState.QUEUED, ContactState.OFFERED):
            self._end_contact(contact, reason, party, now)
        elif contact.state is ContactState.UNATTENDED:
            third = contact.third_party
            if third is not None:
                self._emit(PartyDisconnected(contact.id, third.party, reason, now))
            self._end_contact(contact, reason, party, now)
        else:
            self._end_initial(contact, reason, party, now, customer_gone=True)
        self._settle(now)

    # -- internals: actions ----------------------------------------------------------------

    def _actions(self, contact: Contact) -> dict[str, Any]:
        out: dict[str, Any] = {"contact": [], "connections": {}}
        if contact.state is ContactState.OFFERED:
            out["contact"] = ["accept", "reject"]
            return out
        if contact.state is not ContactState.ACTIVE:
            return out
        initial = self._initial(contact)
        third = contact.third_party
        actions: list[str] = []
        holds_customer = self._customer_at[contact.initial_contact_id] == contact.id
        if (
            holds_customer
            and third is None
            and initial.state in (_S.CONNECTED, _S.ON_HOLD)
            and contact.agent is not None
            and self.config.quick_connects_for(contact.agent)
        ):
            actions.append("quickConnect")
        if third is not None and initial.state in ANSWERED and third.state in ANSWERED:
            states = {initial.state, third.state}
            if states != {_S.JOINED}:
                actions.append("conference")
            if states != {_S.ON_HOLD}:
                actions.append("holdAll")
            if states == {_S.CONNECTED, _S.ON_HOLD}:
                actions.append("swap")
        actions.append("leave")
        out["contact"] = actions
        for conn in contact.connections.values():
            if not conn.live:
                continue
            allowed = TRANSITIONS[conn.state]
            items: list[str] = []
            if Step.HOLD in allowed:
                items.append("hold")
            if Step.RESUME in allowed and not any(
                o is not conn and o.state is _S.CONNECTED for o in contact.connections.values()
            ):
                items.append("resume")
            if conn.state is not _S.INCOMING:
                items.append("end")
            out["connections"][conn.id] = items
        return out

    def _require(self, contact: Contact, action: str) -> None:
        allowed = self._actions(contact)["contact"]
        if action not in allowed:
            now_ok = ", ".join(allowed) or "nothing"
            raise CenterError(
                f"cannot {action} contact {contact.id} now (possible: {now_ok})", status=409
            )

    def _pair(self, contact: Contact) -> list[Connection]:
        third = contact.third_party
        assert third is not None
        return [self._initial(contact), third]

    def _initial(self, contact: Contact) -> Connection:
        conn = contact.initial_connection
        if conn is None:
            raise CenterError(f"contact {contact.id} has no agent connection")
        return conn

    def _own_connection(self, agent: str, connection_id: str) -> tuple[Connection, Contact]:
        conn = self.connection(connection_id)
        # An offered contact's Incoming connection is left to the table to refuse.
        return conn, self.own_contact(agent, conn.contact)

    # -- internals: state changes ----------------------------------------------------------

    def _emit(self, event: CenterEvent) -> None:
        self._events.append(event)

    def _view_agent(self, contact: Contact) -> str | None:
        return contact.agent if contact.state is not ContactState.UNATTENDED else None

    def _step(
        self,
        contact: Contact,
        conn: Connection,
        step: Step,
        now: float,
        *,
        reason: str | None = None,
    ) -> None:
        """The one place a banner changes: a table lookup, or a 409."""
        target = TRANSITIONS[conn.state].get(step)
        if target is None:
            raise CenterError(
                f"cannot {step.value} connection {conn.id} ({conn.party}): it is {conn.banner.value}"
            )
        previous = conn.banner
        conn.state = target
        if target is _S.ENDED:
            conn.ended_reason = reason
        # Every step is news, even Connected -> Connected (the consult now really talks).
        self._emit(
            BannerChanged(
                contact.id,
                conn.id,
                self._view_agent(contact),
                conn.party,
                target.banner.value,
                previous.value,
                now,
                reason,
            )
        )

    def _add_connection(
        self, contact: Contact, party: str, kind: PartyKind, state: ConnectionState, now: float
    ) -> Connection:
        conn = Connection(self._new_id(), contact.id, party, kind, state, now)
        contact.connections[conn.id] = conn
        self._connections[conn.id] = conn
        if kind is PartyKind.CUSTOMER:
            contact.initial = conn.id
        else:
            contact.third = conn.id
        self._emit(
            ConnectionAdded(contact.id, conn.id, contact.agent, party, conn.banner.value, now)
        )
        return conn

    def _transfer_contact(
        self, previous: Contact, link: Connection, initiation: str, queue: str | None, now: float
    ) -> Contact:
        contact_id = self._new_id()
        contact = Contact(
            contact_id,
            previous.initial_contact_id,
            previous.id,
            initiation,
            now,
            customer=previous.customer,
            queue=queue,
            attributes=dict(previous.attributes),
            origin=link.id,
        )
        self._contacts[contact_id] = contact
        link.transfer_contact = contact_id
        self._emit(
            ContactCreated(
                contact_id, contact.initial_contact_id, previous.id, initiation, queue, now
            )
        )
        return contact

    def _third_answered(self, contact: Contact, third: Connection, now: float) -> None:
        # Only one party talks with the agent unless joined: the customer goes back on hold.
        initial = contact.initial_connection
        if initial is not None and initial.state is _S.CONNECTED:
            self._step(contact, initial, Step.HOLD, now, reason=f"{third.party} connected")
        self._step(contact, third, Step.CONNECT, now)

    def _unjoin_others(self, contact: Contact, now: float) -> None:
        for conn in contact.connections.values():
            if conn.state is _S.JOINED:
                self._step(contact, conn, Step.UNJOIN, now)

    def _sync_linked(self, contact: Contact, now: float) -> None:
        """Maria's own banner follows the conference John makes or breaks."""
        third = contact.third_party
        if third is None or third.transfer_contact is None:
            return
        other = self._contacts[third.transfer_contact]
        if other.state is not ContactState.ACTIVE:
            return
        mine = self._initial(other)
        if third.state is _S.JOINED and mine.state is _S.CONNECTED:
            self._step(other, mine, Step.JOIN, now, reason="conference")
        elif third.state is not _S.JOINED and mine.state is _S.JOINED:
            self._step(other, mine, Step.UNJOIN, now)

    def _end_contact(self, contact: Contact, reason: str, party: str | None, now: float) -> None:
        if contact.state is ContactState.ENDED:
            return
        self._ending.add(contact.id)
        if (
            self.router.offer_for_contact(contact.id) is not None
            or contact.id in self.router.queues
        ):
            self.router.dequeue(contact.id, now, reason)
            self._pump(now)  # the offer's withdrawal ends the Incoming connection first
        for conn in contact.connections.values():
            if conn.live:
                self._step(contact, conn, Step.END, now, reason=reason)
        agent = contact.agent
        if agent is not None and self.router.agents[agent].contact == contact.id:
            self.router.agent_freed(agent, now)
        contact.state = ContactState.ENDED
        contact.ended_at, contact.end_reason, contact.end_party = now, reason, party
        self._emit(ContactEnded(contact.id, agent, reason, party, now))

    def _fail_transfer(self, transfer: Contact, reason: str, now: float) -> None:
        """The transfer contact will never reach its agent: end it and its origin."""
        self._end_contact(transfer, reason, "system", now)
        if transfer.origin is None:
            return
        link = self._connections[transfer.origin]
        previous = self._contacts[link.contact]
        if link.live:
            self._step(previous, link, Step.END, now, reason=reason)
            self._emit(
                TransferFailed(
                    previous.id, link.id, self._view_agent(previous), link.party, reason, now
                )
            )
            self._unjoin_others(previous, now)
        if self._customer_at[transfer.initial_contact_id] == transfer.id:
            # A blind transfer that failed: nobody is left to take the customer.
            self._emit(PartyDisconnected(transfer.id, transfer.customer, reason, now))

    def _cancel_transfer(self, transfer: Contact, reason: str, now: float) -> None:
        """The transferring agent aborted the transfer before anyone answered."""
        self._end_contact(transfer, reason, "system", now)
        if transfer.origin is not None:
            link = self._connections[transfer.origin]
            if link.live:
                self._step(self._contacts[link.contact], link, Step.END, now, reason=reason)

    def _end_third(
        self,
        contact: Contact,
        conn: Connection,
        reason: str,
        by: str | None,
        now: float,
        *,
        failed: bool = False,
    ) -> None:
        """A phone-number third party is gone (hung up, failed, or dropped by the agent)."""
        if not failed and by != conn.party:
            self._emit(PartyDisconnected(contact.id, conn.party, reason, now))
        self._step(contact, conn, Step.END, now, reason=reason)
        if failed:
            self._emit(
                TransferFailed(
                    contact.id, conn.id, self._view_agent(contact), conn.party, reason, now
                )
            )
        if contact.state is ContactState.UNATTENDED:
            self._emit(PartyDisconnected(contact.id, contact.customer, reason, now))
            self._end_contact(contact, reason, by, now)
            return
        self._unjoin_others(contact, now)
        initial = contact.initial_connection
        if initial is None or not initial.live:
            self._end_contact(contact, reason, by, now)

    def _agent_drops(
        self, contact: Contact, reason: str, now: float, by: str | None = None
    ) -> None:
        """The agent of a transferred contact (Maria) is gone: her contact ends; the
        transferring agent keeps the customer, on hold, to resume."""
        agent = contact.agent
        if self._customer_at[contact.initial_contact_id] == contact.id:
            # Maria had the customer to herself (John left): the customer's call ends.
            third = contact.third_party
            if third is not None and third.state in ANSWERED:
                self._leave(contact, now)
                return
            self._emit(PartyDisconnected(contact.id, contact.customer, reason, now))
            if third is not None:
                self._drop_third_silently(contact, third, reason, now)
            self._end_contact(contact, reason, by or agent, now)
            return
        self._end_contact(contact, reason, by or agent, now)
        if contact.origin is None:
            return
        link = self._connections[contact.origin]
        previous = self._contacts[link.contact]
        if link.live:
            # John's CCP names who went: "maria hung up", "maria left", "john ended …".
            mine = by is None or by == agent
            text = f"{agent} hung up" if mine and not reason.startswith(f"{agent} ") else reason
            self._step(previous, link, Step.END, now, reason=text)
            self._unjoin_others(previous, now)
            initial = previous.initial_connection
            if initial is None or not initial.live:
                # The customer had hung up already: nothing is left of John's contact.
                self._end_contact(previous, text, agent, now)

    def _drop_third_silently(
        self, contact: Contact, third: Connection, reason: str, now: float
    ) -> None:
        if third.transfer_contact is not None:
            other = self._contacts[third.transfer_contact]
            if other.state is ContactState.ACTIVE:
                self._end_contact(other, reason, "system", now)
            else:
                self._cancel_transfer(other, reason, now)
        else:
            self._emit(PartyDisconnected(contact.id, third.party, reason, now))
        if third.live:
            self._step(contact, third, Step.END, now, reason=reason)

    def _end_initial(
        self,
        contact: Contact,
        reason: str,
        party: str | None,
        now: float,
        *,
        customer_gone: bool = False,
    ) -> None:
        """The agent's initial connection ends (the customer's side)."""
        holds_customer = self._customer_at[contact.initial_contact_id] == contact.id
        if not holds_customer:
            # Maria ending her connection while John still has the customer = she drops.
            self._agent_drops(contact, reason, now, by=party)
            return
        if not customer_gone:
            self._emit(PartyDisconnected(contact.id, contact.customer, reason, now))
        initial = self._initial(contact)
        if initial.live:
            self._step(contact, initial, Step.END, now, reason=reason)
        third = contact.third_party
        if third is not None and third.state in ANSWERED:
            # John goes on talking with the third party (seed: the agent may end the
            # customer's connection and keep the consult).
            self._unjoin_others(contact, now)
            self._sync_linked(contact, now)
            return
        if third is not None:
            self._drop_third_silently(contact, third, reason, now)
        self._end_contact(contact, reason, party, now)

    def _leave(self, contact: Contact, now: float) -> None:
        agent = contact.agent
        assert agent is not None
        third = contact.third_party
        holds_customer = self._customer_at[contact.initial_contact_id] == contact.id
        if not holds_customer:
            self._agent_drops(contact, f"{agent} left", now, by=agent)
            return
        initial = self._initial(contact)
        if third is None:
            self._end_initial(contact, f"{agent} ended the call", agent, now)
            return
        if not initial.live:
            # The customer is gone already: leaving ends the consult too.
            self._drop_third_silently(contact, third, f"{agent} ended the call", now)
            self._end_contact(contact, f"{agent} ended the call", agent, now)
            return
        if third.transfer_contact is not None:
            # Seed step 9 "End call": the customer stays with Maria (or goes on into
            # the queue / to Maria's phone ringing: a blind transfer).
            other = self._contacts[third.transfer_contact]
            self._customer_at[contact.initial_contact_id] = other.id
            self._emit(ContactHandedOver(contact.id, agent, third.party, other.id, now))
            self._end_contact(contact, "transferred", agent, now)
            if other.state is ContactState.ACTIVE:
                mine = self._initial(other)
                if mine.state is _S.JOINED:
                    self._step(other, mine, Step.UNJOIN, now, reason=f"{agent} left")
            return
        # A phone number: the customer and the number go on talking with no agent. In the
        # agent's CCP both connections end; the two keep talking, seen by no CCP (their
        # resume/unjoin below happens after the contact went unattended, so it carries no
        # agent).
        self._emit(ContactHandedOver(contact.id, agent, third.party, None, now))
        for conn in (initial, third):
            self._emit(
                BannerChanged(
                    contact.id,
                    conn.id,
                    agent,
                    conn.party,
                    Banner.ENDED.value,
                    conn.banner.value,
                    now,
                    f"{agent} left",
                )
            )
        contact.state = ContactState.UNATTENDED
        for conn in (initial, third):
            if conn.state is _S.ON_HOLD:
                self._step(contact, conn, Step.RESUME, now, reason=f"{agent} left")
            elif conn.state is _S.JOINED:
                self._step(contact, conn, Step.UNJOIN, now, reason=f"{agent} left")
        self.router.agent_freed(agent, now)

    # -- internals: router events ----------------------------------------------------------

    def _settle(self, now: float) -> None:
        """Forward the router's events, reacting to offers, until routing is quiet."""
        while True:
            self._pump(now)
            if not self.router.poll(now):
                break
        self._pump(now)

    def _pump(self, now: float) -> None:
        while (event := self.router.next_event()) is not None:
            self._emit(event)
            if isinstance(event, OfferCreated):
                self._present(event, now)
            elif isinstance(event, OfferRejected):
                self._withdraw(
                    event.contact, event.agent, f"{event.agent} rejected the contact", now
                )
            elif isinstance(event, OfferTimedOut):
                self._withdraw(event.contact, event.agent, f"{event.agent} did not answer", now)
            elif isinstance(event, OfferCancelled):
                self._withdraw(event.contact, event.agent, event.reason, now)

    def _present(self, event: OfferCreated, now: float) -> None:
        contact = self._contacts.get(event.contact)
        if contact is None:
            raise CenterError(f"router offered unknown contact {event.contact}")
        contact.agent = event.agent
        contact.state = ContactState.OFFERED
        self._add_connection(contact, contact.customer, PartyKind.CUSTOMER, _S.INCOMING, now)

    def _withdraw(self, contact_id: str, agent: str, reason: str, now: float) -> None:
        contact = self._contacts.get(contact_id)
        if contact is None:
            return
        initial = contact.initial_connection
        if initial is not None and initial.live and initial.state is _S.INCOMING:
            self._step(contact, initial, Step.END, now, reason=reason)
        if contact.state is ContactState.ENDED or contact.id in self._ending:
            return
        contact.agent = None
        if contact_id in self.router.queues:
            contact.state = ContactState.QUEUED
        else:
            # A direct offer (TransferContactToAgent) is final: the transfer failed.
            contact.state = ContactState.ROUTING
            self._fail_transfer(contact, reason, now)
