"""The CCP state model: the seed's scenarios 1-3 banner by banner, failure paths,
illegal steps, and the snapshot the API serves."""

from __future__ import annotations

import itertools
from typing import TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from telephony.center.config import InstanceConfig, demo_lab
from telephony.center.contact import (
    TRANSITIONS,
    Banner,
    ConnectionState,
    ContactModel,
    ContactState,
    Step,
)
from telephony.center.events import (
    AgentAction,
    BannerChanged,
    CenterError,
    CenterEvent,
    ContactEnded,
    ContactHandedOver,
    OfferCreated,
    PartyDisconnected,
    QuickConnectStarted,
    TransferFailed,
)
from telephony.center.routing import Offer, Refusal

T = TypeVar("T")


@pytest.fixture(scope="module")
def lab() -> InstanceConfig:
    return demo_lab()


@pytest.fixture
def model(lab: InstanceConfig) -> ContactModel:
    counter = itertools.count(1)
    return ContactModel(lab, now=0.0, new_id=lambda: f"id{next(counter)}")


def drain(model: ContactModel) -> list[CenterEvent]:
    out = []
    while (event := model.next_event()) is not None:
        out.append(event)
    return out


def view(model: ContactModel, agent: str) -> list[list[tuple[str, str]]]:
    """Per contact in the agent's CCP: (party, banner) of each live connection."""
    return [
        [(conn["party"], conn["banner"]) for conn in contact["connections"]]
        for contact in model.snapshot(agent)["contacts"]
    ]


def conn_id(model: ContactModel, agent: str, party: str) -> str:
    for contact in model.snapshot(agent)["contacts"]:
        for conn in contact["connections"]:
            if conn["party"] == party:
                return str(conn["id"])
    raise AssertionError(f"{agent} has no connection to {party}")


def banners_of(events: list[CenterEvent], agent: str) -> list[tuple[str, str]]:
    return [
        (e.party, e.banner) for e in events if isinstance(e, BannerChanged) and e.agent == agent
    ]


def first_leg(model: ContactModel) -> str:
    """Customer calls the DID, waits in BasicQueue, john accepts, whispers, connected."""
    contact = model.create_contact(1.0)
    model.enqueue(contact.id, "BasicQueue", 2.0)
    assert view(model, "john") == [[("customer", "Incoming")]]
    assert model.available_actions("john", contact.id)["contact"] == ["accept", "reject"]
    model.accept("john", contact.id, 3.0)
    assert view(model, "john") == [[("customer", "Connecting")]]
    model.connected(contact.id, 4.0)
    assert view(model, "john") == [[("customer", "Connected")]]
    assert model.router.agents["john"].contact == contact.id
    return contact.id


# -- the first leg ------------------------------------------------------------------------------


def test_first_leg_events_and_snapshot(model: ContactModel) -> None:
    contact_id = first_leg(model)
    events = drain(model)
    types = [e.TYPE for e in events]
    assert types == [
        "contactCreated",
        "contactQueued",
        "offerCreated",
        "connectionAdded",
        "offerAccepted",
        "contactDequeued",
        "banner",
        "banner",
    ]
    assert banners_of(events, "john") == [("customer", "Connecting"), ("customer", "Connected")]
    customer = conn_id(model, "john", "customer")
    assert model.snapshot("john") == {
        "agent": "john",
        "status": "Available",
        "contacts": [
            {
                "id": contact_id,
                "queue": "BasicQueue",
                "connections": [{"id": customer, "party": "customer", "banner": "Connected"}],
            }
        ],
    }
    assert model.snapshot("maria") == {"agent": "maria", "status": "Available", "contacts": []}
    assert model.available_actions("john", contact_id) == {
        "contact": ["quickConnect", "leave"],
        "connections": {customer: ["hold", "end"]},
    }


def test_reject_and_ring_timeout_keep_the_contact_queued(model: ContactModel) -> None:
    contact = model.create_contact(1.0)
    model.enqueue(contact.id, "BasicQueue", 2.0)
    model.reject("john", contact.id, 3.0)
    events = drain(model)
    assert ("customer", "Ended") in banners_of(events, "john")
    # john is the only agent of BasicQueue: nobody else, so it rings him again.
    assert model.contact(contact.id).state is ContactState.OFFERED
    assert view(model, "john") == [[("customer", "Incoming")]]
    offer = model.router.offer_for_contact(contact.id)
    assert offer is not None and offer.created == 3.0
    assert model.get_timer() == offer.expires == 23.0
    model.handle_timer(23.0)
    events = drain(model)
    ended = [e for e in events if isinstance(e, BannerChanged) and e.banner == "Ended"]
    assert ended[0].reason == "john did not answer"
    assert any(isinstance(e, OfferCreated) for e in events)
    # Offline: the offer is withdrawn and the contact waits in queue music.
    model.set_status("john", "Offline", 24.0)
    assert model.contact(contact.id).state is ContactState.QUEUED
    assert view(model, "john") == []
    assert model.router.offer_for_contact(contact.id) is None
    model.set_status("john", "Available", 30.0)
    assert view(model, "john") == [[("customer", "Incoming")]]


