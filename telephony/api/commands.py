"""The CCP's actions as commands: one table shared by the HTTP API and the MQTT bus.

A command names an ``action`` (the MQTT spelling, camelCase) and what it acts on. HTTP
routes build the same :class:`Command` from their path and body, so an action means the
same thing whichever way it arrives (ARCHITECTURE.md: "the API's actions as JSON").
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from telephony.center.executor import ContactCenter


class ApiError(Exception):
    """A request the interfaces refuse before it reaches the contact center.

    ``status`` is the HTTP status to answer with: 400 unreadable body, 401 no or bad
    credentials, 403 someone else's resource, 404 no such route, 422 a body that reads
    but does not say what an action needs. The center's own refusals are
    :class:`telephony.center.events.CenterError` and carry their status the same way.
    """

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(frozen=True, slots=True)
class Command:
    """One CCP action by one agent. ``id`` is the caller's own tag, echoed in errors."""

    action: str
    contact: str | None = None
    connection: str | None = None
    name: str | None = None  # quickConnect: the quick connect's name
    status: str | None = None  # setStatus: Available | Offline
    id: str | None = None

    def describe(self) -> str:
        """``quickConnect contact=… name=Maria`` for the log."""
        parts = [self.action]
        for key in ("contact", "connection", "name", "status", "id"):
            value = getattr(self, key)
            if value is not None:
                parts.append(f"{key}={value}")
        return " ".join(parts)


# action -> the field it needs (besides the agent), and the HTTP path segment it has.
CONTACT_ACTIONS: Mapping[str, str] = {
    "accept": "accept",
    "reject": "reject",
    "quickConnect": "quick-connect",
    "conference": "conference",
    "holdAll": "hold-all",
    "swap": "swap",
    "leave": "leave",
}
CONNECTION_ACTIONS: Mapping[str, str] = {"hold": "hold", "resume": "resume", "end": "end"}
AGENT_ACTIONS: frozenset[str] = frozenset({"setStatus"})
ACTIONS: tuple[str, ...] = (*AGENT_ACTIONS, *CONTACT_ACTIONS, *CONNECTION_ACTIONS)

CONTACT_PATHS: Mapping[str, str] = {path: action for action, path in CONTACT_ACTIONS.items()}
CONNECTION_PATHS: Mapping[str, str] = {path: action for action, path in CONNECTION_ACTIONS.items()}


def _text(body: Mapping[str, Any], key: str, action: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value:
        raise ApiError(f"{action} needs {key!r} (a non-empty string)", status=422)
    return value


def parse_command(payload: bytes | str | Mapping[str, Any]) -> Command:
    """A command from an MQTT payload (JSON object): 400 if it is not JSON, 422 if it
    does not name a known action with what that action needs."""
    if isinstance(payload, bytes | str):
        try:
            body = json.loads(payload)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ApiError(f"command is not JSON: {exc}", status=400) from None
    else:
        body = payload
    if not isinstance(body, Mapping):
        raise ApiError("command must be a JSON object", status=400)
    action = body.get("action")
    if not isinstance(action, str) or action not in ACTIONS:
        known = ", ".join(ACTIONS)
        raise ApiError(f"unknown action {action!r} (one of {known})", status=422)
    tag = body.get("id")
    tag = str(tag) if isinstance(tag, str | int) else None
    if action in AGENT_ACTIONS:
        return Command(action, status=_text(body, "status", action), id=tag)
    if action in CONNECTION_ACTIONS:
        return Command(action, connection=_text(body, "connection", action), id=tag)
    contact = _text(body, "contact", action)
    name = _text(body, "name", action) if action == "quickConnect" else None
    return Command(action, contact=contact, name=name, id=tag)


def execute(center: ContactCenter, agent: str, command: Command) -> None:
    """Do ``command`` as ``agent``; raises CenterError (404/403/409/422) when the center
    refuses it. The model itself refuses another agent's contact or connection (403)."""
    contact_actions: dict[str, Callable[[str, str], None]] = {
        "accept": center.accept,
        "reject": center.reject,
        "conference": center.conference,
        "holdAll": center.hold_all,
        "swap": center.swap,
        "leave": center.leave,
    }
    connection_actions: dict[str, Callable[[str, str], None]] = {
        "hold": center.hold,
        "resume": center.resume,
        "end": center.end_connection,
    }
    if command.action == "setStatus":
        assert command.status is not None
        center.set_status(agent, command.status)
    elif command.action == "quickConnect":
        assert command.contact is not None and command.name is not None
        center.quick_connect(agent, command.contact, command.name)
    elif command.action in contact_actions:
        assert command.contact is not None
        contact_actions[command.action](agent, command.contact)
    elif command.action in connection_actions:
        assert command.connection is not None
        connection_actions[command.action](agent, command.connection)
    else:  # pragma: no cover - parse_command admits only ACTIONS
        raise ApiError(f"unknown action {command.action!r}", status=422)
