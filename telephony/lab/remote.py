"""Scenarios against a running switch: ``qconnect test --target SIP_HOST:PORT --api URL``.

:class:`RemoteControl` is the runner's :class:`~telephony.lab.runner.Control` for a switch
some other process runs (``qconnect serve``). It uses only what users have:

* the phones register at ``--target`` with the passwords of the scenario's instance config,
  which must therefore be the running switch's config (the demo lab unless the scenario
  names another ``config:``);
* CCP actions go to the HTTP API as the agent (HTTP Basic, login and SIP password;
  docs/api.md), so a refusal arrives as the same status and message the embedded run gets;
* events come from every agent's WebSocket ``/api/agents/{agent}/events``, each event once
  (the same event reaches John's and Maria's sockets when both are on the call);
* contact trace records come from ``GET /api/contacts/{id}``, with the admin token when one
  is given (``--admin-token``), otherwise as an agent who was on the call.

What an agent's socket cannot carry (docs/events.md, "who receives what"): events that name
no agent and belong to a call no agent has joined yet, such as the welcome prompt and the
inbound flow's blocks before the contact is queued. Every assertion still works, because
the audio assertions read the phones' recordings and ``banner``/``banners`` read banners
(which always name an agent) and ``ctr`` reads the records; for the report, such events are
rebuilt from the records after the run (:meth:`RemoteControl.backfill`), on the switch's
clock. The one thing that cannot work remotely is a ``wait_for: {event: …}`` step waiting
for such a customer-only event while it happens; it times out (use a ``wait`` instead).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp

from telephony.api.commands import CONNECTION_ACTIONS, CONTACT_ACTIONS, Command
from telephony.center.config import InstanceConfig
from telephony.center.events import CenterError
from telephony.lab.runner import Control, EventListener, StepFailed
from telephony.lab.scenario import Scenario
from telephony.transport.base import Address

log = logging.getLogger("qconnect.lab.remote")

HTTP_TIMEOUT = aiohttp.ClientTimeout(total=10.0)
# Events that name no agent, so an agent's socket may miss them (docs/events.md); those
# naming an agent always reach that agent's socket and are never rebuilt.
BACKFILLED_KINDS = frozenset(
    {"flowBlock", "contactCreated", "contactQueued", "contactDequeued", "partyDisconnected"}
)
# Fields of an event that name other contacts of the same customer call.
_CONTACT_FIELDS = ("contact", "transferContact", "toContact", "initialContact", "previousContact")


class RemoteError(StepFailed):
    """The running switch cannot run this scenario: unreachable, another config, or busy
    (a StepFailed, so the run reports it as its error without a traceback)."""


@dataclass(frozen=True, slots=True)
class Target:
    """A running switch: its SIP address, its HTTP API, and optionally the admin token."""

    sip: Address
    api: str
    admin_token: str | None = None

    @classmethod
    def parse(cls, sip: str, api: str | None = None, admin_token: str | None = None) -> Target:
        """``sip`` is ``HOST:PORT`` (``[v6]:PORT``); ``api`` defaults to ``http://HOST:8080``,
        ``qconnect serve``'s default. Raises ValueError with a message for a person."""
        host, port = parse_host_port(sip)
        if api is None:
            api = f"http://{_url_host(host)}:8080"
        parts = urlsplit(api)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"--api: expected http://HOST:PORT, got {api!r}")
        return cls(Address("udp", _resolve(host, port), port), api.rstrip("/"), admin_token)