def test_customer_hangs_up_while_ringing(model: ContactModel) -> None:
    contact = model.create_contact(1.0)
    model.enqueue(contact.id, "BasicQueue", 2.0)
    drain(model)
    model.customer_hung_up(contact.id, 5.0)
    events = drain(model)
    assert ("customer", "Ended") in banners_of(events, "john")
    ended = [e for e in events if isinstance(e, ContactEnded)]
    assert [(e.reason, e.party) for e in ended] == [("customer disconnected", "customer")]
    assert view(model, "john") == []
    assert contact.id not in model.router.queues
    assert model.router.agents["john"].routable
    model.customer_hung_up(contact.id, 6.0)  # a late BYE changes nothing
    assert drain(model) == []


def test_agent_hangs_up_a_plain_call(model: ContactModel) -> None:
    contact_id = first_leg(model)
    drain(model)
    model.agent_hung_up("john", 9.0)
    events = drain(model)
    assert PartyDisconnected(contact_id, "customer", "agent hung up", 9.0) in events
    assert model.contact(contact_id).end_reason == "agent hung up"
    assert model.router.agents["john"].idle_since == 9.0


# -- scenario 1: quick connect to an agent -------------------------------------------------------


def scenario1_until_connected(model: ContactModel) -> tuple[str, str]:
    c1 = first_leg(model)
    started = model.quick_connect("john", c1, "Maria", 10.0)
    assert (started.quick_connect_type, started.target, started.flow) == (
        "user",
        "maria",
        "Default agent transfer",
    )
    assert started.transfer_contact is not None
    # Step 1: customer on hold; the new connection reads Connected, Maria not yet reached.
    assert view(model, "john") == [[("customer", "On hold"), ("maria", "Connected")]]
    assert model.available_actions("john", c1)["contact"] == ["leave"]
    # Step 2-4: the transfer flow's Transfer to agent rings Maria.
    c2 = started.transfer_contact
    offer = model.transfer_to_agent(c2, "maria", 12.0)
    assert isinstance(offer, Offer) and offer.direct
    assert view(model, "maria") == [[("customer", "Incoming")]]
    transferred = model.contact(c2)
    assert (transferred.previous_contact_id, transferred.initial_contact_id) == (c1, c1)
    assert transferred.initiation == "TRANSFER"
    # Step 5: accept -> Connecting (whispers play).
    model.accept("maria", c2, 13.0)
    assert view(model, "maria") == [[("customer", "Connecting")]]
    assert view(model, "john") == [[("customer", "On hold"), ("maria", "Connected")]]
    # Step 8: after both whispers, Maria reads Connected; John and Maria talk.
    model.connected(c2, 15.0)
    assert view(model, "maria") == [[("customer", "Connected")]]
    assert view(model, "john") == [[("customer", "On hold"), ("maria", "Connected")]]
    return c1, c2


def test_scenario1_banners_and_the_four_choices(model: ContactModel) -> None:
    c1, c2 = scenario1_until_connected(model)
    events = drain(model)
    assert banners_of(events, "maria") == [("customer", "Connecting"), ("customer", "Connected")]
    assert [e.TYPE for e in events if e.TYPE in ("quickConnect", "connectionAdded")] == [
        "connectionAdded",  # john's Incoming on the first leg
        "connectionAdded",  # the maria connection
        "quickConnect",
        "connectionAdded",  # maria's Incoming
    ]
    assert model.available_actions("john", c1)["contact"] == [
        "conference",
        "holdAll",
        "swap",
        "leave",
    ]
    customer, maria = conn_id(model, "john", "customer"), conn_id(model, "john", "maria")
    # Join: everybody Joined, Maria's own banner too.
    model.conference("john", c1, 20.0)
    assert view(model, "john") == [[("customer", "Joined"), ("maria", "Joined")]]
    assert view(model, "maria") == [[("customer", "Joined")]]
    assert AgentAction(c1, "john", "conference", 20.0) in drain(model)
    # Hold all: both held; Maria is no longer in a conference.
    model.hold_all("john", c1, 21.0)
    assert view(model, "john") == [[("customer", "On hold"), ("maria", "On hold")]]
    assert view(model, "maria") == [[("customer", "Connected")]]
    with pytest.raises(CenterError, match="cannot swap"):
        model.swap("john", c1, 21.5)
    # Resume Maria only, then swap to the customer (hold Maria, talk to the customer).
    model.resume("john", maria, 22.0)
    assert view(model, "john") == [[("customer", "On hold"), ("maria", "Connected")]]
    with pytest.raises(CenterError, match="swap or conference"):
        model.resume("john", customer, 22.5)
    model.swap("john", c1, 23.0)
    assert view(model, "john") == [[("customer", "Connected"), ("maria", "On hold")]]
    # Join again, then hold one party out of the conference.
    model.conference("john", c1, 24.0)
    model.hold("john", maria, 25.0)
    assert view(model, "john") == [[("customer", "Connected"), ("maria", "On hold")]]
    assert view(model, "maria") == [[("customer", "Connected")]]
    model.conference("john", c1, 26.0)
    drain(model)
    # End call: John leaves; the customer stays with Maria.
    model.leave("john", c1, 30.0)
    events = drain(model)
    assert ContactHandedOver(c1, "john", "maria", c2, 30.0) in events
    assert ContactEnded(c1, "john", "transferred", "john", 30.0) in events
    assert not any(isinstance(e, PartyDisconnected) for e in events)
    assert banners_of(events, "john") == [("customer", "Ended"), ("maria", "Ended")]
    assert view(model, "john") == []
    assert view(model, "maria") == [[("customer", "Connected")]]
    assert model.customer_contact(c1).id == c2
    assert model.router.agents["john"].contact is None
    assert model.router.agents["maria"].contact == c2
    # Later the customer hangs up: Maria's contact ends.
    model.customer_hung_up(c1, 40.0)
    assert ContactEnded(c2, "maria", "customer disconnected", "customer", 40.0) in drain(model)
    assert model.router.agents["maria"].contact is None


