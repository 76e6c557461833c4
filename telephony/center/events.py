"""What the contact center says: its events, and its one exception family.

Every state change of the center (an agent's status, a contact queued, an
offer made, a banner changed, a transfer failed …) is one small immutable
event. The executor drains them with ``next_event()`` and publishes their
``to_json()`` on MQTT (``qconnect/agents/{agent}/events``,
``qconnect/contacts/{contact}/events``) and the WebSocket, and writes them
into the contact trace record. The JSON shape is a public contract: a
``type``, the ``contact``/``agent``/``connection`` it concerns, an ISO 8601
``at``, and the event's own fields in camelCase.

Times (``at``) are POSIX seconds (``time.time()``) passed in by the caller:
the model never reads the clock (STYLE.md, the aioquic shape).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any, ClassVar


class CenterError(Exception):
    """An operation that is not valid now, or names something unknown.

    ``status`` is the HTTP status the API answers with (ARCHITECTURE.md):
    409 for an action not valid in the current state, 404 for an unknown
    contact or connection, 403 for another agent's resource, 422 for a
    request naming something that does not exist (a quick connect, a queue).
    """

    def __init__(self, message: str, status: int = 409) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def iso8601(at: float) -> str:
    """POSIX seconds as an ISO 8601 UTC timestamp with milliseconds."""
    stamp = datetime.fromtimestamp(at, tz=UTC).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


class _Event:
    """The shared JSON rendering; subclasses are frozen slotted dataclasses."""

    __slots__ = ()
    TYPE: ClassVar[str]

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.TYPE}
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if f.name == "at":
                out["at"] = iso8601(value)
            elif f.name == "expires":
                out["expires"] = iso8601(value)
            else:
                out[_camel(f.name)] = value
        return out


# -- agents and routing ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AgentStatusChanged(_Event):
    """The agent set their status (PUT /api/agents/{agent}/status)."""

    TYPE: ClassVar[str] = "agentStatus"
    agent: str
    status: str
    previous: str
    at: float


@dataclass(frozen=True, slots=True)
class ContactQueued(_Event):
    TYPE: ClassVar[str] = "contactQueued"
    contact: str
    queue: str
    at: float


@dataclass(frozen=True, slots=True)
class ContactDequeued(_Event):
    """The contact left its queue: ``reason`` is ``accepted`` or why it was taken out."""

    TYPE: ClassVar[str] = "contactDequeued"
    contact: str
    queue: str
    reason: str
    at: float


@dataclass(frozen=True, slots=True)
class OfferCreated(_Event):
    """The agent's phone rings and their CCP shows ``Incoming`` until ``expires``."""

    TYPE: ClassVar[str] = "offerCreated"
    offer: str
    contact: str
    agent: str
    queue: str | None  # None: a direct offer (TransferContactToAgent)
    expires: float
    at: float


@dataclass(frozen=True, slots=True)
class OfferAccepted(_Event):
    TYPE: ClassVar[str] = "offerAccepted"
    offer: str
    contact: str
    agent: str
    at: float


@dataclass(frozen=True, slots=True)
class OfferRejected(_Event):
    TYPE: ClassVar[str] = "offerRejected"
    offer: str
    contact: str
    agent: str
    at: float


@dataclass(frozen=True, slots=True)
class OfferTimedOut(_Event):
    """Nobody answered within the instance's ``ring_timeout``."""

    TYPE: ClassVar[str] = "offerTimedOut"
    offer: str
    contact: str
    agent: str
    at: float


@dataclass(frozen=True, slots=True)
class OfferCancelled(_Event):
    """The offer was withdrawn (the customer hung up, the agent went Offline …)."""

    TYPE: ClassVar[str] = "offerCancelled"
    offer: str
    contact: str
    agent: str
    reason: str
    at: float


# -- contacts and connections ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ContactCreated(_Event):
    TYPE: ClassVar[str] = "contactCreated"
    contact: str
    initial_contact: str
    previous_contact: str | None
    initiation: str  # INBOUND, TRANSFER (agent quick connect), QUEUE_TRANSFER
    queue: str | None
    at: float


@dataclass(frozen=True, slots=True)
class ConnectionAdded(_Event):
    """A connection appears in ``agent``'s CCP (an offer, a quick connect's third party)."""

    TYPE: ClassVar[str] = "connectionAdded"
    contact: str
    connection: str
    agent: str | None
    party: str
    banner: str
    at: float


@dataclass(frozen=True, slots=True)
class BannerChanged(_Event):
    """A connection's banner as ``agent``'s CCP shows it."""

    TYPE: ClassVar[str] = "banner"
    contact: str
    connection: str
    agent: str | None
    party: str
    banner: str
    previous: str
    at: float
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class QuickConnectStarted(_Event):
    """The agent picked a quick connect. The executor runs ``flow`` on the agent's
    leg (user/queue) or dials ``target`` with the caller ID (phone number)."""

    TYPE: ClassVar[str] = "quickConnect"
    contact: str
    connection: str
    agent: str
    name: str
    quick_connect_type: str  # user | queue | phone_number (Amazon Connect QuickConnectType)
    target: str  # agent login, queue name or E.164 number
    flow: str | None
    transfer_contact: str | None
    caller_id_name: str | None
    caller_id_number: str | None
    at: float


@dataclass(frozen=True, slots=True)
class TransferFailed(_Event):
    """A quick connect's third party did not connect; ``reason`` tells the agent why."""

    TYPE: ClassVar[str] = "transferFailed"
    contact: str
    connection: str
    agent: str | None
    party: str
    reason: str
    at: float


@dataclass(frozen=True, slots=True)
class AgentAction(_Event):
    """A contact-level CCP action: conference, holdAll, swap, leave, quickConnect."""

    TYPE: ClassVar[str] = "action"
    contact: str
    agent: str
    action: str
    at: float


@dataclass(frozen=True, slots=True)
class ContactHandedOver(_Event):
    """The agent left and the customer stays with ``party`` on ``to_contact``
    (``None`` for a phone number, which talks to the customer on the same contact)."""

    TYPE: ClassVar[str] = "handover"
    contact: str
    agent: str
    party: str
    to_contact: str | None
    at: float


@dataclass(frozen=True, slots=True)
class PartyDisconnected(_Event):
    """The executor must hang up this party's leg (the customer, an external number)."""

    TYPE: ClassVar[str] = "partyDisconnected"
    contact: str
    party: str
    reason: str
    at: float


@dataclass(frozen=True, slots=True)
class ContactEnded(_Event):
    """The contact is over for ``agent`` (None: it never reached one)."""

    TYPE: ClassVar[str] = "contactEnded"
    contact: str
    agent: str | None
    reason: str
    party: str | None  # who ended it: customer, an agent login, system
    at: float


CenterEvent = (
    AgentStatusChanged
    | ContactQueued
    | ContactDequeued
    | OfferCreated
    | OfferAccepted
    | OfferRejected
    | OfferTimedOut
    | OfferCancelled
    | ContactCreated
    | ConnectionAdded
    | BannerChanged
    | QuickConnectStarted
    | TransferFailed
    | AgentAction
    | ContactHandedOver
    | PartyDisconnected
    | ContactEnded
)
