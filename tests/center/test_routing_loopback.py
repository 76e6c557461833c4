"""Routing over real SIP: reject and ring timeout offer the contact to the next agent."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from telephony.center.config import RoutingProfile, demo_lab
from telephony.switch.server import Switch
from tests.center.callflow import phone, running_switch


@pytest.fixture
async def switch(tmp_path: Path) -> AsyncIterator[Switch]:
    lab = demo_lab()
    # Both agents take BasicQueue here, so there is a "next agent" to go to.
    profiles = dict(lab.routing_profiles)
    profiles["Password desk"] = RoutingProfile.model_validate(
        {"queues": ["PasswordReset", "BasicQueue"], "default_outbound_queue": "PasswordReset"}
    )
    config = lab.model_copy(update={"ring_timeout": 3.0, "routing_profiles": profiles})
    async for sw in running_switch(tmp_path, config):
        yield sw


async def test_rejected_contact_rings_the_next_agent(switch: Switch) -> None:
    events: list[dict[str, Any]] = []
    switch.center.subscribe(events.append)
    john, maria = await phone(switch, "john"), await phone(switch, "maria")
    customer = await phone(switch, "customer")
    call = await customer.call("+15550100")
    # Whoever is idle longest is offered first; the other is next.
    first_ring = asyncio.ensure_future(john.incoming.get())
    second_ring = asyncio.ensure_future(maria.incoming.get())
    done, _ = await asyncio.wait(
        {first_ring, second_ring}, timeout=15, return_when=asyncio.FIRST_COMPLETED
    )
    (first,) = done
    (other,) = {first_ring, second_ring} - done
    first.result().reject(486)
    nxt = await asyncio.wait_for(other, 8)
    await nxt.answer()
    offered = [e["agent"] for e in events if e["type"] == "offerCreated"]
    assert len(offered) == 2 and offered[0] != offered[1]
    await call.hangup()
    for p in (john, maria, customer):
        await p.stop()


async def test_unanswered_contact_times_out_to_the_next_agent(switch: Switch) -> None:
    events: list[dict[str, Any]] = []
    switch.center.subscribe(events.append)
    john, maria = await phone(switch, "john"), await phone(switch, "maria")
    customer = await phone(switch, "customer")
    call = await customer.call("+15550100")
    ring = asyncio.ensure_future(john.incoming.get())
    ring2 = asyncio.ensure_future(maria.incoming.get())
    done, pending = await asyncio.wait(
        {ring, ring2}, timeout=15, return_when=asyncio.FIRST_COMPLETED
    )
    (first,) = done
    assert await first.result().wait_ended(8) == "cancelled"  # 3 s ring timeout
    (other,) = pending
    nxt = await asyncio.wait_for(other, 5)
    assert nxt is not None
    timed_out = [e["agent"] for e in events if e["type"] == "offerTimedOut"]
    offered = [e["agent"] for e in events if e["type"] == "offerCreated"]
    assert timed_out == [offered[0]] and offered[1] != offered[0]
    await call.hangup()
    for p in (john, maria, customer):
        await p.stop()


async def test_accepted_in_the_ccp_but_the_phone_never_answers(switch: Switch) -> None:
    """Accept in the CCP connects the softphone; a phone that then never answers counts as
    the agent hanging up once the ring timeout (3 s here) has passed."""
    events: list[dict[str, Any]] = []
    switch.center.subscribe(events.append)
    john = await phone(switch, "john")
    maria = await phone(switch, "maria")
    switch.center.set_status("maria", "Offline")
    customer = await phone(switch, "customer")
    call = await customer.call("+15550100")
    ringing = await asyncio.wait_for(john.incoming.get(), 15)
    contact = next(e["contact"] for e in events if e["type"] == "offerCreated")
    switch.center.accept("john", contact)
    assert await ringing.wait_ended(8) == "cancelled"
    assert [e["banner"] for e in events if e["type"] == "banner" and e.get("agent") == "john"][
        -1
    ] == "Ended"
    await call.wait_ended(5)
    for p in (john, maria, customer):
        await p.stop()
