"""The MQTT bus against a real mosquitto (started here) and against the embedded amqtt
broker: retained state (also after the broker restarts), commands that drive real CCP
actions, and malformed commands answered on the error topic without changing anything."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from telephony.api.mqtt import EmbeddedBroker
from tests.api.support import Lab, Mosquitto, start_lab, wait_for

PREFIX = "lab7/"


class Watcher:
    """An MQTT client that records every message under the prefix."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.messages: list[tuple[str, Any, bool]] = []
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())
        await asyncio.wait_for(self._ready.wait(), 5)

    async def _run(self) -> None:
        async with aiomqtt.Client(self.host, self.port) as client:
            await client.subscribe(PREFIX + "#", qos=1)
            self._ready.set()
            async for message in client.messages:
                payload = message.payload
                assert isinstance(payload, bytes)
                try:
                    body: Any = json.loads(payload)
                except (json.JSONDecodeError, UnicodeDecodeError):
                    body = payload.decode("utf-8", "replace")
                self.messages.append((str(message.topic), body, bool(message.retain)))

    def on(self, topic: str) -> list[Any]:
        return [body for t, body, _ in self.messages if t == PREFIX + topic]

    def retained(self, topic: str) -> list[Any]:
        return [body for t, body, retain in self.messages if t == PREFIX + topic and retain]

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


async def publish(port: int, topic: str, payload: bytes | str, *, retain: bool = False) -> None:
    async with aiomqtt.Client("127.0.0.1", port) as client:
        await client.publish(PREFIX + topic, payload, qos=1, retain=retain)


@pytest.fixture(params=["embedded", "mosquitto"])
async def bus_lab(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[Lab, Any]]:
    """A switch on the embedded broker, or on a real mosquitto; yields (lab, broker)."""
    broker: Any
    if request.param == "mosquitto":
        broker = request.getfixturevalue("mosquitto")
        mqtt = f"mqtt://127.0.0.1:{broker.port}"
    else:
        broker = None
        mqtt = "embedded"
    switch, api = await start_lab(tmp_path, mqtt=mqtt, mqtt_prefix=PREFIX)
    if broker is None:
        assert api.broker is not None
        broker = api.broker
    lab = Lab(switch, api)
    assert api.bus is not None
    await asyncio.wait_for(api.bus.connected.wait(), 10)
    await asyncio.wait_for(api.bus.idle.wait(), 10)  # retained states are on the broker
    yield lab, broker
    await lab.close()
    await api.stop()
    await switch.stop()


def port_of(lab: Lab) -> int:
    address = lab.api.mqtt_address
    assert address is not None
    return address[1]


async def test_retained_state_and_commands(bus_lab: tuple[Lab, Any]) -> None:
    lab, _ = bus_lab
    port = port_of(lab)
    watcher = Watcher("127.0.0.1", port)
    await watcher.start()
    # A client that connects later gets every agent's state, retained, and the switch's.
    await wait_for(
        lambda: watcher.retained("agents/john/state") and watcher.retained("agents/maria/state"),
        5,
        "retained states",
    )
    assert watcher.retained("agents/john/state")[-1] == {
        "agent": "john",
        "status": "Available",
        "contacts": [],
    }
    assert watcher.retained("switch/status") == ["online"]

    # A command drives the action: state, event, and the center agree.
    await publish(
        port, "agents/john/commands", json.dumps({"action": "setStatus", "status": "Offline"})
    )
    await wait_for(
        lambda: watcher.on("agents/john/state")[-1]["status"] == "Offline", 5, "Offline state"
    )
    [event] = watcher.on("agents/john/events")
    assert event["type"] == "agentStatus" and event["status"] == "Offline"
    assert lab.switch.center.snapshot("john")["status"] == "Offline"
    states_before = len(watcher.on("agents/john/state"))

    # Malformed or refused commands: answered on the error topic, nothing changes.
    bad: list[tuple[bytes | str, int]] = [
        (b"\xff\xfe not json", 400),
        ("[1, 2, 3]", 400),
        ('{"action": "teleport", "id": "t1"}', 422),
        ('{"action": "quickConnect", "contact": "c1"}', 422),
        ('{"action": "setStatus", "status": "Lunch", "id": "s1"}', 422),
        ('{"action": "accept", "contact": "no-such-contact", "id": "a1"}', 404),
        ('{"action": "hold", "connection": "no-such-connection"}', 404),
    ]
    for payload, _ in bad:
        await publish(port, "agents/john/commands", payload)
    await wait_for(lambda: len(watcher.on("agents/john/errors")) == len(bad), 5, "errors")
    errors = watcher.on("agents/john/errors")
    assert [e["status"] for e in errors] == [status for _, status in bad]
    for error in errors:
        assert error["type"] == "commandError" and error["agent"] == "john" and error["error"]
    assert [e["id"] for e in errors][2:6] == ["t1", None, "s1", "a1"]
    assert errors[2]["command"] == {"action": "teleport", "id": "t1"}
    assert len(watcher.on("agents/john/state")) == states_before  # nothing changed

    # A retained command would replay on every reconnect: when the switch (re)subscribes
    # and the broker hands it the retained command, it is refused, not executed.
    bus = lab.api.bus
    assert bus is not None
    await bus.stop()
    command = json.dumps({"action": "setStatus", "status": "Available", "id": "r1"})
    await publish(port, "agents/john/commands", command, retain=True)
    await bus.start()
    await wait_for(lambda: len(watcher.on("agents/john/errors")) > len(bad), 5, "retained")
    # (amqtt hands a retained message over twice on one subscribe; mosquitto once)
    for refused in watcher.on("agents/john/errors")[len(bad) :]:
        assert "retain" in refused["error"] and refused["id"] == "r1"
    await publish(port, "agents/john/commands", b"", retain=True)  # clear it from the broker
    # Commands for someone who is not a configured agent are ignored, not answered.
    await publish(
        port, "agents/mallory/commands", json.dumps({"action": "setStatus", "status": "Offline"})
    )
    await asyncio.sleep(0.3)
    assert watcher.on("agents/mallory/errors") == []
    assert lab.switch.center.snapshot("john")["status"] == "Offline"
    assert watcher.on("agents/john/state")[-1]["status"] == "Offline"
    await watcher.stop()


