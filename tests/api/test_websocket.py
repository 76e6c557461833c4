"""WS /api/agents/{agent}/events: a snapshot on connect, then the agent's events, each
change followed by a fresh snapshot; auth like every route; one agent never sees another's
banners."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from tests.api.support import ADMIN_TOKEN, Lab, wait_for


class Stream:
    """Collects one WebSocket's messages in the background."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.messages: list[dict[str, Any]] = []
        self.task = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        async for message in self.ws:
            if message.type is aiohttp.WSMsgType.TEXT:
                self.messages.append(message.json())

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m["type"] == kind]

    def last_snapshot(self) -> dict[str, Any]:
        return self.of("snapshot")[-1]

    async def close(self) -> None:
        await self.ws.close()
        await self.task


async def open_stream(lab: Lab, agent: str, headers: dict[str, str]) -> Stream:
    ws = await lab.http.ws_connect(lab.url(f"/api/agents/{agent}/events"), headers=headers)
    stream = Stream(ws)
    await wait_for(lambda: stream.messages, 5, "the first snapshot")
    return stream


async def test_auth_and_first_snapshot(lab: Lab) -> None:
    for headers, status in (
        ({}, 401),
        (lab.auth("john", "wrong"), 401),
        (lab.auth("maria"), 403),
        ({"Authorization": "Bearer nope"}, 401),
    ):
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await lab.http.ws_connect(lab.url("/api/agents/john/events"), headers=headers)
        assert refused.value.status == status
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await lab.http.ws_connect(
            lab.url("/api/agents/nobody/events"),
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        )
    assert refused.value.status == 404

    john = await open_stream(lab, "john", lab.auth("john"))
    assert john.messages[0] == {
        "type": "snapshot",
        "agent": "john",
        "status": "Available",
        "contacts": [],
        "actions": {},
    }
    admin = await open_stream(lab, "john", {"Authorization": f"Bearer {ADMIN_TOKEN}"})
    # The CCP's way: a session cookie from POST /api/session, no header on the socket.
    status, _, _ = await lab.request("POST", "/api/session", agent="john")
    assert status == 200
    cookie = await open_stream(lab, "john", {})

    status, _, _ = await lab.request(
        "PUT", "/api/agents/john/status", agent="john", json={"status": "Offline"}
    )
    assert status == 200
    for stream in (john, admin, cookie):
        await wait_for(lambda s=stream: s.of("agentStatus"), 5, "agentStatus")  # type: ignore[misc]
        event = stream.of("agentStatus")[0]
        assert event["agent"] == "john" and event["status"] == "Offline"
        assert event["previous"] == "Available" and event["at"].endswith("Z")
        await wait_for(lambda s=stream: len(s.of("snapshot")) == 2, 5, "second snapshot")  # type: ignore[misc]
        assert stream.last_snapshot()["status"] == "Offline"
        # the event comes before the snapshot it caused
        kinds = [m["type"] for m in stream.messages]
        assert kinds == ["snapshot", "agentStatus", "snapshot"]
        await stream.close()


async def test_contact_events_reach_the_right_agent(lab: Lab) -> None:
    john = await open_stream(lab, "john", lab.auth("john"))
    maria = await open_stream(lab, "maria", lab.auth("maria"))
    john_phone = await lab.phone("john")
    customer, ringing, contact = await lab.offered_call(john_phone)
    await wait_for(lambda: john.of("offerCreated"), 5, "offerCreated on John's socket")
    offered = john.last_snapshot()
    assert offered["contacts"][0]["id"] == contact
    assert offered["contacts"][0]["connections"][0]["banner"] == "Incoming"
    assert offered["actions"][contact]["contact"] == ["accept", "reject"]

    await ringing.answer()
    await wait_for(
        lambda: any(m["banner"] == "Connected" for m in john.of("banner")), 15, "Connected"
    )
    await wait_for(
        lambda: john.last_snapshot()["contacts"][0]["connections"][0]["banner"] == "Connected",
        5,
        "a Connected snapshot",
    )
    assert "quickConnect" in john.last_snapshot()["actions"][contact]["contact"]
    # The contact's timeline: the inbound flow's blocks and prompts reached John's socket
    # (they name no agent, and John is on the call) …
    assert [m["banner"] for m in john.of("banner")] == ["Connecting", "Connected"]
    whisper = [m for m in john.of("promptStarted") if m["to"] == "john"]
    assert whisper and whisper[0]["what"] == "BasicQueue"
    assert john.of("flowBlock")
    # … and nothing of it reached Maria's, who is on no part of this call.
    assert [m["type"] for m in maria.messages] == ["snapshot"]

    await customer.hangup()
    await wait_for(lambda: john.of("contactEnded"), 5, "contactEnded")
    await wait_for(lambda: john.last_snapshot()["contacts"] == [], 5, "no contacts")
    await john.close()
    await maria.close()