def test_scenario1_maria_rejects(model: ContactModel) -> None:
    c1 = first_leg(model)
    started = model.quick_connect("john", c1, "Maria", 10.0)
    assert started.transfer_contact is not None
    model.transfer_to_agent(started.transfer_contact, "maria", 11.0)
    drain(model)
    model.reject("maria", started.transfer_contact, 12.0)
    events = drain(model)
    failed = [e for e in events if isinstance(e, TransferFailed)]
    assert [(f.agent, f.party, f.reason) for f in failed] == [
        ("john", "maria", "maria rejected the contact")
    ]
    assert view(model, "maria") == []
    assert view(model, "john") == [[("customer", "On hold")]]
    assert model.contact(started.transfer_contact).state is ContactState.ENDED
    # John gets the customer back on hold, to resume.
    customer = conn_id(model, "john", "customer")
    assert model.available_actions("john", c1)["connections"][customer] == ["resume", "end"]
    model.resume("john", customer, 13.0)
    assert view(model, "john") == [[("customer", "Connected")]]
    assert "quickConnect" in model.available_actions("john", c1)["contact"]


def test_scenario1_maria_does_not_answer(model: ContactModel) -> None:
    c1 = first_leg(model)
    started = model.quick_connect("john", c1, "Maria", 10.0)
    assert started.transfer_contact is not None
    model.transfer_to_agent(started.transfer_contact, "maria", 11.0)
    assert model.get_timer() == 31.0
    drain(model)
    model.handle_timer(31.0)
    failed = [e for e in drain(model) if isinstance(e, TransferFailed)]
    assert [f.reason for f in failed] == ["maria did not answer"]
    assert view(model, "john") == [[("customer", "On hold")]]
    assert model.router.offer_for_agent("maria") is None


def test_scenario1_agent_already_on_a_contact_fails_at_once(model: ContactModel) -> None:
    c1 = first_leg(model)
    model.router.agent_busy("maria", "elsewhere", 5.0)
    started = model.quick_connect("john", c1, "Maria", 10.0)
    assert started.transfer_contact is not None
    result = model.transfer_to_agent(started.transfer_contact, "maria", 11.0)
    assert result == Refusal("maria", "maria is already on a contact")
    assert model.router.offer_for_agent("maria") is None
    # The flow takes its error branch and ends without transferring.
    model.abandon_transfer(started.transfer_contact, result.reason, 11.5)
    failed = [e for e in drain(model) if isinstance(e, TransferFailed)]
    assert [f.reason for f in failed] == ["maria is already on a contact"]
    assert view(model, "john") == [[("customer", "On hold")]]


def test_scenario1_maria_hangs_up_after_a_join(model: ContactModel) -> None:
    c1, c2 = scenario1_until_connected(model)
    model.conference("john", c1, 20.0)
    drain(model)
    model.agent_hung_up("maria", 21.0)
    events = drain(model)
    assert ContactEnded(c2, "maria", "agent hung up", "maria", 21.0) in events
    john = [e for e in events if isinstance(e, BannerChanged) and e.agent == "john"]
    assert [(e.party, e.banner, e.reason) for e in john] == [
        ("maria", "Ended", "maria hung up"),
        ("customer", "Connected", None),
    ]
    assert view(model, "john") == [[("customer", "Connected")]]


def test_scenario1_third_party_hangs_up_during_the_consult(model: ContactModel) -> None:
    c1, c2 = scenario1_until_connected(model)
    model.third_party_hung_up(conn_id(model, "john", "maria"), 20.0)
    assert view(model, "john") == [[("customer", "On hold")]]
    assert model.contact(c2).state is ContactState.ENDED
    assert model.router.agents["maria"].routable


