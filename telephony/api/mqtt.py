"""The MQTT bus (aiomqtt): CCP state and events out, CCP commands in.

Topics under a configurable prefix (default ``qconnect/``; ARCHITECTURE.md, docs/mqtt.md):

- ``agents/{agent}/state``    retained snapshot, on every change
- ``agents/{agent}/events``   one JSON event per change that concerns the agent
- ``contacts/{contact}/events`` every event of the contact (flow blocks, prompts, holds …)
- ``agents/{agent}/commands`` in: ``{"action": "quickConnect", "contact": …, "name": …}``
- ``agents/{agent}/errors``   out: why a command was refused (it changed nothing)
- ``switch/status``           retained ``online``; the broker publishes ``offline`` (our will)

Trust model: an MQTT command carries no password. Whoever may publish on
``agents/{agent}/commands`` acts as that agent, so the broker's own authentication and
ACLs protect the command topics (docs/mqtt.md has a mosquitto ACL). The switch only takes
commands for configured agent logins and ignores retained commands, which a broker would
otherwise replay on every reconnect.

Broker loss never stops the switch: publishing is decoupled from the center by an outbox,
the connection is retried with exponential backoff, and on reconnect the retained state of
every agent is republished from the center's current snapshots (stale queued states are
dropped; queued events are delivered late, up to ``OUTBOX_LIMIT``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import aiomqtt

from telephony.api.commands import ApiError, execute, parse_command
from telephony.api.hub import Delivery, EventHub
from telephony.center.events import CenterError, iso8601

if TYPE_CHECKING:
    from amqtt.broker import Broker

    from telephony.center.executor import ContactCenter

log = logging.getLogger("qconnect.mqtt")

OUTBOX_LIMIT = 10_000


class MqttConfigError(ValueError):
    """A ``--mqtt`` value that names no broker we can use."""


def parse_broker_url(url: str) -> tuple[str, int]:
    """``mqtt://host:port`` (port defaults to 1883)."""
    parts = urlsplit(url)
    if parts.scheme != "mqtt" or not parts.hostname:
        raise MqttConfigError(f"expected embedded, off or mqtt://host:port, got {url!r}")
    try:
        port = parts.port or 1883
    except ValueError:
        raise MqttConfigError(f"bad port in {url!r}") from None
    return parts.hostname, port


@dataclass(frozen=True, slots=True)
class MqttSettings:
    host: str
    port: int
    prefix: str = "qconnect/"
    username: str | None = None
    password: str | None = None
    reconnect_min: float = 0.25
    reconnect_max: float = 10.0


@dataclass(frozen=True, slots=True)
class _Out:
    topic: str
    payload: bytes
    retain: bool
    state_of: str | None = None  # the agent whose retained state this is


