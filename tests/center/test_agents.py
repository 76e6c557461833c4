"""Agent state: status, busy, idle time, and the staffing metrics built on them."""

from __future__ import annotations

import pytest

from flows.model import StaffingMetric
from telephony.center.agents import AgentState, AgentStatus, parse_status
from telephony.center.config import InstanceConfig, demo_lab
from telephony.center.events import AgentStatusChanged, CenterError
from telephony.center.queues import staffing


@pytest.fixture(scope="module")
def lab() -> InstanceConfig:
    return demo_lab()


def test_from_config_takes_profile_queues_and_status(lab: InstanceConfig) -> None:
    john = AgentState.from_config(lab, "john", now=5.0)
    maria = AgentState.from_config(lab, "maria", now=5.0)
    assert john.queues == ("BasicQueue",)
    assert maria.queues == ("PasswordReset",)
    assert john.status is AgentStatus.AVAILABLE
    assert john.idle_since == 5.0
    assert john.takes("BasicQueue") and not john.takes("PasswordReset")


def test_status_change_is_an_event_once(lab: InstanceConfig) -> None:
    john = AgentState.from_config(lab, "john", now=0.0)
    event = john.set_status(AgentStatus.OFFLINE, now=10.0)
    assert event == AgentStatusChanged("john", "Offline", "Available", 10.0)
    assert event.to_json() == {
        "type": "agentStatus",
        "agent": "john",
        "status": "Offline",
        "previous": "Available",
        "at": "1970-01-01T00:00:10.000Z",
    }
    assert john.set_status(AgentStatus.OFFLINE, now=11.0) is None


def test_idle_since_restarts_on_available_and_on_free(lab: InstanceConfig) -> None:
    john = AgentState.from_config(lab, "john", now=0.0)
    john.set_status(AgentStatus.OFFLINE, now=10.0)
    john.set_status(AgentStatus.AVAILABLE, now=20.0)
    assert john.idle_since == 20.0
    john.mark_busy("c1")
    assert john.busy and not john.available and john.online and john.staffed
    # Becoming Available again while on a contact does not make the agent idle.
    john.set_status(AgentStatus.OFFLINE, now=30.0)
    john.set_status(AgentStatus.AVAILABLE, now=31.0)
    assert john.idle_since == 20.0
    john.mark_free(now=40.0)
    assert john.idle_since == 40.0 and john.available and john.routable
    john.mark_free(now=50.0)  # already free: nothing changes
    assert john.idle_since == 40.0


def test_one_contact_at_a_time(lab: InstanceConfig) -> None:
    john = AgentState.from_config(lab, "john", now=0.0)
    john.mark_busy("c1")
    john.mark_busy("c1")
    with pytest.raises(CenterError, match="already on contact c1"):
        john.mark_busy("c2")


def test_ringing_agent_is_available_but_not_routable(lab: InstanceConfig) -> None:
    john = AgentState.from_config(lab, "john", now=0.0)
    john.offer = "offer-1"
    assert john.available and not john.routable


def test_parse_status() -> None:
    assert parse_status("Available") is AgentStatus.AVAILABLE
    assert parse_status("Offline") is AgentStatus.OFFLINE
    with pytest.raises(CenterError) as info:
        parse_status("Lunch")
    assert info.value.status == 422


def test_staffing_metrics_follow_amazon_connect_definitions(lab: InstanceConfig) -> None:
    john = AgentState.from_config(lab, "john", now=0.0)
    maria = AgentState.from_config(lab, "maria", now=0.0)
    agents = [john, maria]
    basic = staffing(agents, "BasicQueue")
    assert (basic.available, basic.online, basic.staffed) == (1, 1, 1)
    john.mark_busy("c1")
    basic = staffing(agents, "BasicQueue")
    assert basic.metric(StaffingMetric.AVAILABLE) == 0
    assert basic.metric(StaffingMetric.ONLINE) == 1
    assert basic.metric(StaffingMetric.STAFFED) == 1
    john.set_status(AgentStatus.OFFLINE, now=1.0)
    basic = staffing(agents, "BasicQueue")
    assert (basic.available, basic.online, basic.staffed) == (0, 0, 0)
    # maria does not take BasicQueue and never counts for it.
    assert staffing(agents, "PasswordReset").available == 1