def test_scenario1_customer_hangs_up_during_the_consult(model: ContactModel) -> None:
    c1, c2 = scenario1_until_connected(model)
    model.customer_hung_up(c1, 20.0)
    # John and Maria go on talking.
    assert view(model, "john") == [[("maria", "Connected")]]
    assert view(model, "maria") == [[("customer", "Connected")]]
    assert model.available_actions("john", c1)["contact"] == ["leave"]
    drain(model)
    model.leave("john", c1, 25.0)
    events = drain(model)
    ended = {(e.contact, e.reason) for e in events if isinstance(e, ContactEnded)}
    assert ended == {(c1, "john ended the call"), (c2, "john ended the call")}
    assert view(model, "maria") == []
    assert model.router.agents["maria"].routable and model.router.agents["john"].routable


def test_scenario1_john_aborts_while_maria_rings(model: ContactModel) -> None:
    c1 = first_leg(model)
    started = model.quick_connect("john", c1, "Maria", 10.0)
    assert started.transfer_contact is not None
    model.transfer_to_agent(started.transfer_contact, "maria", 11.0)
    drain(model)
    model.end_connection("john", started.connection, 12.0)
    events = drain(model)
    assert ("customer", "Ended") in banners_of(events, "maria")
    assert view(model, "maria") == []
    assert view(model, "john") == [[("customer", "On hold")]]
    assert model.router.offer_for_agent("maria") is None
    assert not any(isinstance(e, TransferFailed) for e in events)


def test_blind_transfer_leave_while_ringing(model: ContactModel) -> None:
    c1 = first_leg(model)
    started = model.quick_connect("john", c1, "Maria", 10.0)
    c2 = started.transfer_contact
    assert c2 is not None
    model.transfer_to_agent(c2, "maria", 11.0)
    model.leave("john", c1, 12.0)
    assert view(model, "john") == []
    assert model.customer_contact(c1).id == c2
    model.accept("maria", c2, 13.0)
    model.connected(c2, 14.0)
    assert view(model, "maria") == [[("customer", "Connected")]]


def test_blind_transfer_rejected_disconnects_the_customer(model: ContactModel) -> None:
    c1 = first_leg(model)
    started = model.quick_connect("john", c1, "Maria", 10.0)
    c2 = started.transfer_contact
    assert c2 is not None
    model.transfer_to_agent(c2, "maria", 11.0)
    model.leave("john", c1, 12.0)
    drain(model)
    model.reject("maria", c2, 13.0)
    events = drain(model)
    assert PartyDisconnected(c2, "customer", "maria rejected the contact", 13.0) in events


# -- scenario 2: quick connect to a queue --------------------------------------------------------


def test_scenario2_queue_quick_connect(model: ContactModel) -> None:
    c1 = first_leg(model)
    started = model.quick_connect("john", c1, "PasswordReset", 10.0)
    assert (started.quick_connect_type, started.target, started.flow) == (
        "queue",
        "PasswordReset",
        "Default queue transfer",
    )
    c2 = started.transfer_contact
    assert c2 is not None
    # Step 1: Connecting, and not yet in the queue.
    assert view(model, "john") == [[("customer", "On hold"), ("PasswordReset", "Connecting")]]
    assert c2 not in model.router.queues
    assert model.contact(c2).queue == "PasswordReset"
    assert model.router.staffing("PasswordReset").staffed == 1  # the flow's Check staffing
    # Step 2-3: Transfer to queue; Maria is offered it.
    model.enqueue(c2, "PasswordReset", 12.0)
    assert view(model, "maria") == [[("customer", "Incoming")]]
    # A reject keeps it queued: the next available agent (here Maria again) is offered it.
    model.reject("maria", c2, 13.0)
    assert model.contact(c2).state is ContactState.OFFERED
    assert view(model, "john") == [[("customer", "On hold"), ("PasswordReset", "Connecting")]]
    drain(model)
    # Step 4-7.
    model.accept("maria", c2, 14.0)
    assert view(model, "maria") == [[("customer", "Connecting")]]
    assert view(model, "john") == [[("customer", "On hold"), ("PasswordReset", "Connecting")]]
    model.connected(c2, 16.0)
    assert view(model, "maria") == [[("customer", "Connected")]]
    assert view(model, "john") == [[("customer", "On hold"), ("maria", "Connected")]]
    events = drain(model)
    assert banners_of(events, "maria") == [("customer", "Connecting"), ("customer", "Connected")]
    assert ("maria", "Connected") in banners_of(events, "john")
    # Step 8: the same four choices.
    assert model.available_actions("john", c1)["contact"] == [
        "conference",
        "holdAll",
        "swap",
        "leave",
    ]
    model.conference("john", c1, 20.0)
    assert view(model, "maria") == [[("customer", "Joined")]]
    model.leave("john", c1, 21.0)
    assert view(model, "maria") == [[("customer", "Connected")]]


