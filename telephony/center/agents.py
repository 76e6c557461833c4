"""Agents as routing sees them: status, whether on a contact, how long idle.

The status is the CCP's (API contract: ``Available`` or ``Offline``); being on
a contact is separate, as in Amazon Connect, where an Available agent on a
call is still Available but is not routed another contact. ``idle_since`` is
when the agent last became free to take a contact — the router offers a
contact to the agent idle longest.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from telephony.center.config import InstanceConfig
from telephony.center.events import AgentStatusChanged, CenterError


class AgentStatus(StrEnum):
    AVAILABLE = "Available"
    OFFLINE = "Offline"


def parse_status(value: str) -> AgentStatus:
    """The status an API body names; unknown values are a 422."""
    try:
        return AgentStatus(value)
    except ValueError:
        allowed = ", ".join(s.value for s in AgentStatus)
        raise CenterError(f"unknown status {value!r} (use {allowed})", status=422) from None


@dataclass(slots=True)
class AgentState:
    """One configured agent, as routing and the CCP see them now."""

    login: str
    routing_profile: str
    queues: tuple[str, ...]  # the queues of the routing profile, in its order
    status: AgentStatus
    idle_since: float
    contact: str | None = None  # the contact the agent is on (busy), if any
    offer: str | None = None  # the offer ringing the agent now, if any

    @classmethod
    def from_config(cls, config: InstanceConfig, login: str, now: float) -> AgentState:
        agent = config.agents[login]
        return cls(
            login=login,
            routing_profile=agent.routing_profile,
            queues=tuple(config.agent_queues(login)),
            status=AgentStatus(agent.status),
            idle_since=now,
        )

    @property
    def busy(self) -> bool:
        return self.contact is not None

    @property
    def staffed(self) -> bool:
        """Logged in (Amazon Connect's *Staffed*: any status but Offline)."""
        return self.status is not AgentStatus.OFFLINE

    @property
    def online(self) -> bool:
        """In a routable status (Amazon Connect's *Online*), on a contact or not."""
        return self.status is AgentStatus.AVAILABLE

    @property
    def available(self) -> bool:
        """Amazon Connect's *Available* metric: routable and not on a contact."""
        return self.status is AgentStatus.AVAILABLE and not self.busy

    @property
    def routable(self) -> bool:
        """May be offered a contact now: available and not already ringing."""
        return self.available and self.offer is None

    def takes(self, queue: str) -> bool:
        return queue in self.queues

    def set_status(self, status: AgentStatus, now: float) -> AgentStatusChanged | None:
        """Change the status; the event, or None when nothing changed."""
        if status is self.status:
            return None
        previous, self.status = self.status, status
        if status is AgentStatus.AVAILABLE and not self.busy:
            # Idle time counts from becoming routable, not from logging in yesterday.
            self.idle_since = now
        return AgentStatusChanged(self.login, status.value, previous.value, now)

    def mark_busy(self, contact: str) -> None:
        if self.contact is not None and self.contact != contact:
            raise CenterError(f"agent {self.login} is already on contact {self.contact}")
        self.contact = contact

    def mark_free(self, now: float) -> None:
        if self.contact is not None:
            self.contact = None
            self.idle_since = now
