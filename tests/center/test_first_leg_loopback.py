"""The first leg end to end over loopback: customer -> DID -> inbound flow -> queue -> agent.

Everything is asserted from what the phones recorded (what each party heard, and when) and
from the banners the CCP model published.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from media.analysis import detect_tone, locate
from telephony.switch.server import Switch
from tests.center.callflow import RATE, banners, heard, phone, ref, running_switch, tone, wait_for


@pytest.fixture
async def switch(tmp_path: Path) -> AsyncIterator[Switch]:
    async for sw in running_switch(tmp_path):
        yield sw


async def test_customer_reaches_john_with_whispers_in_seed_order(switch: Switch) -> None:
    events: list[dict[str, Any]] = []
    switch.center.subscribe(events.append)
    john = await phone(switch, "john")
    customer = await phone(switch, "customer")
    call = await customer.call("+15550100")
    ringing = await asyncio.wait_for(john.incoming.get(), 15)  # welcome prompt, then queue
    await asyncio.sleep(1.0)  # let the queue music play a little before answering
    await ringing.answer()
    await wait_for(lambda: "Connected" in banners(events, "john"), 10, "john Connected")
    call.media.play(tone(700, 3.0))
    ringing.media.play(tone(1300, 3.0))
    await asyncio.sleep(2.0)

    customer_heard, john_heard = heard(call), heard(ringing)
    welcome = locate(ref("Welcome"), customer_heard, RATE)
    assert welcome.score > 0.9, welcome
    # Queue music after the welcome prompt, before the agent answered.
    music = locate(ref("hold_music")[:RATE], customer_heard, RATE)
    assert music.score > 0.8 and music.offset_s > welcome.offset_s, (music, welcome)
    # Default agent whisper: the queue's name, to John only.
    whisper = locate(ref("BasicQueue"), john_heard, RATE)
    assert whisper.score > 0.9, whisper
    assert locate(ref("BasicQueue"), customer_heard, RATE).score < 0.5
    # Default customer whisper: the beep, to the customer only, after John's whisper.
    beep = locate(ref("beep"), customer_heard, RATE)
    assert beep.score > 0.9, beep
    assert locate(ref("beep"), john_heard, RATE).score < 0.5
    # Two-way audio once connected: each hears the other's tone.
    assert detect_tone(customer_heard[-RATE:], RATE, 1300, min_duration=0.5)
    assert detect_tone(john_heard[-RATE:], RATE, 700, min_duration=0.5)
    assert banners(events, "john") == ["Connecting", "Connected"]
    assert any(e["type"] == "connectionAdded" and e.get("banner") == "Incoming" for e in events)

    # The contact trace record has the flow blocks, the prompts with whom they played to,
    # the banners, and the recordings.
    contact_id = next(e["contact"] for e in events if e["type"] == "contactCreated")
    await call.hangup()
    await ringing.wait_ended(5)
    record = switch.center.contact_record(contact_id)
    text = str(record)
    assert "Welcome" in text and "BasicQueue" in text
    assert record["disconnect"]["party"] == "customer"
    for p in (john, customer):
        await p.stop()


async def test_reject_and_ring_timeout_go_to_next_agent_or_stay_queued(switch: Switch) -> None:
    events: list[dict[str, Any]] = []
    switch.center.subscribe(events.append)
    john = await phone(switch, "john")
    customer = await phone(switch, "customer")
    call = await customer.call("+15550100")
    first = await asyncio.wait_for(john.incoming.get(), 15)
    first.reject(486)  # rejecting on the phone = Reject in the CCP
    # john is the only agent of BasicQueue: the contact stays queued and comes back to him.
    again = await asyncio.wait_for(john.incoming.get(), 10)
    # ring timeout (3 s in this lab): not answered, the offer moves on (back to john again)
    assert await again.wait_ended(8) == "cancelled"
    assert any(e["type"] == "offerTimedOut" for e in events)
    assert any(e["type"] == "offerRejected" for e in events)
    # meanwhile the customer is still in queue music, never disconnected
    assert call.state.value == "established"
    customer_heard = heard(call)
    music = locate(ref("hold_music")[:RATE], customer_heard, RATE)
    assert music.score > 0.8
    await call.hangup()
    for p in (john, customer):
        await p.stop()


async def test_offline_agent_is_not_offered_and_customer_waits(switch: Switch) -> None:
    john = await phone(switch, "john")
    switch.center.set_status("john", "Offline")
    customer = await phone(switch, "customer")
    call = await customer.call("+15550100")
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(john.incoming.get(), 8)
    switch.center.set_status("john", "Available")
    ringing = await asyncio.wait_for(john.incoming.get(), 5)
    assert ringing is not None
    await call.hangup()
    for p in (john, customer):
        await p.stop()


async def qconnect_cli(*args: str) -> str:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "telephony.cli", *args, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, out
    return out.decode()


async def test_contact_trace_record_is_durable_and_exported_by_the_cli(
    switch: Switch, tmp_path: Path
) -> None:
    john = await phone(switch, "john")
    customer = await phone(switch, "customer")
    call = await customer.call("+15550100")
    ringing = await asyncio.wait_for(john.incoming.get(), 15)
    await ringing.answer()
    await asyncio.sleep(2.0)
    await call.hangup()
    await ringing.wait_ended(5)
    # Read beside the running switch (SQLite WAL), as an operator would.
    contact = (await qconnect_cli("ctr", "--data-dir", str(tmp_path))).split()[0]
    out = tmp_path / "ctr.json"
    await qconnect_cli("ctr", contact, "--data-dir", str(tmp_path), "--out", str(out))
    record = json.loads(out.read_text())
    assert record["disconnect"]["party"] == "customer"
    prompts = [(p["what"], p["to"]) for p in record["prompts"]]
    assert ("Welcome", "customer") in prompts and ("BasicQueue", "john") in prompts
    assert {r["party"] for r in record["recordings"]} >= {"customer", "john"}
    for p in (john, customer):
        await p.stop()