def test_scenario2_refused_by_the_queue_transfer_flow(model: ContactModel) -> None:
    c1 = first_leg(model)
    model.set_status("maria", "Offline", 5.0)
    assert model.router.staffing("PasswordReset").staffed == 0
    started = model.quick_connect("john", c1, "PasswordReset", 10.0)
    assert started.transfer_contact is not None
    drain(model)
    # The flow's Check staffing took the "nobody staffed" branch: prompt, disconnect.
    model.abandon_transfer(started.transfer_contact, "no agents staffed in PasswordReset", 14.0)
    events = drain(model)
    failed = [e for e in events if isinstance(e, TransferFailed)]
    assert [(f.party, f.reason) for f in failed] == [
        ("PasswordReset", "no agents staffed in PasswordReset")
    ]
    assert view(model, "john") == [[("customer", "On hold")]]


def test_scenario2_queued_with_nobody_available_waits(model: ContactModel) -> None:
    c1 = first_leg(model)
    model.set_status("maria", "Offline", 5.0)
    started = model.quick_connect("john", c1, "PasswordReset", 10.0)
    c2 = started.transfer_contact
    assert c2 is not None
    model.enqueue(c2, "PasswordReset", 11.0)
    model.handle_timer(500.0)
    assert model.contact(c2).state is ContactState.QUEUED
    with pytest.raises(CenterError, match="not ringing for maria"):
        model.accept("maria", c2, 501.0)
    model.set_status("maria", "Available", 600.0)
    assert view(model, "maria") == [[("customer", "Incoming")]]


# -- scenario 3: quick connect to a phone number -------------------------------------------------


def test_scenario3_phone_number(model: ContactModel) -> None:
    c1 = first_leg(model)
    started = model.quick_connect("john", c1, "Supplier", 10.0)
    assert started == QuickConnectStarted(
        c1,
        started.connection,
        "john",
        "Supplier",
        "phone_number",
        "+15557770000",
        None,
        None,
        "Example Corp",  # BasicQueue's outbound caller ID
        "+15550100",
        10.0,
    )
    assert view(model, "john") == [[("customer", "On hold"), ("+15557770000", "Connecting")]]
    model.third_party_answered(started.connection, 14.0)
    assert view(model, "john") == [[("customer", "On hold"), ("+15557770000", "Connected")]]
    model.conference("john", c1, 15.0)
    assert view(model, "john") == [[("customer", "Joined"), ("+15557770000", "Joined")]]
    drain(model)
    # John leaves: the customer and the supplier go on talking with no agent.
    model.leave("john", c1, 20.0)
    events = drain(model)
    assert ContactHandedOver(c1, "john", "+15557770000", None, 20.0) in events
    # In John's CCP both connections end; the resumed talk that follows shows in no CCP.
    johns = [
        (e.party, e.banner) for e in events if isinstance(e, BannerChanged) and e.agent == "john"
    ]
    assert johns == [("customer", "Ended"), ("+15557770000", "Ended")]
    assert all(
        e.agent is None for e in events if isinstance(e, BannerChanged) and e.banner != "Ended"
    )
    assert view(model, "john") == []
    assert model.contact(c1).state is ContactState.UNATTENDED
    assert model.router.agents["john"].routable
    model.third_party_hung_up(started.connection, 30.0)
    events = drain(model)
    assert PartyDisconnected(c1, "customer", "hung up", 30.0) in events
    assert model.contact(c1).state is ContactState.ENDED


def test_scenario3_caller_id_of_the_agent_outbound_queue(model: ContactModel) -> None:
    contact = model.create_contact(1.0)  # no queue: a direct transfer to Maria
    assert isinstance(model.transfer_to_agent(contact.id, "maria", 2.0), Offer)
    model.accept("maria", contact.id, 3.0)
    model.connected(contact.id, 4.0)
    started = model.quick_connect("maria", contact.id, "Supplier", 5.0)
    assert (started.caller_id_name, started.caller_id_number) == ("Password Desk", "+15550199")


def test_scenario3_busy_number(model: ContactModel) -> None:
    c1 = first_leg(model)
    started = model.quick_connect("john", c1, "Supplier", 10.0)
    drain(model)
    model.third_party_failed(started.connection, "486 Busy Here", 11.0)
    events = drain(model)
    failed = [e for e in events if isinstance(e, TransferFailed)]
    assert [(f.party, f.reason) for f in failed] == [("+15557770000", "486 Busy Here")]
    assert not any(isinstance(e, PartyDisconnected) for e in events)
    assert view(model, "john") == [[("customer", "On hold")]]


def test_scenario3_supplier_hangs_up_customer_back_on_hold(model: ContactModel) -> None:
    c1 = first_leg(model)
    started = model.quick_connect("john", c1, "Supplier", 10.0)
    model.third_party_answered(started.connection, 11.0)
    model.swap("john", c1, 12.0)
    assert view(model, "john") == [[("customer", "Connected"), ("+15557770000", "On hold")]]
    model.swap("john", c1, 13.0)
    model.third_party_hung_up(started.connection, 14.0)
    assert view(model, "john") == [[("customer", "On hold")]]
    model.end_connection("john", conn_id(model, "john", "customer"), 15.0)
    events = drain(model)
    assert PartyDisconnected(c1, "customer", "john ended the connection", 15.0) in events
    assert view(model, "john") == []


