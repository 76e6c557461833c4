"""The seed's quick connects end to end over loopback, asserted from what each party heard.

Each party plays its own tone the whole time (customer 500 Hz, John 900 Hz, Maria 1400 Hz,
supplier 1900 Hz), so "who hears whom" at any moment is a tone detection on the last second
of each recording; prompts, the beep and music are found by matched filtering.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from telephony.lab.phone import CallFailed, Phone, PhoneCall
from telephony.switch.server import Switch
from tests.center.callflow import (
    RATE,
    banners,
    contact_of,
    found,
    has_tone,
    heard,
    phone,
    running_switch,
    seconds_heard,
    tone,
    wait_for,
)

CUSTOMER, JOHN, MARIA, SUPPLIER = 500.0, 900.0, 1400.0, 1900.0


@pytest.fixture
async def switch(tmp_path: Path) -> AsyncIterator[Switch]:
    async for sw in running_switch(tmp_path):
        yield sw


class Lab:
    def __init__(self, switch: Switch) -> None:
        self.switch = switch
        self.events: list[dict[str, Any]] = []
        switch.center.subscribe(self.events.append)
        self.phones: list[Phone] = []

    async def phone(self, user: str, **kw: Any) -> Phone:
        p = await phone(self.switch, user, **kw)
        self.phones.append(p)
        return p

    async def first_leg(self) -> tuple[PhoneCall, PhoneCall, str]:
        """customer -> +15550100 -> John answers; both talking."""
        john = await self.phone("john")
        customer = await self.phone("customer")
        call = await customer.call("+15550100")
        john_call = await asyncio.wait_for(john.incoming.get(), 15)
        await john_call.answer()
        await wait_for(lambda: "Connected" in banners(self.events, "john"), 10, "john Connected")
        call.media.play(tone(CUSTOMER, 120))
        john_call.media.play(tone(JOHN, 120))
        return call, john_call, contact_of(self.events, "john")

    async def close(self) -> None:
        for p in self.phones:
            await p.stop()


def last(call: PhoneCall, seconds: float = 1.0) -> Any:
    return heard(call)[-int(seconds * RATE) :]


def hears(call: PhoneCall) -> set[float]:
    """The party tones present in the last second of what this phone heard."""
    window = last(call)
    return {f for f in (CUSTOMER, JOHN, MARIA, SUPPLIER) if has_tone(window, f)}


async def test_scenario_1_quick_connect_to_an_agent(switch: Switch) -> None:
    lab = Lab(switch)
    customer, john, contact = await lab.first_leg()
    maria_phone = await lab.phone("maria")
    await asyncio.sleep(1.0)
    assert hears(customer) == {JOHN} and hears(john) == {CUSTOMER}

    # Step 1: quick connect Maria. The customer goes on hold; the new connection reads
    # Connected at once, though John is not connected to Maria yet.
    mark = seconds_heard(john)
    hold_mark = seconds_heard(customer)
    switch.center.quick_connect("john", contact, "Maria")
    assert banners(lab.events, "john", "customer")[-1] == "On hold"
    assert (
        banners(lab.events, "john", "maria") == []
        or banners(lab.events, "john", "maria")[0] == "Connected"
    )
    added = [e for e in lab.events if e["type"] == "connectionAdded" and e.get("party") == "maria"]
    assert added and added[0]["banner"] == "Connected"
    # Steps 2-4: John hears "Transferring to agent"; then Maria's phone rings.
    maria = await asyncio.wait_for(maria_phone.incoming.get(), 10)
    assert found("Transferring to agent", heard(john, since=mark))
    assert "Incoming" in [
        e["banner"]
        for e in lab.events
        if e["type"] == "connectionAdded" and e.get("agent") == "maria"
    ]
    # Step 5-8: Maria accepts (answers): Connecting, agent whisper to Maria (the queue's
    # name), customer whisper (the beep) to John, then Connected.
    await maria.answer()
    maria.media.play(tone(MARIA, 120))
    await wait_for(lambda: "Connected" in banners(lab.events, "maria"), 10, "maria Connected")
    assert banners(lab.events, "maria") == ["Connecting", "Connected"]
    assert found("BasicQueue", heard(maria))
    assert found("beep", heard(john, since=mark))
    assert not found("beep", heard(maria), threshold=0.5)
    await asyncio.sleep(1.2)
    assert hears(john) == {MARIA} and hears(maria) == {JOHN}
    assert hears(customer) == set(), "the customer must hear hold music, not the agents"
    assert found("hold_music", heard(customer, since=hold_mark), threshold=0.8, seconds=1.0)

    # Join: everyone hears the other two; every banner reads Joined.
    switch.center.conference("john", contact)
    await asyncio.sleep(1.2)
    assert hears(customer) == {JOHN, MARIA}
    assert hears(john) == {CUSTOMER, MARIA}
    assert hears(maria) == {CUSTOMER, JOHN}
    assert banners(lab.events, "john", "customer")[-1] == "Joined"
    assert banners(lab.events, "john", "maria")[-1] == "Joined"

    # Hold all: the customer hears the customer hold flow (music), Maria the agent hold flow
    # ("You are on hold"), John hears neither of them.
    mark_c, mark_m = seconds_heard(customer), seconds_heard(maria)
    switch.center.hold_all("john", contact)
    await asyncio.sleep(1.5)
    assert hears(john) == set()
    assert hears(customer) == set() and hears(maria) == set()
    assert found("hold_music", heard(customer, since=mark_c), threshold=0.8, seconds=1.0)
    assert found("On hold", heard(maria, since=mark_m))

    # Leave: John drops; the customer and Maria stay connected and keep talking.
    switch.center.leave("john", contact)
    assert await john.wait_ended(5) == "remote hangup"
    await asyncio.sleep(1.2)
    assert hears(customer) == {MARIA} and hears(maria) == {CUSTOMER}
    assert switch.center.snapshot("john")["contacts"] == []
    await customer.hangup()
    assert await maria.wait_ended(5) == "remote hangup"
    await lab.close()


async def test_scenario_2_quick_connect_to_a_queue(switch: Switch) -> None:
    lab = Lab(switch)
    customer, john, contact = await lab.first_leg()
    maria_phone = await lab.phone("maria")
    mark = seconds_heard(john)
    switch.center.quick_connect("john", contact, "PasswordReset")
    added = [
        e
        for e in lab.events
        if e["type"] == "connectionAdded" and e.get("party") == "PasswordReset"
    ]
    assert added and added[0]["banner"] == "Connecting"
    maria = await asyncio.wait_for(maria_phone.incoming.get(), 15)
    await maria.answer()
    maria.media.play(tone(MARIA, 120))
    await wait_for(lambda: "Connected" in banners(lab.events, "maria"), 10, "maria Connected")
    assert banners(lab.events, "maria") == ["Connecting", "Connected"]
    # The default agent whisper speaks the queue's name: PasswordReset, to Maria.
    assert found("PasswordReset", heard(maria))
    assert not found("BasicQueue", heard(maria), threshold=0.6)
    assert found("beep", heard(john, since=mark))
    await asyncio.sleep(1.2)
    assert hears(john) == {MARIA} and hears(maria) == {JOHN} and hears(customer) == set()
    await customer.hangup()
    await lab.close()


async def test_scenario_3_phone_number_with_queue_caller_id(switch: Switch) -> None:
    lab = Lab(switch)
    supplier_phone = await lab.phone("supplier")
    customer, john, contact = await lab.first_leg()
    mark = seconds_heard(john)
    switch.center.quick_connect("john", contact, "Supplier")
    supplier = await asyncio.wait_for(supplier_phone.incoming.get(), 5)
    # No flow: the call carries the queue's outbound caller ID (BasicQueue: Example Corp).
    invite = supplier.invite
    assert invite.from_.display_name == "Example Corp"
    assert invite.from_.uri.user == "+15550100"  # type: ignore[union-attr]
    (pai,) = invite.name_addrs("P-Asserted-Identity")
    assert pai.display_name == "Example Corp" and pai.uri.user == "+15550100"  # type: ignore[union-attr]
    await asyncio.sleep(1.0)  # John hears ringback meanwhile
    assert has_tone(heard(john, since=mark), 440.0)
    await supplier.answer()
    supplier.media.play(tone(SUPPLIER, 120))
    await wait_for(
        lambda: banners(lab.events, "john", "+15557770000")[-1:] == ["Connected"],
        5,
        "supplier Connected",
    )
    await asyncio.sleep(1.2)
    assert hears(john) == {SUPPLIER} and hears(supplier) == {JOHN} and hears(customer) == set()
    # Join, then leave: the customer and the supplier go on talking.
    switch.center.conference("john", contact)
    await asyncio.sleep(1.2)
    assert hears(customer) == {JOHN, SUPPLIER}
    switch.center.leave("john", contact)
    await john.wait_ended(5)
    await asyncio.sleep(1.2)
    assert hears(customer) == {SUPPLIER} and hears(supplier) == {CUSTOMER}
    await customer.hangup()
    await supplier.wait_ended(5)
    await lab.close()


async def test_agent_quick_connect_rejected_leaves_customer_on_hold(switch: Switch) -> None:
    lab = Lab(switch)
    customer, john, contact = await lab.first_leg()
    maria_phone = await lab.phone("maria")
    switch.center.quick_connect("john", contact, "Maria")
    maria = await asyncio.wait_for(maria_phone.incoming.get(), 10)
    maria.reject(603)
    await wait_for(
        lambda: any(e["type"] == "transferFailed" for e in lab.events), 5, "transferFailed"
    )
    assert banners(lab.events, "john", "maria")[-1] == "Ended"
    assert banners(lab.events, "john", "customer")[-1] == "On hold"
    # John resumes the customer and they talk again.
    (snap,) = switch.center.snapshot("john")["contacts"]
    (conn,) = [c for c in snap["connections"] if c["party"] == "customer"]
    switch.center.resume("john", conn["id"])
    await asyncio.sleep(1.2)
    assert hears(customer) == {JOHN} and hears(john) == {CUSTOMER}
    await customer.hangup()
    await lab.close()


async def test_phone_number_busy_ends_the_connection_with_the_cause(switch: Switch) -> None:
    lab = Lab(switch)
    supplier_phone = await lab.phone("supplier")
    supplier_phone.on_call = lambda call: call.reject(486)
    customer, john, contact = await lab.first_leg()
    switch.center.quick_connect("john", contact, "Supplier")
    await wait_for(
        lambda: any(e["type"] == "transferFailed" for e in lab.events), 5, "transferFailed"
    )
    failed = next(e for e in lab.events if e["type"] == "transferFailed")
    assert "486" in failed["reason"]
    assert banners(lab.events, "john", "+15557770000")[-1] == "Ended"
    await customer.hangup()
    await lab.close()


async def test_quick_connect_to_busy_agent_fails_at_once(switch: Switch) -> None:
    lab = Lab(switch)
    customer, john, contact = await lab.first_leg()
    maria_phone = await lab.phone("maria")
    # Maria is on another call through the switch (not a contact): still free for routing,
    # so make her busy the contact-center way: Offline agents are refused too.
    switch.center.set_status("maria", "Offline")
    switch.center.quick_connect("john", contact, "Maria")
    await wait_for(
        lambda: any(e["type"] == "transferFailed" for e in lab.events), 8, "transferFailed"
    )
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(maria_phone.incoming.get(), 1.0)
    # The default agent transfer flow tells John why.
    assert found("Agent not available", heard(john))
    await customer.hangup()
    await lab.close()


async def test_customer_can_still_call_supplier_directly(switch: Switch) -> None:
    """The dial plan stands in for the PSTN: a phone dialling +15557770000 reaches supplier."""
    lab = Lab(switch)
    supplier_phone = await lab.phone("supplier", auto_answer=True)
    customer_phone = await lab.phone("customer")
    call = await customer_phone.call("+15557770000")
    assert call.state.value == "established"
    await call.hangup()
    with pytest.raises(CallFailed):
        await customer_phone.call("+19999999999")
    await lab.close()
    assert supplier_phone is not None


async def test_phone_only_agent_feature_codes_and_hold_button(switch: Switch) -> None:
    """A lab with softphones only: DTMF feature codes and the phone's own hold button."""
    lab = Lab(switch)
    customer, john, contact = await lab.first_leg()
    maria_phone = await lab.phone("maria")
    # The phone's hold button is Hold: the customer hears hold music, John hears nothing.
    mark = seconds_heard(customer)
    assert (await john.hold()).status == 200
    await asyncio.sleep(1.2)
    assert banners(lab.events, "john", "customer")[-1] == "On hold"
    assert hears(customer) == set()
    assert found("hold_music", heard(customer, since=mark), threshold=0.8, seconds=1.0)
    assert (await john.resume()).status == 200
    await asyncio.sleep(1.2)
    assert banners(lab.events, "john", "customer")[-1] == "Connected"
    assert hears(customer) == {JOHN}
    # **1: the first quick connect of John's list (Maria).
    assert switch.center.model.quick_connects("john")[0] == "Maria"
    john.send_dtmf("**1")
    maria = await asyncio.wait_for(maria_phone.incoming.get(), 10)
    await maria.answer()
    maria.media.play(tone(MARIA, 120))
    await wait_for(lambda: "Connected" in banners(lab.events, "maria"), 10, "maria Connected")
    john.send_dtmf("*3")  # three-way
    await wait_for(lambda: banners(lab.events, "john", "maria")[-1:] == ["Joined"], 5, "Joined")
    await asyncio.sleep(1.2)
    assert hears(customer) == {JOHN, MARIA}
    john.send_dtmf("*2")  # complete: John leaves, the customer stays with Maria
    assert await john.wait_ended(5) == "remote hangup"
    await asyncio.sleep(1.2)
    assert hears(customer) == {MARIA} and hears(maria) == {CUSTOMER}
    await customer.hangup()
    await lab.close()