def parse_host_port(text: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[v6]:PORT`` -> (host, port); ValueError when it is neither."""
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--target: expected SIP_HOST:PORT, got {text!r}")
    return host, int(port)


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _resolve(host: str, port: int) -> str:
    try:
        info = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except socket.gaierror as exc:
        raise ValueError(f"--target: cannot resolve {host!r}: {exc.strerror}") from None
    return str(info[0][4][0])


def local_address_towards(host: str, port: int) -> str:
    """The local address the kernel would send from to reach ``host`` (no packet is sent):
    the phones must listen where the switch can send its requests and RTP."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        probe.connect((host, port))
        return str(probe.getsockname()[0])


def event_key(event: Mapping[str, Any]) -> str:
    """One event's identity: its whole JSON (the fan-out repeats it byte for byte)."""
    return json.dumps(event, sort_keys=True, default=str)


class RemoteControl:
    """The runner's view of a running ``qconnect serve`` (see the module docstring)."""

    shared = True

    def __init__(self, config: InstanceConfig, target: Target) -> None:
        self.config = config
        self.target = target
        self.passwords = {login: agent.password for login, agent in config.agents.items()}
        self._http: aiohttp.ClientSession | None = None
        self._sockets: dict[str, aiohttp.ClientWebSocketResponse] = {}
        self._readers: list[asyncio.Task[None]] = []
        self._listener: EventListener | None = None
        self._delivered: set[str] = set()
        self._prompts: set[tuple[str, str]] = set()  # (contact, prompt id) seen starting
        self._contacts: dict[str, None] = {}  # every contact id seen, in order
        self._stopping = False

    # --- Control ---

    @property
    def sip_address(self) -> Address:
        return self.target.sip

    @property
    def phone_bind(self) -> str:
        return local_address_towards(self.target.sip.host, self.target.sip.port)

    async def start(self) -> None:
        self._http = aiohttp.ClientSession(timeout=HTTP_TIMEOUT)
        for agent, wanted in ((a, c.status) for a, c in self.config.agents.items()):
            snapshot = await self._fetch_snapshot(agent)
            if snapshot["contacts"]:
                ids = ", ".join(c["id"] for c in snapshot["contacts"])
                raise RemoteError(
                    f"{agent} is still on contact(s) {ids} on {self.target.api}: "
                    "wait for them to end (or restart the switch) before running scenarios"
                )
            if snapshot["status"] != wanted:
                # A fresh embedded switch starts agents in their configured status.
                await self.act(agent, Command("setStatus", status=wanted))
        for agent in self.config.agents:
            await self._connect(agent)
            self._readers.append(asyncio.get_running_loop().create_task(self._read(agent)))

    def subscribe(self, listener: EventListener) -> None:
        self._listener = listener

    async def act(self, agent: str, command: Command) -> None:
        base = f"{self.target.api}/api/agents/{quote(agent, safe='')}"
        body: dict[str, Any] | None = None
        if command.action == "setStatus":
            method, url, body = "PUT", f"{base}/status", {"status": command.status}
        elif command.action in CONTACT_ACTIONS:
            assert command.contact is not None
            method = "POST"
            url = f"{base}/contacts/{quote(command.contact, safe='')}/"
            url += CONTACT_ACTIONS[command.action]
            if command.action == "quickConnect":
                body = {"name": command.name}
        elif command.action in CONNECTION_ACTIONS:
            assert command.connection is not None
            method = "POST"
            url = f"{base}/connections/{quote(command.connection, safe='')}/"
            url += CONNECTION_ACTIONS[command.action]
        else:
            raise CenterError(f"unknown action {command.action!r}", status=422)
        await self._request(method, url, self._basic(agent), body)

    async def snapshot(self, agent: str) -> dict[str, Any]:
        return await self._fetch_snapshot(agent)

    async def contact_records(self) -> list[dict[str, Any]]:
        """Every contact of this run's calls that the sockets named, and the contacts those
        records name in turn (a transfer's initial and previous contacts)."""
        pending = list(self._contacts)
        records: dict[str, dict[str, Any]] = {}
        tried: set[str] = set()
        while pending:
            contact = pending.pop(0)
            if contact in tried:
                continue
            tried.add(contact)
            record = await self._fetch_record(contact)
            if record is None:
                continue
            records[contact] = record
            named = [record.get("initialContact"), record.get("previousContact")]
            for entry in record.get("timeline", []):
                named.extend(entry.get(f) for f in _CONTACT_FIELDS[1:])
            pending.extend(c for c in named if isinstance(c, str) and c not in tried)
        # Creation order, as the embedded store lists them (ISO 8601 UTC sorts as text).
        return sorted(records.values(), key=lambda r: str(r.get("started")))

    def backfill(self, ctrs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Prompts and agent-less events of the records that no socket delivered."""
        missed: list[dict[str, Any]] = []
        for record in ctrs:
            contact = str(record.get("contact"))
            for prompt in record.get("prompts", []):
                if (contact, str(prompt.get("id"))) in self._prompts or not prompt.get("start"):
                    continue
                missed.append(
                    {
                        "type": "prompt",
                        "contact": contact,
                        "what": prompt.get("what"),
                        "to": prompt.get("to"),
                        "t": prompt["start"],
                        "end": prompt.get("end"),
                    }
                )
            for entry in record.get("timeline", []):
                kind = entry.get("kind")
                if kind not in BACKFILLED_KINDS or entry.get("agent") is not None:
                    continue
                fields = {k: v for k, v in entry.items() if k not in ("seq", "kind", "t")}
                event = {"type": kind, "contact": contact, **fields}
                if event_key(event) not in self._delivered:
                    missed.append({**event, "t": entry.get("t", entry.get("at"))})
        return missed

    async def stop(self) -> None:
        self._stopping = True
        for ws in self._sockets.values():
            with contextlib.suppress(Exception):
                await ws.close()
        for reader in self._readers:
            reader.cancel()
        for reader in self._readers:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader
        self._readers.clear()
        if self._http is not None:
            await self._http.close()
            self._http = None

    # --- the event stream ---

    async def _connect(self, agent: str) -> None:
        """Open the agent's socket and wait for its first snapshot: from then on no event
        concerning the agent can be missed (the server subscribes before that snapshot)."""
        assert self._http is not None
        url = f"{self.target.api}/api/agents/{quote(agent, safe='')}/events"
        try:
            ws = await self._http.ws_connect(
                url, headers={"Authorization": self._basic(agent)}, heartbeat=20.0
            )
        except aiohttp.WSServerHandshakeError as exc:
            raise RemoteError(
                f"{agent}'s event stream at {url}: {exc.status} {exc.message}"
            ) from None
        except aiohttp.ClientError as exc:
            raise RemoteError(f"cannot open {agent}'s event stream at {url}: {exc}") from None
        first = await ws.receive_json(timeout=10.0)
        self._take(first)
        self._sockets[agent] = ws

    async def _read(self, agent: str) -> None:
        while not self._stopping:
            ws = self._sockets[agent]
            async for message in ws:
                if message.type is aiohttp.WSMsgType.TEXT:
                    try:
                        self._take(json.loads(message.data))
                    except Exception:
                        log.exception("%s's event stream: bad message %r", agent, message.data)
            if self._stopping:
                return
            # Closed under us (1013: too slow, or the switch restarted): a fresh snapshot
            # on reconnect; events in between are lost to this socket.
            log.warning("%s's event stream closed (%s); reconnecting", agent, ws.close_code)
            await asyncio.sleep(0.2)
            try:
                await self._connect(agent)
            except RemoteError as exc:
                log.warning("%s", exc)
                await asyncio.sleep(1.0)

    def _take(self, message: dict[str, Any]) -> None:
        if message.get("type") == "snapshot":
            for contact in message.get("contacts", []):
                self._contacts.setdefault(str(contact["id"]), None)
            return
        key = event_key(message)
        if key in self._delivered:
            return  # the same event on another agent's socket
        self._delivered.add(key)
        for field in _CONTACT_FIELDS:
            value = message.get(field)
            if isinstance(value, str):
                self._contacts.setdefault(value, None)
        if message.get("type") == "promptStarted":
            self._prompts.add((str(message.get("contact")), str(message.get("prompt"))))
        if self._listener is not None:
            self._listener(message)

    # --- HTTP ---

    def _basic(self, agent: str) -> str:
        password = self.passwords.get(agent)
        if password is None:
            raise CenterError(f"{agent!r} is not an agent of this scenario's config", 404)
        return "Basic " + base64.b64encode(f"{agent}:{password}".encode()).decode("ascii")

    async def _request(
        self, method: str, url: str, authorization: str, body: dict[str, Any] | None = None
    ) -> Any:
        """The JSON answer; CenterError with the API's message and status when refused."""
        assert self._http is not None, "start() first"
        try:
            async with self._http.request(
                method, url, json=body, headers={"Authorization": authorization}
            ) as response:
                text = await response.text()
                try:
                    data = json.loads(text) if text else None
                except json.JSONDecodeError:
                    data = None
                if response.status >= 400:
                    message = data.get("error") if isinstance(data, dict) else None
                    raise CenterError(message or f"{response.status} {text[:200]}", response.status)
                return data
        except aiohttp.ClientError as exc:
            raise RemoteError(f"{method} {url}: {exc}") from None

    async def _fetch_snapshot(self, agent: str) -> dict[str, Any]:
        url = f"{self.target.api}/api/agents/{quote(agent, safe='')}"
        try:
            snapshot = await self._request("GET", url, self._basic(agent))
        except CenterError as exc:
            if exc.status in (401, 404):
                raise RemoteError(
                    f"the running switch at {self.target.api} does not know agent {agent} "
                    f"with the password of this scenario's config ({exc}): run the scenario "
                    "against a switch serving the same instance config"
                ) from None
            raise
        if not isinstance(snapshot, dict):
            raise RemoteError(f"GET {url}: not a snapshot: {snapshot!r}")
        return snapshot

    async def _fetch_record(self, contact: str) -> dict[str, Any] | None:
        url = f"{self.target.api}/api/contacts/{quote(contact, safe='')}"
        if self.target.admin_token:
            credentials = [f"Bearer {self.target.admin_token}"]
        else:  # any agent who was on the call may read it
            credentials = [self._basic(agent) for agent in self.passwords]
        for authorization in credentials:
            try:
                record = await self._request("GET", url, authorization)
            except CenterError as exc:
                if exc.status in (403, 404):
                    continue
                log.warning("contact record %s: %s (%s)", contact, exc, exc.status)
                return None
            return record if isinstance(record, dict) else None
        return None


def remote_controls(target: Target) -> Callable[[Scenario], Control]:
    """For ``telephony.lab.demo.run``: each scenario's control, on ``target``."""

    def control(scenario: Scenario) -> Control:
        return RemoteControl(scenario.instance_config, target)

    return control