def test_resume_customer_while_a_transfer_is_pending(model: ContactModel) -> None:
    c1 = first_leg(model)
    started = model.quick_connect("john", c1, "PasswordReset", 10.0)
    c2 = started.transfer_contact
    assert c2 is not None
    model.resume("john", conn_id(model, "john", "customer"), 11.0)
    assert view(model, "john") == [[("customer", "Connected"), ("PasswordReset", "Connecting")]]
    model.enqueue(c2, "PasswordReset", 12.0)
    model.accept("maria", c2, 13.0)
    model.connected(c2, 14.0)
    # Maria connects: the customer goes back on hold (one party at a time unless joined).
    assert view(model, "john") == [[("customer", "On hold"), ("maria", "Connected")]]


# -- illegal steps -------------------------------------------------------------------------------


def test_transition_table_is_complete_and_final() -> None:
    assert set(TRANSITIONS) == set(ConnectionState)
    assert TRANSITIONS[ConnectionState.ENDED] == {}
    for state, steps in TRANSITIONS.items():
        if state is not ConnectionState.ENDED:
            assert steps[Step.END] is ConnectionState.ENDED
    assert ConnectionState.TRANSFERRING.banner is Banner.CONNECTED  # seed scenario 1 step 1


def test_illegal_steps_raise_409(model: ContactModel) -> None:
    contact = model.create_contact(1.0)
    model.enqueue(contact.id, "BasicQueue", 2.0)
    incoming = conn_id(model, "john", "customer")
    with pytest.raises(CenterError, match="cannot hold connection .* it is Incoming") as info:
        model.hold("john", incoming, 3.0)
    assert info.value.status == 409
    with pytest.raises(CenterError, match="rejected, not ended"):
        model.end_connection("john", incoming, 3.0)
    with pytest.raises(CenterError, match="not ringing for maria"):
        model.accept("maria", contact.id, 3.0)
    model.accept("john", contact.id, 3.0)
    with pytest.raises(CenterError, match="cannot hold"):
        model.hold("john", incoming, 3.5)  # Connecting: whispers still playing
    model.connected(contact.id, 4.0)
    with pytest.raises(CenterError, match="cannot connect"):
        model.connected(contact.id, 4.5)
    with pytest.raises(
        CenterError, match=r"cannot conference .* \(possible: quickConnect, leave\)"
    ):
        model.conference("john", contact.id, 5.0)
    with pytest.raises(CenterError, match="cannot holdAll"):
        model.hold_all("john", contact.id, 5.0)
    with pytest.raises(CenterError, match="cannot resume"):
        model.resume("john", incoming, 5.0)
    model.quick_connect("john", contact.id, "Supplier", 6.0)
    with pytest.raises(CenterError, match="cannot quickConnect"):
        model.quick_connect("john", contact.id, "Maria", 7.0)


def test_ownership_and_unknown_names(model: ContactModel) -> None:
    contact_id = first_leg(model)
    with pytest.raises(CenterError) as info:
        model.hold("maria", conn_id(model, "john", "customer"), 5.0)
    assert info.value.status == 403
    with pytest.raises(CenterError) as info:
        model.leave("john", "nope", 5.0)
    assert info.value.status == 404
    with pytest.raises(CenterError) as info:
        model.snapshot("nobody")
    assert info.value.status == 404
    with pytest.raises(CenterError) as info:
        model.quick_connect("john", contact_id, "Nobody", 5.0)
    assert info.value.status == 422
    with pytest.raises(CenterError) as info:
        model.set_status("john", "Lunch", 5.0)
    assert info.value.status == 422


def test_maria_cannot_use_johns_quick_connects(model: ContactModel) -> None:
    assert model.quick_connects("maria") == ["Supplier"]
    contact = model.create_contact(1.0)
    model.transfer_to_agent(contact.id, "maria", 2.0)
    model.accept("maria", contact.id, 3.0)
    model.connected(contact.id, 4.0)
    with pytest.raises(CenterError) as info:
        model.quick_connect("maria", contact.id, "Maria", 5.0)
    assert info.value.status == 422


def test_event_json_shape(model: ContactModel) -> None:
    first_leg(model)
    banner = next(e for e in drain(model) if isinstance(e, BannerChanged))
    data = banner.to_json()
    assert data == {
        "type": "banner",
        "contact": banner.contact,
        "connection": banner.connection,
        "agent": "john",
        "party": "customer",
        "banner": "Connecting",
        "previous": "Incoming",
        "at": "1970-01-01T00:00:03.000Z",
        "reason": None,
    }
    offer = OfferCreated("offer-1", "c", "john", None, 20.0, 0.5)
    assert offer.to_json()["expires"] == "1970-01-01T00:00:20.000Z"
    assert offer.to_json()["at"] == "1970-01-01T00:00:00.500Z"


# -- who hears whom ------------------------------------------------------------------------------


