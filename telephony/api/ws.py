"""``WS /api/agents/{agent}/events``: the agent's snapshot on connect, then every event that
concerns them, each followed by a fresh ``snapshot`` message when it changed their CCP.

Messages are JSON text frames: center events as published (``type``, ``contact``,
``agent``, ``at`` …; docs/events.md) and ``{"type": "snapshot", "agent", "status",
"contacts", "actions"}``. A client too slow to keep up is closed (1013, try again later)
rather than let the switch buffer for it without bound: it reconnects and gets a snapshot.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from telephony.api.http import HUB, principal
from telephony.api.hub import HUB_QUEUE_LIMIT, Delivery

log = logging.getLogger("qconnect.api")


async def agent_events(request: web.Request) -> web.WebSocketResponse:
    agent = request.match_info["agent"]
    principal(request).may_read(agent)
    hub = request.app[HUB]
    hub.view(agent)  # 404 for an unknown agent, before the upgrade
    ws = web.WebSocketResponse(heartbeat=20.0)
    await ws.prepare(request)
    outbox: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(maxsize=HUB_QUEUE_LIMIT)

    def deliver(delivery: Delivery) -> None:
        messages = []
        if agent in delivery.agents:
            messages.append(delivery.event)
        if agent in delivery.views:
            messages.append(delivery.views[agent].message())
        for message in messages:
            try:
                outbox.put_nowait(message)
            except asyncio.QueueFull:
                log.warning("events for %s: client too slow, closing", agent)
                unsubscribe()
                with contextlib.suppress(asyncio.QueueFull):
                    outbox.get_nowait()
                    outbox.put_nowait(None)
                return

    # Subscribe before the first snapshot so no event falls between the two.
    unsubscribe = hub.subscribe(deliver)
    outbox.put_nowait(hub.view(agent).message())
    reader = asyncio.get_running_loop().create_task(_drain_incoming(ws))
    try:
        while not ws.closed:
            getter = asyncio.ensure_future(outbox.get())
            done, _ = await asyncio.wait({getter, reader}, return_when=asyncio.FIRST_COMPLETED)
            if getter not in done:
                getter.cancel()
                break
            message = getter.result()
            if message is None:
                await ws.close(code=WSCloseCode.TRY_AGAIN_LATER, message=b"too slow")
                break
            await ws.send_json(message)
    except ConnectionResetError:
        pass
    finally:
        unsubscribe()
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
        if not ws.closed:
            await ws.close()
    return ws


async def _drain_incoming(ws: web.WebSocketResponse) -> None:
    """The stream is one way; reading keeps pings answered and notices the close."""
    async for message in ws:
        if message.type in (WSMsgType.CLOSE, WSMsgType.ERROR):
            break