async def test_state_is_republished_after_the_broker_restarts(bus_lab: tuple[Lab, Any]) -> None:
    lab, broker = bus_lab
    port = port_of(lab)
    bus = lab.api.bus
    assert bus is not None and bus.connections == 1
    # The broker goes away (neither keeps retained messages across a restart here).
    if isinstance(broker, Mosquitto):
        broker.stop()
    else:
        assert isinstance(broker, EmbeddedBroker)
        await broker.stop()
    await wait_for(lambda: not bus.connected.is_set(), 10, "the bus to notice")
    # The switch keeps working meanwhile: the API changes John's status.
    status, _, _ = await lab.request(
        "PUT", "/api/agents/john/status", agent="john", json={"status": "Offline"}
    )
    assert status == 200
    await asyncio.sleep(0.5)
    if isinstance(broker, Mosquitto):
        broker.start()
    else:
        await broker.start()
    await wait_for(lambda: bus.connections == 2, 15, "the bus to reconnect")
    await asyncio.wait_for(bus.idle.wait(), 5)
    watcher = Watcher("127.0.0.1", port)
    await watcher.start()
    await wait_for(lambda: watcher.retained("agents/john/state"), 5, "retained state")
    assert watcher.retained("agents/john/state")[-1]["status"] == "Offline"
    assert watcher.retained("agents/maria/state")[-1]["status"] == "Available"
    # Commands work again over the new connection.
    await publish(
        port, "agents/john/commands", json.dumps({"action": "setStatus", "status": "Available"})
    )
    await wait_for(
        lambda: lab.switch.center.snapshot("john")["status"] == "Available", 5, "Available"
    )
    await watcher.stop()


async def test_commands_drive_accept_and_quick_connect(bus_lab: tuple[Lab, Any]) -> None:
    lab, _ = bus_lab
    port = port_of(lab)
    watcher = Watcher("127.0.0.1", port)
    await watcher.start()
    john, maria = await lab.phone("john"), await lab.phone("maria")
    customer, ringing, contact = await lab.offered_call(john)
    await publish(
        port, "agents/john/commands", json.dumps({"action": "accept", "contact": contact})
    )
    await wait_for(lambda: "Connecting" in lab.banners("john"), 5, "accepted over MQTT")
    await ringing.answer()
    await wait_for(lambda: "Connected" in lab.banners("john"), 10, "john Connected")

    def john_banners() -> list[tuple[str, str]]:
        states = watcher.on("agents/john/state")
        if not states or not states[-1]["contacts"]:
            return []
        return [(c["party"], c["banner"]) for c in states[-1]["contacts"][0]["connections"]]

    await wait_for(lambda: john_banners() == [("customer", "Connected")], 5, "state Connected")
    command = {"action": "quickConnect", "contact": contact, "name": "Maria", "id": "q1"}
    await publish(port, "agents/john/commands", json.dumps(command))
    await wait_for(
        lambda: john_banners() == [("customer", "On hold"), ("maria", "Connected")],
        5,
        "quick connect in John's state",
    )
    await asyncio.wait_for(maria.incoming.get(), 15)
    transfer = lab.offered_to("maria")
    await wait_for(lambda: watcher.on("agents/maria/state")[-1]["contacts"], 5, "maria offered")
    # The same command twice is refused now (one third party at a time).
    await publish(port, "agents/john/commands", json.dumps(command))
    await wait_for(lambda: watcher.on("agents/john/errors"), 5, "409 on the error topic")
    assert watcher.on("agents/john/errors")[0]["status"] == 409
    assert watcher.on("agents/john/errors")[0]["id"] == "q1"
    # Contact topics carry the contact's events: the transfer flow's blocks and prompts.
    flow = [e for e in watcher.on(f"contacts/{transfer}/events") if e["type"] == "flowBlock"]
    await wait_for(
        lambda: [e for e in watcher.on(f"contacts/{transfer}/events") if e["type"] == "flowBlock"],
        10,
        "the transfer flow's blocks",
    )
    flow = [e for e in watcher.on(f"contacts/{transfer}/events") if e["type"] == "flowBlock"]
    assert flow[0]["flow"] == "Default agent transfer"
    assert any(e["type"] == "quickConnect" for e in watcher.on(f"contacts/{contact}/events"))
    assert any(e["type"] == "offerCreated" for e in watcher.on("agents/maria/events"))
    await customer.hangup()
    await watcher.stop()