def pairs(*names: tuple[str, str]) -> frozenset[frozenset[str]]:
    return frozenset(frozenset(pair) for pair in names)


def test_audio_plan_follows_scenario1(model: ContactModel) -> None:
    c1 = first_leg(model)
    plan = model.audio_plan(c1)
    assert plan.links == pairs(("john", "customer")) and plan.on_hold == {}
    started = model.quick_connect("john", c1, "Maria", 10.0)
    c2 = started.transfer_contact
    assert c2 is not None
    # The transfer flow runs on John's leg; the customer hears the customer hold flow.
    assert model.audio_plan(c1) == model.audio_plan(c2)
    assert model.audio_plan(c1).links == frozenset()
    assert model.audio_plan(c1).on_hold == {"customer": "customer"}
    model.transfer_to_agent(c2, "maria", 11.0)
    model.accept("maria", c2, 12.0)
    assert model.audio_plan(c1).links == frozenset()  # whispers still playing
    model.connected(c2, 14.0)
    plan = model.audio_plan(c1)
    assert plan.links == pairs(("john", "maria")) and plan.on_hold == {"customer": "customer"}
    model.conference("john", c1, 15.0)
    plan = model.audio_plan(c1)
    assert plan.links == pairs(("john", "maria"), ("john", "customer"), ("maria", "customer"))
    assert plan.on_hold == {}
    model.hold_all("john", c1, 16.0)
    plan = model.audio_plan(c1)
    assert plan.links == frozenset()
    assert plan.on_hold == {"customer": "customer", "maria": "agent"}
    model.resume("john", conn_id(model, "john", "customer"), 17.0)
    plan = model.audio_plan(c1)
    assert plan.links == pairs(("john", "customer")) and plan.on_hold == {"maria": "agent"}
    model.leave("john", c1, 18.0)
    plan = model.audio_plan(c1)
    assert plan.links == pairs(("maria", "customer")) and plan.on_hold == {}
    assert plan.hears("customer", "maria") and not plan.hears("customer", "john")


def test_audio_plan_maria_holds_her_side(model: ContactModel) -> None:
    c1, c2 = scenario1_until_connected(model)
    model.hold("maria", conn_id(model, "maria", "customer"), 20.0)
    plan = model.audio_plan(c1)
    assert plan.links == frozenset()
    assert plan.on_hold == {"customer": "customer", "john": "agent"}
    model.resume("maria", conn_id(model, "maria", "customer"), 21.0)
    model.conference("john", c1, 22.0)
    assert view(model, "maria") == [[("customer", "Joined")]]
    model.hold("maria", conn_id(model, "maria", "customer"), 23.0)
    plan = model.audio_plan(c2)
    assert plan.links == pairs(("john", "customer")) and plan.on_hold == {}


def test_audio_plan_phone_number_after_leave(model: ContactModel) -> None:
    c1 = first_leg(model)
    started = model.quick_connect("john", c1, "Supplier", 10.0)
    model.leave("john", c1, 11.0)  # a blind transfer to a ringing number
    assert model.audio_plan(c1).links == frozenset()
    model.third_party_answered(started.connection, 12.0)
    assert model.audio_plan(c1).links == pairs(("customer", "+15557770000"))
    assert model.audio_plan(c1).on_hold == {}


# -- random walks: invariants hold whatever the agents click --------------------------------------

OPS = (
    "inbound",
    "accept",
    "reject",
    "connected",
    "quick_connect",
    "route_transfer",
    "abandon",
    "phone_answers",
    "phone_fails",
    "third_hangs_up",
    "hold",
    "resume",
    "end",
    "hold_all",
    "swap",
    "conference",
    "leave",
    "customer_hangs_up",
    "agent_hangs_up",
    "status",
    "timer",
)

# The steps that move a call forward come up more often than hang-ups.
WEIGHTED_OPS = OPS + ("quick_connect", "route_transfer", "accept", "connected", "phone_answers") * 3


def check_invariants(model: ContactModel) -> None:
    contacts = list(model._contacts.values())
    for login, agent in model.router.agents.items():
        active = [c for c in contacts if c.agent == login and c.state is ContactState.ACTIVE]
        offered = [c for c in contacts if c.agent == login and c.state is ContactState.OFFERED]
        assert [c.id for c in active] == ([agent.contact] if agent.contact else [])
        offer = model.router.offer_for_agent(login)
        assert [c.id for c in offered] == ([offer.contact] if offer else [])
        snapshot = model.snapshot(login)
        for contact in snapshot["contacts"]:
            for conn in contact["connections"]:
                assert conn["banner"] in {b.value for b in Banner} - {"Ended"}
    for contact in contacts:
        live = [c for c in contact.connections.values() if c.live]
        if contact.state is ContactState.ENDED:
            assert live == []
        if contact.state is ContactState.ACTIVE:
            assert live, "an active contact has someone on it"
            assert sum(c.kind.value != "customer" for c in live) <= 1
        if contact.state is ContactState.QUEUED:
            assert contact.id in model.router.queues
        if contact.state in (ContactState.ACTIVE, ContactState.UNATTENDED):
            assert contact.id not in model.router.queues
        model.audio_plan(contact.id)  # always derivable


