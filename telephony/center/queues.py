"""Contact queues: who waits where since when, opening hours, staffing.

Waiting contacts are kept in arrival order (FIFO by enqueue time, ties by
arrival sequence); the router decides who gets them. Hours and staffing
answer the flow blocks *Check hours of operation* and *Check staffing*
(``CheckMetricData``), with Amazon Connect's metric definitions:

- Available: status Available and not on a contact;
- Online: status Available, on a contact or not;
- Staffed: logged in, i.e. any status but Offline.

Only agents whose routing profile takes the queue count.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime

from flows.model import StaffingMetric
from telephony.center.agents import AgentState
from telephony.center.config import InstanceConfig
from telephony.center.events import CenterError


@dataclass(frozen=True, slots=True)
class QueuedContact:
    contact: str
    queue: str
    enqueued_at: float
    seq: int  # arrival order, breaks ties between equal enqueue times

    def waited(self, now: float) -> float:
        return now - self.enqueued_at


class QueueAtCapacity(CenterError):
    """TransferContactToQueue's ``QueueAtCapacity`` error: the queue's max_contacts is reached."""


class ContactQueues:
    """Every queue of the instance and the contacts waiting in them."""

    def __init__(self, config: InstanceConfig) -> None:
        self._config = config
        self._waiting: dict[str, QueuedContact] = {}  # contact id -> entry, insertion = arrival
        self._seq = 0

    def __contains__(self, contact: object) -> bool:
        return contact in self._waiting

    def __len__(self) -> int:
        return len(self._waiting)

    def __iter__(self) -> Iterator[QueuedContact]:
        return iter(self.waiting())

    def add(self, contact: str, queue: str, now: float) -> QueuedContact:
        if queue not in self._config.queues:
            raise CenterError(f"unknown queue {queue!r}", status=422)
        if contact in self._waiting:
            raise CenterError(
                f"contact {contact} is already waiting in {self._waiting[contact].queue}"
            )
        limit = self._config.queues[queue].max_contacts
        if limit is not None and self.size(queue) >= limit:
            raise QueueAtCapacity(f"queue {queue} is at capacity ({limit} contacts)")
        self._seq += 1
        entry = QueuedContact(contact, queue, now, self._seq)
        self._waiting[contact] = entry
        return entry

    def remove(self, contact: str) -> QueuedContact | None:
        return self._waiting.pop(contact, None)

    def get(self, contact: str) -> QueuedContact | None:
        return self._waiting.get(contact)

    def waiting(self, queue: str | None = None) -> list[QueuedContact]:
        """Waiting contacts, oldest first (all queues, or one)."""
        entries: Iterable[QueuedContact] = self._waiting.values()
        if queue is not None:
            entries = (e for e in entries if e.queue == queue)
        return sorted(entries, key=lambda e: (e.enqueued_at, e.seq))

    def size(self, queue: str) -> int:
        return sum(1 for e in self._waiting.values() if e.queue == queue)

    def position(self, contact: str) -> int | None:
        """1-based place of ``contact`` in its queue, or None when not queued."""
        entry = self._waiting.get(contact)
        if entry is None:
            return None
        return self.waiting(entry.queue).index(entry) + 1


def is_open(config: InstanceConfig, queue: str, at: datetime) -> bool:
    """Whether ``queue`` is open at ``at`` (timezone-aware); a queue without hours is always open."""
    if queue not in config.queues:
        raise CenterError(f"unknown queue {queue!r}", status=422)
    hours = config.hours_for_queue(queue)
    if hours is None:
        if at.tzinfo is None:
            raise ValueError("is_open needs a timezone-aware datetime")
        return True
    return hours.is_open(at)


@dataclass(frozen=True, slots=True)
class Staffing:
    """Agent counts of one queue, as Check staffing reads them."""

    available: int
    online: int
    staffed: int

    def metric(self, metric: StaffingMetric) -> int:
        if metric is StaffingMetric.AVAILABLE:
            return self.available
        if metric is StaffingMetric.ONLINE:
            return self.online
        return self.staffed


def staffing(agents: Iterable[AgentState], queue: str) -> Staffing:
    members = [a for a in agents if a.takes(queue)]
    return Staffing(
        available=sum(a.available for a in members),
        online=sum(a.online for a in members),
        staffed=sum(a.staffed for a in members),
    )