async def test_agent_hanging_up_with_a_third_party_is_leave(switch: Switch) -> None:
    lab = Lab(switch)
    customer, john, contact = await lab.first_leg()
    maria_phone = await lab.phone("maria")
    switch.center.quick_connect("john", contact, "Maria")
    maria = await asyncio.wait_for(maria_phone.incoming.get(), 10)
    await maria.answer()
    maria.media.play(tone(MARIA, 120))
    await wait_for(lambda: "Connected" in banners(lab.events, "maria"), 10, "maria Connected")
    await john.hangup()
    await asyncio.sleep(1.5)
    assert hears(customer) == {MARIA} and hears(maria) == {CUSTOMER}
    await customer.hangup()
    await lab.close()


async def test_agent_quick_connect_not_answered_times_out(switch: Switch) -> None:
    lab = Lab(switch)
    customer, john, contact = await lab.first_leg()
    maria_phone = await lab.phone("maria")
    switch.center.quick_connect("john", contact, "Maria")
    maria = await asyncio.wait_for(maria_phone.incoming.get(), 10)
    # Nobody answers: the ring timeout (3 s in this lab) ends the transfer; the customer
    # stays on hold for John.
    assert await maria.wait_ended(8) == "cancelled"
    await wait_for(
        lambda: any(e["type"] == "transferFailed" for e in lab.events), 5, "transferFailed"
    )
    assert banners(lab.events, "john", "customer")[-1] == "On hold"
    await customer.hangup()
    await lab.close()


async def test_queue_transfer_refused_when_nobody_is_staffed(switch: Switch) -> None:
    """Default queue transfer: Check staffing finds nobody -> John hears the flow's prompt,
    the transfer leg ends, the customer stays on hold with John."""
    lab = Lab(switch)
    customer, john, contact = await lab.first_leg()
    switch.center.set_status("maria", "Offline")  # PasswordReset's only agent
    mark = seconds_heard(john)
    switch.center.quick_connect("john", contact, "PasswordReset")
    await wait_for(
        lambda: any(e["type"] == "transferFailed" for e in lab.events), 10, "transferFailed"
    )
    assert found("No agents staffed", heard(john, since=mark))
    assert banners(lab.events, "john", "PasswordReset")[-1] == "Ended"
    assert banners(lab.events, "john", "customer")[-1] == "On hold"
    await customer.hangup()
    await lab.close()