def random_step(model: ContactModel, data: st.DataObject, agent: str, op: str, now: float) -> None:
    """One operation on a target that makes sense for it (mostly), so walks go deep."""

    def pick(items: list[T]) -> T | None:
        return data.draw(st.sampled_from(items)) if items else None

    contacts = list(model._contacts.values())
    mine = model.contacts_of(agent)
    live = [c for c in model._connections.values() if c.live]
    my_conns = [c for c in live if any(c.contact == m.id for m in mine)]
    if op == "inbound":
        model.enqueue(model.create_contact(now).id, "BasicQueue", now)
    elif op == "timer":
        model.handle_timer(now)
    elif op == "status":
        model.set_status(agent, data.draw(st.sampled_from(["Available", "Offline"])), now)
    elif op == "agent_hangs_up":
        model.agent_hung_up(agent, now)
    elif op in ("accept", "reject"):
        ringing = [o for o in map(model.router.offer_for_agent, model.router.agents) if o]
        if (offer := pick(ringing)) is not None:
            (model.accept if op == "accept" else model.reject)(offer.agent, offer.contact, now)
        elif contacts:
            model.accept(agent, contacts[0].id, now)  # not ringing: must be refused
    elif op == "connected":
        connecting = [
            c
            for c in contacts
            if c.state is ContactState.ACTIVE
            and c.initial_connection is not None
            and c.initial_connection.state is ConnectionState.CONNECTING
        ]
        if (contact := pick(connecting)) is not None:
            model.connected(contact.id, now)
    elif op in ("route_transfer", "abandon"):
        routing = [c for c in contacts if c.state is ContactState.ROUTING]
        if (contact := pick(routing)) is None:
            return
        if op == "abandon":
            model.abandon_transfer(contact.id, "flow refused", now)
        elif contact.initiation == "TRANSFER":
            model.transfer_to_agent(contact.id, "maria", now)
        elif contact.initiation == "QUEUE_TRANSFER":
            model.enqueue(contact.id, "PasswordReset", now)
    elif op in ("phone_answers", "phone_fails"):
        phones = [c for c in live if c.kind.value == "phone_number"]
        if (conn := pick(phones)) is not None:
            if op == "phone_answers":
                model.third_party_answered(conn.id, now)
            else:
                model.third_party_failed(conn.id, "486 Busy Here", now)
    elif op == "third_hangs_up":
        thirds = [c for c in live if c.kind.value != "customer"]
        if (conn := pick(thirds)) is not None:
            model.third_party_hung_up(conn.id, now)
    elif op in ("hold", "resume", "end"):
        if (conn := pick(my_conns)) is not None:
            {"hold": model.hold, "resume": model.resume, "end": model.end_connection}[op](
                agent, conn.id, now
            )
    elif op == "customer_hangs_up":
        if (
            contact := pick([c for c in contacts if c.state is not ContactState.ENDED])
        ) is not None:
            model.customer_hung_up(contact.id, now)
    elif (contact := pick(mine)) is not None:
        if op == "quick_connect":
            name = data.draw(st.sampled_from(["Maria", "PasswordReset", "Supplier"]))
            model.quick_connect(agent, contact.id, name, now)
        else:
            {
                "hold_all": model.hold_all,
                "swap": model.swap,
                "conference": model.conference,
                "leave": model.leave,
            }[op](agent, contact.id, now)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_random_walks_keep_the_model_consistent(lab: InstanceConfig, data: st.DataObject) -> None:
    counter = itertools.count(1)
    model = ContactModel(lab, new_id=lambda: f"id{next(counter)}")
    now = 0.0
    agents = ["john", "maria"]
    # Start from the seed's situation (john on a call) so walks reach the quick connects.
    model.enqueue(model.create_contact(now).id, "BasicQueue", now)
    model.accept("john", model.contacts_of("john")[0].id, now)
    model.connected(model.contacts_of("john")[0].id, now)
    for _ in range(data.draw(st.integers(5, 60))):
        now += data.draw(st.sampled_from([0.0, 1.0, 21.0]))
        op = data.draw(st.sampled_from(WEIGHTED_OPS))
        agent = data.draw(st.sampled_from(agents))
        try:
            random_step(model, data, agent, op, now)
        except CenterError:
            pass
        check_invariants(model)
    drain(model)
    # Everybody hangs up: nothing is left on any agent.
    for contact in list(model._contacts.values()):
        model.customer_hung_up(contact.id, now + 100)
    for agent in agents:
        model.agent_hung_up(agent, now + 101)
        model.agent_hung_up(agent, now + 101)
    for contact in list(model._contacts.values()):
        model.customer_hung_up(contact.id, now + 102)
    check_invariants(model)
    for login, state in model.router.agents.items():
        assert state.contact is None, (login, model.snapshot(login))
