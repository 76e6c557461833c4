"""Queues and routing: longest idle first, one offer each, reject and timeout to the next agent."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from flows.model import StaffingMetric
from telephony.center.agents import AgentStatus
from telephony.center.config import InstanceConfig, parse_config
from telephony.center.events import (
    CenterError,
    CenterEvent,
    ContactDequeued,
    ContactQueued,
    OfferAccepted,
    OfferCancelled,
    OfferCreated,
    OfferRejected,
    OfferTimedOut,
)
from telephony.center.queues import QueueAtCapacity
from telephony.center.routing import Offer, Refusal, Router

LAB = """\
ring_timeout: 15
agents:
  ann: {display_name: Ann, password: a, routing_profile: Sales}
  bob: {display_name: Bob, password: b, routing_profile: Sales}
  cid: {display_name: Cid, password: c, routing_profile: Sales}
  dee: {display_name: Dee, password: d, routing_profile: Support first}
  eve: {display_name: Eve, password: e, routing_profile: Late support, status: Offline}
routing_profiles:
  Sales:
    queues: [Sales]
    default_outbound_queue: Sales
  Support first:
    queues:
      - {queue: Support, priority: 1}
      - {queue: Sales, priority: 2}
    default_outbound_queue: Support
  Late support:
    queues:
      - {queue: Support, delay: 30}
    default_outbound_queue: Support
hours_of_operation:
  Office:
    timezone: Europe/Berlin
    days:
      monday: {start: "09:00", end: "17:00"}
queues:
  Sales:
    outbound_caller_id: {name: Sales, number: "+15550001"}
  Support:
    outbound_caller_id: {name: Support, number: "+15550002"}
    hours_of_operation: Office
    max_contacts: 2