class MqttBus:
    def __init__(self, center: ContactCenter, hub: EventHub, settings: MqttSettings) -> None:
        self.center = center
        self.hub = hub
        self.settings = settings
        self.prefix = settings.prefix
        self.connected = asyncio.Event()
        self.connections = 0  # successful connects so far (tests watch reconnects)
        self.idle = asyncio.Event()  # connected and everything queued has been published
        self._outbox: deque[_Out] = deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._client: aiomqtt.Client | None = None
        self._published: dict[str, dict[str, Any]] = {}  # agent -> last state sent
        self._client_id = f"qconnect-switch-{uuid.uuid4().hex[:8]}"

    # --- lifecycle ---

    async def start(self) -> None:
        self._unsubscribe = self.hub.subscribe(self._on_delivery)
        self._task = asyncio.get_running_loop().create_task(self._run(), name="mqtt-bus")

    async def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
        if self._client is not None:
            # a clean disconnect sends no will: say offline ourselves
            with contextlib.suppress(aiomqtt.MqttError, TimeoutError):
                await asyncio.wait_for(
                    self._client.publish(
                        self.topic("switch", "status"), b"offline", qos=1, retain=True
                    ),
                    2.0,
                )
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    # --- topics ---

    def topic(self, *parts: str) -> str:
        return self.prefix + "/".join(parts)

    # --- out: the hub's deliveries into the outbox ---

    def _on_delivery(self, delivery: Delivery) -> None:
        payload = _json(delivery.event)
        for agent in sorted(delivery.agents):
            self._push(_Out(self.topic("agents", agent, "events"), payload, False))
        if delivery.contact is not None:
            self._push(_Out(self.topic("contacts", delivery.contact, "events"), payload, False))
        for agent, view in delivery.views.items():
            if self._published.get(agent) != view.snapshot:
                self._published[agent] = view.snapshot
                self._push(self._state(agent, view.snapshot))

    def _state(self, agent: str, snapshot: dict[str, Any]) -> _Out:
        return _Out(self.topic("agents", agent, "state"), _json(snapshot), True, agent)

    def _push(self, out: _Out) -> None:
        if out.state_of is not None:
            # only the newest state of an agent matters: drop the queued older one
            stale = [o for o in self._outbox if o.state_of == out.state_of]
            for o in stale:
                self._outbox.remove(o)
        self._outbox.append(out)
        self.idle.clear()
        while len(self._outbox) > OUTBOX_LIMIT:
            dropped = self._outbox.popleft()
            log.warning("mqtt outbox full: dropped %s", dropped.topic)
        self._wake.set()

    # --- the connection, with backoff ---

    async def _run(self) -> None:
        delay = self.settings.reconnect_min
        status = self.topic("switch", "status")
        while True:
            try:
                async with aiomqtt.Client(
                    self.settings.host,
                    self.settings.port,
                    identifier=self._client_id,
                    username=self.settings.username,
                    password=self.settings.password,
                    will=aiomqtt.Will(status, b"offline", qos=1, retain=True),
                    timeout=5.0,
                    keepalive=10,
                ) as client:
                    self._client = client
                    await client.subscribe(self.topic("agents", "+", "commands"), qos=1)
                    await client.publish(status, b"online", qos=1, retain=True)
                    self._republish_states()
                    self.connections += 1
                    self.connected.set()
                    delay = self.settings.reconnect_min
                    log.info(
                        "MQTT connected to %s:%d (prefix %r)",
                        self.settings.host,
                        self.settings.port,
                        self.prefix,
                    )
                    async with asyncio.TaskGroup() as group:
                        group.create_task(self._publisher(client))
                        group.create_task(self._commands(client))
            except* aiomqtt.MqttError as group_exc:
                log.warning(
                    "MQTT broker %s:%d lost or unreachable (%s); retrying in %.1f s",
                    self.settings.host,
                    self.settings.port,
                    group_exc.exceptions[0],
                    delay,
                )
            except* Exception:
                log.exception("MQTT bus failed; reconnecting in %.1f s", delay)
            finally:
                self._client = None
                self.connected.clear()
                self.idle.clear()
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.settings.reconnect_max)

    def _republish_states(self) -> None:
        """After (re)connecting: the broker may have lost its retained messages (a restart
        without persistence), so every agent's state goes out again, fresh."""
        for stale in [o for o in self._outbox if o.state_of is not None]:
            self._outbox.remove(stale)
        fresh: list[_Out] = []
        for agent in sorted(self.hub.agents):
            snapshot = self.hub.view(agent).snapshot
            self._published[agent] = snapshot
            fresh.append(self._state(agent, snapshot))
        self._outbox.extendleft(reversed(fresh))
        self._wake.set()

    async def _publisher(self, client: aiomqtt.Client) -> None:
        while True:
            while not self._outbox:
                self.idle.set()
                self._wake.clear()
                await self._wake.wait()
            self.idle.clear()
            out = self._outbox.popleft()
            try:
                await client.publish(out.topic, out.payload, qos=1, retain=out.retain)
            except aiomqtt.MqttError:
                self._outbox.appendleft(out)  # not sent: first in line after reconnecting
                raise

    # --- in: commands ---

    async def _commands(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            parts = str(message.topic)[len(self.prefix) :].split("/")
            if len(parts) != 3 or parts[0] != "agents" or parts[2] != "commands":
                continue
            agent = parts[1]
            if agent not in self.hub.agents:
                log.warning("MQTT command for unknown agent %r ignored", agent)
                continue
            payload = message.payload
            raw = payload if isinstance(payload, bytes | str) else str(payload or "")
            if message.retain:
                self._refuse(
                    agent, raw, "retained commands are ignored (publish without retain)", 400
                )
                continue
            try:
                command = parse_command(raw)
            except ApiError as exc:
                self._refuse(agent, raw, exc.message, exc.status)
                continue
            try:
                execute(self.center, agent, command)
            except CenterError as exc:
                self._refuse(agent, raw, exc.message, exc.status, command.id)
            else:
                log.info("mqtt: %s %s", agent, command.describe())

    def _refuse(
        self, agent: str, raw: bytes | str, message: str, status: int, tag: str | None = None
    ) -> None:
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
        try:
            command: Any = json.loads(text)
        except json.JSONDecodeError:
            command = text
        if tag is None and isinstance(command, dict) and isinstance(command.get("id"), str):
            tag = command["id"]
        error = {
            "type": "commandError",
            "agent": agent,
            "error": message,
            "status": status,
            "command": command,
            "id": tag,
            "at": iso8601(time.time()),
        }
        log.info("mqtt: %s's command refused (%d): %s", agent, status, message)
        self._push(_Out(self.topic("agents", agent, "errors"), _json(error), False))


def _json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


# --- the embedded broker ---


class EmbeddedBroker:
    """amqtt inside the switch's process, so the demo needs nothing installed.

    Anonymous, as a lab broker; bind it to loopback (the default ``--bind``) unless the
    network it listens on is trusted (docs/mqtt.md).
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 1883) -> None:
        self.host = host
        self.port = port
        self._broker: Broker | None = None

    async def start(self) -> None:
        from amqtt.broker import Broker

        for name in ("amqtt", "transitions"):
            logging.getLogger(name).setLevel(logging.WARNING)
        port = self.port or _free_port(self.host)
        broker = Broker(
            {
                "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{port}"}},
                "plugins": {
                    "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}
                },
            }
        )
        try:
            await broker.start()
        except Exception as exc:  # amqtt's BrokerError wraps the socket's OSError
            raise OSError(f"embedded MQTT broker on {self.host}:{port}: {exc}") from exc
        self._broker = broker
        self.port = port
        log.info("embedded MQTT broker (amqtt) on %s:%d", self.host, port)

    async def stop(self) -> None:
        if self._broker is not None:
            with contextlib.suppress(Exception):
                await self._broker.shutdown()
            self._broker = None


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])
