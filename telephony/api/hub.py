"""Who hears about which event: the fan-out from the contact center to WebSockets and MQTT.

The center publishes every change as one JSON event (telephony/center/events.py). The hub
works out which agents it concerns and whose CCP state it changed, once, so the WebSocket
and the MQTT bus deliver the same thing (ARCHITECTURE.md: "the same events as MQTT").

An event concerns an agent when it names them (``agent``, or a prompt played ``to`` them),
or when it names nobody and belongs to a customer call that agent is or was on: flow blocks
and prompts of a quick connect's transfer flow reach the transferring agent's timeline, and
the customer's hold music reaches every agent on that call. Banners name the agent whose
CCP shows them, so John's banners never appear in Maria's CCP.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from telephony.center.events import CenterError

if TYPE_CHECKING:
    from telephony.center.executor import ContactCenter

log = logging.getLogger("qconnect.api")

# Customer calls whose agents the hub remembers; older ones are long over.
MAX_CALLS = 10_000
# Messages a WebSocket client may fall behind by before it is closed (it reconnects).
HUB_QUEUE_LIMIT = 1000


@dataclass(frozen=True, slots=True)
class AgentView:
    """An agent's CCP state: the contract snapshot, and what each contact allows now."""

    snapshot: dict[str, Any]
    actions: dict[str, Any]

    def message(self) -> dict[str, Any]:
        """The WebSocket's ``snapshot`` message: the snapshot's fields, plus ``actions``."""
        return {"type": "snapshot", **self.snapshot, "actions": self.actions}


@dataclass(frozen=True, slots=True)
class Delivery:
    """One center event, with the agents it concerns and the CCP states it changed."""

    event: dict[str, Any]
    contact: str | None
    agents: frozenset[str]
    views: Mapping[str, AgentView]


Subscriber = Callable[[Delivery], None]


class EventHub:
    def __init__(self, center: ContactCenter) -> None:
        self.center = center
        self.agents: frozenset[str] = frozenset(center.config.agents)
        self._calls: OrderedDict[str, set[str]] = OrderedDict()  # initial contact -> agents
        self._views: dict[str, AgentView] = {}
        self._subscribers: list[Subscriber] = []
        self._unsubscribe: Callable[[], None] | None = None

    def start(self) -> None:
        for agent in self.agents:
            self._views[agent] = self._view(agent)
        self._unsubscribe = self.center.subscribe(self._on_event)

    def close(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        self._subscribers.clear()

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        self._subscribers.append(subscriber)

        def unsubscribe() -> None:
            if subscriber in self._subscribers:
                self._subscribers.remove(subscriber)

        return unsubscribe

    def view(self, agent: str) -> AgentView:
        """The agent's CCP state now (raises CenterError 404 for an unknown agent)."""
        return self._view(agent)

    def call_agents(self, contact: str) -> frozenset[str]:
        """Every agent that is or was on the customer call of ``contact``."""
        initial = self._initial(contact)
        return frozenset(self._calls.get(initial, ())) if initial is not None else frozenset()

    # --- internals ---

    def _view(self, agent: str) -> AgentView:
        snapshot = self.center.snapshot(agent)
        actions: dict[str, Any] = {}
        for contact in snapshot["contacts"]:
            try:
                actions[contact["id"]] = self.center.model.available_actions(agent, contact["id"])
            except CenterError:
                actions[contact["id"]] = {"contact": [], "connections": {}}
        return AgentView(snapshot, actions)

    def _initial(self, contact: str) -> str | None:
        try:
            return self.center.model.contact(contact).initial_contact_id
        except CenterError:
            return None

    def _on_event(self, event: dict[str, Any]) -> None:
        contact = event.get("contact")
        named = {
            value
            for key in ("agent", "to", "party")
            if isinstance(value := event.get(key), str) and value in self.agents
        }
        call: set[str] = set()
        if isinstance(contact, str):
            initial = self._initial(contact)
            if initial is not None:
                call = self._calls.setdefault(initial, set())
                self._calls.move_to_end(initial)
                owner = self.center.model.contact(contact).agent
                call.update(a for a in (event.get("agent"), owner) if a in self.agents)
                while len(self._calls) > MAX_CALLS:
                    self._calls.popitem(last=False)
        agent = event.get("agent")
        concerned = {agent} if agent in self.agents else call | named
        changed: dict[str, AgentView] = {}
        for login in concerned | call | named:
            try:
                view = self._view(login)
            except CenterError:
                continue
            if self._views.get(login) != view:
                self._views[login] = view
                changed[login] = view
        delivery = Delivery(
            event, contact if isinstance(contact, str) else None, frozenset(concerned), changed
        )
        for subscriber in list(self._subscribers):
            try:
                subscriber(delivery)
            except Exception:
                log.exception("event subscriber failed")