"""


@pytest.fixture(scope="module")
def config() -> InstanceConfig:
    return parse_config(LAB, "routing-lab.yaml")


def router_with(config: InstanceConfig, idle: dict[str, float]) -> Router:
    """A router where each agent listed is Available and free since ``idle[agent]``;
    everyone else is Offline."""
    router = Router(config, now=0.0)
    for login, state in router.agents.items():
        if login in idle:
            router.set_status(login, AgentStatus.AVAILABLE, 0.0)
            state.idle_since = idle[login]
        else:
            router.set_status(login, AgentStatus.OFFLINE, 0.0)
    drain(router)
    return router


def drain(router: Router) -> list[CenterEvent]:
    events = []
    while (event := router.next_event()) is not None:
        events.append(event)
    return events


def test_longest_idle_agent_gets_the_contact(config: InstanceConfig) -> None:
    router = router_with(config, {"ann": 30.0, "bob": 10.0, "cid": 20.0})
    router.enqueue("c1", "Sales", 100.0)
    [offer] = router.poll(100.0)
    assert (offer.contact, offer.agent, offer.queue) == ("c1", "bob", "Sales")
    assert offer.expires == 115.0  # ring_timeout from the config
    assert drain(router) == [
        ContactQueued("c1", "Sales", 100.0),
        OfferCreated(offer.id, "c1", "bob", "Sales", 115.0, 100.0),
    ]


def test_oldest_contact_first_and_one_offer_per_agent_and_contact(config: InstanceConfig) -> None:
    router = router_with(config, {"ann": 30.0, "bob": 10.0})
    router.enqueue("late", "Sales", 101.0)
    router.enqueue("early", "Sales", 100.0)
    router.enqueue("last", "Sales", 102.0)
    offers = router.poll(103.0)
    assert [(o.contact, o.agent) for o in offers] == [("early", "bob"), ("late", "ann")]
    assert router.poll(103.0) == []  # both agents ring; "last" waits
    assert router.offer_for_agent("bob") == offers[0]
    assert router.offer_for_contact("last") is None
    assert router.queues.position("last") == 3


def test_nobody_available_stays_queued(config: InstanceConfig) -> None:
    router = router_with(config, {})
    router.enqueue("c1", "Sales", 100.0)
    assert router.poll(100.0) == []
    assert router.poll(1000.0) == []
    assert "c1" in router.queues
    assert router.get_timer() is None
    # An agent logs in: the contact goes to them at the next poll.
    router.set_status("cid", AgentStatus.AVAILABLE, 1001.0)
    [offer] = router.poll(1001.0)
    assert offer.agent == "cid"


def test_busy_and_offline_agents_are_never_offered(config: InstanceConfig) -> None:
    router = router_with(config, {"ann": 1.0, "bob": 2.0, "cid": 3.0})
    router.agent_busy("ann", "other", 5.0)
    router.set_status("bob", AgentStatus.OFFLINE, 5.0)
    router.enqueue("c1", "Sales", 10.0)
    router.enqueue("c2", "Sales", 11.0)
    offers = router.poll(12.0)
    assert [(o.contact, o.agent) for o in offers] == [("c1", "cid")]
    # ann's contact ends: she is idle from now and takes c2.
    router.agent_freed("ann", 20.0)
    assert router.agents["ann"].idle_since == 20.0
    [offer] = router.poll(20.0)
    assert (offer.contact, offer.agent) == ("c2", "ann")


def test_accept_dequeues_and_makes_the_agent_busy(config: InstanceConfig) -> None:
    router = router_with(config, {"ann": 1.0})
    router.enqueue("c1", "Sales", 10.0)
    [offer] = router.poll(10.0)
    drain(router)
    router.accept(offer.id, 12.0)
    assert drain(router) == [
        OfferAccepted(offer.id, "c1", "ann", 12.0),
        ContactDequeued("c1", "Sales", "accepted", 12.0),
    ]
    assert router.agents["ann"].contact == "c1"
    assert "c1" not in router.queues
    assert router.get_timer() is None
    router.enqueue("c2", "Sales", 13.0)
    assert router.poll(13.0) == []  # ann is on c1


def test_reject_goes_to_the_next_agent_not_the_one_who_rejected(config: InstanceConfig) -> None:
    router = router_with(config, {"ann": 1.0, "bob": 2.0, "cid": 3.0})
    router.enqueue("c1", "Sales", 10.0)
    [first] = router.poll(10.0)
    assert first.agent == "ann"
    router.reject(first.id, 11.0)
    assert "c1" in router.queues  # stays queued
    [second] = router.poll(11.0)
    assert second.agent == "bob"
    router.reject(second.id, 12.0)
    [third] = router.poll(12.0)
    assert third.agent == "cid"
    events = drain(router)
    assert OfferRejected(first.id, "c1", "ann", 11.0) in events


def test_reject_with_nobody_else_rings_the_same_agent_again(config: InstanceConfig) -> None:
    router = router_with(config, {"ann": 1.0, "bob": 2.0})
    router.agent_busy("bob", "other", 5.0)
    router.enqueue("c1", "Sales", 10.0)
    [offer] = router.poll(10.0)
    router.reject(offer.id, 11.0)
    [again] = router.poll(11.0)
    assert again.agent == "ann" and again.id != offer.id
    # bob is free now: the next decline goes to him rather than back to ann.
    router.agent_freed("bob", 12.0)
    router.reject(again.id, 13.0)
    [to_bob] = router.poll(13.0)
    assert to_bob.agent == "bob"


def test_a_declined_agent_gets_another_contact_first(config: InstanceConfig) -> None:
    router = router_with(config, {"ann": 1.0})
    router.enqueue("c1", "Sales", 10.0)
    router.enqueue("c2", "Sales", 11.0)
    [offer] = router.poll(11.0)
    assert offer.contact == "c1"
    router.reject(offer.id, 12.0)
    [offer] = router.poll(12.0)
    assert offer.contact == "c2"


def test_ring_timeout_offers_to_the_next_agent(config: InstanceConfig) -> None:
    router = router_with(config, {"ann": 1.0, "bob": 2.0})
    router.enqueue("c1", "Sales", 10.0)
    [offer] = router.poll(10.0)
    drain(router)
    assert router.get_timer() == 25.0
    assert router.handle_timer(24.9) == []
    assert router.handle_timer(25.0) == [offer]
    assert drain(router) == [OfferTimedOut(offer.id, "c1", "ann", 25.0)]
    assert router.agents["ann"].offer is None
    [second] = router.poll(25.0)
    assert second.agent == "bob"
    assert router.get_timer() == 40.0


def test_offline_cancels_the_ringing_offer_and_the_contact_stays(config: InstanceConfig) -> None:
    router = router_with(config, {"ann": 1.0, "bob": 2.0})
    router.enqueue("c1", "Sales", 10.0)
    [offer] = router.poll(10.0)
    drain(router)
    router.set_status("ann", AgentStatus.OFFLINE, 11.0)
    events = drain(router)
    assert OfferCancelled(offer.id, "c1", "ann", "agent went Offline", 11.0) in events
    [second] = router.poll(11.0)
    assert second.agent == "bob"


def test_dequeue_cancels_the_offer(config: InstanceConfig) -> None:
    router = router_with(config, {"ann": 1.0})
    router.enqueue("c1", "Sales", 10.0)
    [offer] = router.poll(10.0)
    drain(router)
    router.dequeue("c1", 12.0, "customer disconnected")
    assert drain(router) == [
        OfferCancelled(offer.id, "c1", "ann", "customer disconnected", 12.0),
        ContactDequeued("c1", "Sales", "customer disconnected", 12.0),
    ]
    assert router.agents["ann"].routable
    with pytest.raises(CenterError) as info:
        router.accept(offer.id, 13.0)
    assert info.value.status == 404


def test_routing_profile_priority_wins_over_age(config: InstanceConfig) -> None:
    router = router_with(config, {"dee": 1.0})
    router.enqueue("old-sales", "Sales", 10.0)
    router.enqueue("new-support", "Support", 20.0)
    [offer] = router.poll(21.0)
    assert offer.contact == "new-support"  # Support is dee's priority 1


def test_routing_profile_delay_holds_the_contact_back(config: InstanceConfig) -> None:
    router = router_with(config, {"eve": 1.0})
    router.enqueue("c1", "Support", 100.0)
    assert router.poll(100.0) == []
    assert router.get_timer() == 130.0  # wake when eve's 30 s delay is over
    assert router.poll(129.0) == []
    [offer] = router.poll(130.0)
    assert offer.agent == "eve"


def test_direct_offer_fails_at_once_for_busy_offline_or_ringing_agents(
    config: InstanceConfig,
) -> None:
    router = router_with(config, {"ann": 1.0, "bob": 2.0})
    router.agent_busy("ann", "other", 5.0)
    assert router.offer_to_agent("t1", "ann", 10.0) == Refusal("ann", "ann is already on a contact")
    assert router.offer_to_agent("t1", "cid", 10.0) == Refusal("cid", "cid is Offline")
    assert router.offer_to_agent("t1", "zed", 10.0) == Refusal("zed", "unknown agent 'zed'")
    offer = router.offer_to_agent("t1", "bob", 10.0)
    assert isinstance(offer, Offer) and offer.direct and offer.queue is None
    assert router.offer_to_agent("t2", "bob", 10.0) == Refusal(
        "bob", "bob is already being offered a contact"
    )
    # A direct offer is not queued: a reject leaves nothing to route.
    router.reject(offer.id, 11.0)
    assert router.poll(11.0) == []
    assert "t1" not in router.queues


def test_queue_capacity_and_double_enqueue(config: InstanceConfig) -> None:
    router = router_with(config, {})
    router.enqueue("c1", "Support", 1.0)
    with pytest.raises(CenterError, match="already waiting"):
        router.enqueue("c1", "Support", 2.0)
    router.enqueue("c2", "Support", 2.0)
    with pytest.raises(QueueAtCapacity):
        router.enqueue("c3", "Support", 3.0)
    with pytest.raises(CenterError) as info:
        router.enqueue("c4", "Nowhere", 3.0)
    assert info.value.status == 422


def test_hours_of_operation_in_the_queue_timezone(config: InstanceConfig) -> None:
    router = router_with(config, {})
    # Monday 2024-06-03, Berlin is UTC+2 in summer: 09:00 local = 07:00 UTC.
    assert not router.is_open("Support", datetime(2024, 6, 3, 6, 59, tzinfo=UTC))
    assert router.is_open("Support", datetime(2024, 6, 3, 7, 0, tzinfo=UTC))
    assert not router.is_open("Support", datetime(2024, 6, 3, 15, 0, tzinfo=UTC))
    assert not router.is_open("Support", datetime(2024, 6, 4, 8, 0, tzinfo=UTC))  # Tuesday
    assert router.is_open("Sales", datetime(2024, 6, 4, 3, 0, tzinfo=UTC))  # no hours: open
    with pytest.raises(ValueError, match="timezone-aware"):
        router.is_open("Sales", datetime(2024, 6, 4, 3, 0))


def test_staffing_per_queue(config: InstanceConfig) -> None:
    router = router_with(config, {"ann": 1.0, "bob": 1.0, "dee": 1.0})
    router.agent_busy("ann", "x", 2.0)
    assert router.staffing_metric("Sales", StaffingMetric.AVAILABLE) == 2  # bob, dee
    assert router.staffing_metric("Sales", StaffingMetric.ONLINE) == 3
    assert router.staffing_metric("Sales", StaffingMetric.STAFFED) == 3
    assert router.staffing_metric("Support", StaffingMetric.STAFFED) == 1  # dee; eve Offline
    with pytest.raises(CenterError):
        router.staffing("Nowhere")
