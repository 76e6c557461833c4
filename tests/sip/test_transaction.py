"""RFC 3261 section 17 (+ RFC 6026) transactions: feed messages and times, assert what they
send, when they wake and which events they raise. No sockets, no sleeps."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from telephony.sip.errors import SipParseError, SipProtocolError
from telephony.sip.message import Headers, Message, Request, Response, make_response
from telephony.sip.parser import parse_message, parse_uri
from telephony.sip.transaction import (
    MAGIC_COOKIE,
    AckReceived,
    Address,
    CancelReceived,
    Event,
    InviteClientTransaction,
    InviteServerTransaction,
    NonInviteClientTransaction,
    NonInviteServerTransaction,
    RequestReceived,
    ResponseReceived,
    StrayResponse,
    TimerConfig,
    Transaction,
    TransactionLayer,
    TransactionState,
    TransactionTerminated,
    TransactionTimeout,
    new_branch,
    new_call_id,
    new_tag,
    response_destination,
    server_key,
)

S = TransactionState
UDP: Address = ("udp", "10.0.0.2", 5060)
TCP: Address = ("tcp", "10.0.0.2", 5060)
PHONE_UDP: Address = ("udp", "10.0.0.1", 5060)
PHONE_TCP: Address = ("tcp", "10.0.0.1", 40001)


# --- message builders -----------------------------------------------------------------------


def req(
    method: str = "INVITE",
    *,
    branch: str | None = "z9hG4bKaaa",
    via_host: str = "10.0.0.1",
    via_port: int | None = 5060,
    transport: str = "UDP",
    via_params: str = "",
    cseq: int = 1,
    cseq_method: str | None = None,
    call_id: str = "call-1",
    from_tag: str | None = "ft",
    to_tag: str | None = None,
    uri: str = "sip:bob@10.0.0.2",
    extra: tuple[str, ...] = (),
) -> Request:
    sent_by = via_host if via_port is None else f"{via_host}:{via_port}"
    branch_param = f";branch={branch}" if branch is not None else ""
    lines = [
        f"{method} {uri} SIP/2.0",
        f"Via: SIP/2.0/{transport} {sent_by}{branch_param}{via_params}",
        "Max-Forwards: 70",
        f"From: <sip:alice@10.0.0.1>{f';tag={from_tag}' if from_tag else ''}",
        f"To: <sip:bob@10.0.0.2>{f';tag={to_tag}' if to_tag else ''}",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} {cseq_method or method}",
        "Contact: <sip:alice@10.0.0.1:5060>",
        *extra,
    ]
    message = parse_message(("\r\n".join(lines) + "\r\n\r\n").encode())
    assert isinstance(message, Request)
    return message


def built(method: str, *headers: tuple[str, str]) -> Request:
    """A request assembled without the parser, for shapes the parser would refuse."""
    return Request(method=method, uri=parse_uri("sip:bob@10.0.0.2"), headers=Headers.of(*headers))


VIA = ("Via", "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKbad")
FROM = ("From", "<sip:alice@10.0.0.1>;tag=1")
TO = ("To", "<sip:bob@10.0.0.2>")
CALL_ID = ("Call-ID", "c")


def resp(request: Request, status: int, to_tag: str | None = "tt") -> Response:
    return make_response(request, status, to_tag=to_tag)


def ack_for(invite: Request, response: Response, *, branch: str | None = None) -> Request:
    """An ACK as the UAC would build it: same branch for a non-2xx, a new one for a 2xx."""
    via = invite.headers.values("Via")[0]
    if branch is not None:
        via = via.replace(invite.top_via.branch or "", branch)
    lines = [
        f"ACK {invite.uri} SIP/2.0",
        f"Via: {via}",
        "Max-Forwards: 70",
        f"From: {invite.headers.get('From')}",
        f"To: {response.headers.get('To')}",
        f"Call-ID: {invite.call_id}",
        f"CSeq: {invite.cseq.seq} ACK",
    ]
    message = parse_message(("\r\n".join(lines) + "\r\n\r\n").encode())
    assert isinstance(message, Request)
    return message


def cancel_for(invite: Request) -> Request:
    lines = [
        f"CANCEL {invite.uri} SIP/2.0",
        f"Via: {invite.headers.values('Via')[0]}",
        "Max-Forwards: 70",
        f"From: {invite.headers.get('From')}",
        f"To: {invite.headers.get('To')}",
        f"Call-ID: {invite.call_id}",
        f"CSeq: {invite.cseq.seq} CANCEL",
    ]
    message = parse_message(("\r\n".join(lines) + "\r\n\r\n").encode())
    assert isinstance(message, Request)
    return message


# --- driving helpers ----------------------------------------------------------------------


def events(source: Transaction | TransactionLayer) -> list[Event]:
    out: list[Event] = []
    while (event := source.next_event()) is not None:
        out.append(event)
    return out


def lines(sent: list[tuple[Message, Address]]) -> list[str]:
    return [message.start_line() for message, _ in sent]


def run_until(tx: Transaction, end: float) -> list[tuple[float, str]]:
    """Wake `tx` at each of its deadlines up to `end`; what it sent, and when."""
    sent: list[tuple[float, str]] = []
    while (deadline := tx.get_timer()) is not None and deadline <= end:
        tx.handle_timer(deadline)
        sent.extend((deadline, m.start_line()) for m, _ in tx.datagrams_to_send(deadline))
    return sent


def run_layer_until(layer: TransactionLayer, end: float) -> list[tuple[float, str, Address]]:
    sent: list[tuple[float, str, Address]] = []
    while (deadline := layer.get_timer()) is not None and deadline <= end:
        layer.handle_timer(deadline)
        sent.extend((deadline, m.start_line(), d) for m, d in layer.datagrams_to_send(deadline))
    return sent


def doubling(t1: float, cap: float | None, until: float) -> list[float]:
    """Retransmission instants: T1, then doubling intervals (capped at `cap`), before `until`."""
    times: list[float] = []
    now, interval = 0.0, t1
    while now + interval < until:
        now += interval
        times.append(now)
        interval = interval * 2 if cap is None else min(interval * 2, cap)
    return times


def kinds(evs: list[Event]) -> list[str]:
    return [type(e).__name__ for e in evs]


# --- identifiers --------------------------------------------------------------------------


def test_identifier_helpers_are_unique_and_well_formed() -> None:
    branches = {new_branch() for _ in range(500)}
    assert len(branches) == 500
    assert all(b.startswith(MAGIC_COOKIE) and len(b) > len(MAGIC_COOKIE) + 8 for b in branches)
    assert len({new_tag() for _ in range(500)}) == 500
    call_id = new_call_id("switch.example")
    assert call_id.endswith("@switch.example") and len(call_id) > 20


# --- INVITE client (17.1.1) -------------------------------------------------------------------


@pytest.mark.parametrize("t1", [0.5, 0.1, 0.25, 1.0, 2.0])
def test_invite_client_timer_a_doubles_until_timer_b(t1: float) -> None:
    timers = TimerConfig(t1=t1)
    tx = InviteClientTransaction(req(), 0.0, destination=UDP, timers=timers)
    assert lines(tx.datagrams_to_send(0.0)) == ["INVITE sip:bob@10.0.0.2 SIP/2.0"]
    assert tx.deadlines == {"A": t1, "B": 64 * t1}
    sent = run_until(tx, 1000.0)
    # Timer A doubles with no T2 cap (17.1.1.2) until timer B gives up at 64*T1.
    assert [t for t, _ in sent] == pytest.approx(doubling(t1, None, 64 * t1))
    assert len(sent) == 6
    assert tx.state is S.TERMINATED
    assert kinds(events(tx)) == ["TransactionTimeout", "TransactionTerminated"]
    assert tx.get_timer() is None


@pytest.mark.parametrize("transport", ["tcp", "tls", "TCP"])
def test_invite_client_reliable_never_retransmits(transport: str) -> None:
    tx = InviteClientTransaction(req(transport="TCP"), 0.0, destination=(transport, "h", 5060))
    assert tx.reliable
    tx.datagrams_to_send(0.0)
    assert tx.deadlines == {"B": 32.0}
    assert run_until(tx, 100.0) == []
    assert kinds(events(tx)) == ["TransactionTimeout", "TransactionTerminated"]


def test_invite_client_provisional_stops_a_and_b() -> None:
    invite = req()
    tx = InviteClientTransaction(invite, 0.0, destination=UDP)
    tx.datagrams_to_send(0.0)
    tx.handle_timer(0.5)
    assert len(tx.datagrams_to_send(0.5)) == 1
    tx.receive(resp(invite, 180), 0.7)
    assert tx.state is S.PROCEEDING
    assert tx.get_timer() is None  # Proceeding waits for the TU/peer, forever
    assert run_until(tx, 500.0) == []
    [event] = events(tx)
    assert isinstance(event, ResponseReceived) and event.response.status == 180
    tx.receive(resp(invite, 183), 1.0)
    assert [e.response.status for e in events(tx) if isinstance(e, ResponseReceived)] == [183]


@pytest.mark.parametrize("first", [100, 180])
@pytest.mark.parametrize("final", [200, 202, 299])
def test_invite_client_2xx_enters_accepted_and_timer_m(first: int, final: int) -> None:
    invite = req()
    tx = InviteClientTransaction(invite, 0.0, destination=UDP)
    tx.datagrams_to_send(0.0)
    tx.receive(resp(invite, first), 0.1)
    ok = resp(invite, final)
    tx.receive(ok, 2.0)
    assert tx.state is S.ACCEPTED
    assert tx.deadlines == {"M": 2.0 + 32.0}
    assert tx.datagrams_to_send(2.0) == []  # the 2xx ACK is the TU's (13.2.2.4)
    # RFC 6026: 2xx retransmissions go up to the TU too; anything else is absorbed.
    tx.receive(ok, 2.5)
    tx.receive(resp(invite, 486), 2.6)
    tx.receive(resp(invite, 180), 2.7)
    statuses = [e.response.status for e in events(tx) if isinstance(e, ResponseReceived)]
    assert statuses == [first, final, final]
    assert tx.last_response is ok
    tx.handle_timer(33.999)
    assert tx.state is S.ACCEPTED
    tx.handle_timer(34.0)
    assert tx.state is S.TERMINATED
    assert kinds(events(tx)) == ["TransactionTerminated"]  # no timeout: it succeeded


def test_invite_client_forked_2xx_each_reach_tu_and_acked_one_is_reacked() -> None:
    invite = req()
    tx = InviteClientTransaction(invite, 0.0, destination=UDP)
    tx.datagrams_to_send(0.0)
    ok_a, ok_b = resp(invite, 200, "a"), resp(invite, 200, "b")
    tx.receive(ok_a, 1.0)
    ack_a = ack_for(invite, ok_a, branch="z9hG4bKack-a")
    tx.send_ack(ack_a, ("udp", "10.0.0.9", 5070))
    assert tx.datagrams_to_send(1.0) == [(ack_a, ("udp", "10.0.0.9", 5070))]
    tx.receive(ok_a, 1.5)  # retransmission of an ACKed 2xx: re-ACKed, not passed up
    assert tx.datagrams_to_send(1.5) == [(ack_a, ("udp", "10.0.0.9", 5070))]
    tx.receive(ok_b, 1.6)  # another fork: the TU must see it
    assert tx.datagrams_to_send(1.6) == []
    got = [e.response.to.tag for e in events(tx) if isinstance(e, ResponseReceived)]
    assert got == ["a", "b"]


@pytest.mark.parametrize("status", [300, 404, 486, 487, 500, 503, 600, 603, 699])
def test_invite_client_non_2xx_acked_inside_the_transaction(status: int) -> None:
    invite = req(
        extra=(
            "Route: <sip:p1.example;lr>",
            "Route: <sip:p2.example;lr>",
            "Authorization: Digest x",
        )
    )
    tx = InviteClientTransaction(invite, 0.0, destination=UDP)
    tx.datagrams_to_send(0.0)
    tx.receive(resp(invite, 180), 0.2)
    final = resp(invite, status, to_tag="remote")
    tx.receive(final, 3.0)
    assert tx.state is S.COMPLETED
    [(ack, where)] = tx.datagrams_to_send(3.0)
    assert where == UDP
    assert isinstance(ack, Request)
    # 17.1.1.3
    assert ack.method == "ACK" and ack.uri == invite.uri
    assert ack.headers.values("Via") == [invite.headers.values("Via")[0]]
    assert ack.top_via.branch == invite.top_via.branch
    assert ack.headers.lines("Route") == invite.headers.lines("Route")
    assert ack.headers.get("From") == invite.headers.get("From")
    assert ack.to.tag == "remote"
    assert ack.call_id == invite.call_id
    assert str(ack.cseq) == "1 ACK"
    assert ack.body == b""
    assert tx.deadlines == {"D": 35.0}
    # A retransmitted final is re-ACKed and absorbed.
    tx.receive(final, 4.0)
    assert tx.datagrams_to_send(4.0) == [(ack, UDP)]
    statuses = [e.response.status for e in events(tx) if isinstance(e, ResponseReceived)]
    assert statuses == [180, status]
    tx.handle_timer(35.0)
    assert tx.state is S.TERMINATED
    assert kinds(events(tx)) == ["TransactionTerminated"]


def test_invite_client_non_2xx_over_tcp_terminates_at_once_after_ack() -> None:
    invite = req(transport="TCP")
    tx = InviteClientTransaction(invite, 0.0, destination=TCP)
    tx.datagrams_to_send(0.0)
    tx.receive(resp(invite, 486), 0.3)
    assert tx.state is S.TERMINATED  # timer D = 0 on reliable transports
    assert lines(tx.datagrams_to_send(0.3)) == ["ACK sip:bob@10.0.0.2 SIP/2.0"]
    assert kinds(events(tx)) == ["ResponseReceived", "TransactionTerminated"]


@pytest.mark.parametrize("timer_d", [32.0, 40.0, 64.0])
def test_invite_client_timer_d_configurable(timer_d: float) -> None:
    invite = req()
    tx = InviteClientTransaction(invite, 0.0, destination=UDP, timers=TimerConfig(timer_d=timer_d))
    tx.receive(resp(invite, 404), 1.0)
    assert tx.get_timer() == 1.0 + timer_d


def test_invite_client_final_at_the_instant_timer_b_fires() -> None:
    """Whoever the caller lets in first wins, and the loser is quietly absorbed."""
    invite = req()
    tx = InviteClientTransaction(invite, 0.0, destination=UDP)
    run_until(tx, 31.9)
    tx.receive(resp(invite, 200), 32.0)
    tx.handle_timer(32.0)
    assert tx.state is S.ACCEPTED
    assert kinds(events(tx)) == ["ResponseReceived"]

    tx2 = InviteClientTransaction(invite, 0.0, destination=UDP)
    run_until(tx2, 31.9)
    tx2.handle_timer(32.0)
    tx2.receive(resp(invite, 200), 32.0)
    assert tx2.state is S.TERMINATED
    assert kinds(events(tx2)) == ["TransactionTimeout", "TransactionTerminated"]


def test_invite_client_response_at_the_instant_timer_a_fires() -> None:
    invite = req()
    tx = InviteClientTransaction(invite, 0.0, destination=UDP)
    tx.datagrams_to_send(0.0)
    tx.receive(resp(invite, 100), 0.5)
    tx.handle_timer(0.5)
    assert tx.datagrams_to_send(0.5) == []  # no retransmission after the 100

    tx2 = InviteClientTransaction(invite, 0.0, destination=UDP)
    tx2.datagrams_to_send(0.0)
    tx2.handle_timer(0.5)
    tx2.receive(resp(invite, 100), 0.5)
    assert lines(tx2.datagrams_to_send(0.5)) == ["INVITE sip:bob@10.0.0.2 SIP/2.0"]
    assert tx2.get_timer() is None


def test_late_wakeup_fires_all_due_timers_once() -> None:
    tx = InviteClientTransaction(req(), 0.0, destination=UDP)
    tx.datagrams_to_send(0.0)
    tx.handle_timer(100.0)  # the process slept through everything
    assert tx.state is S.TERMINATED
    assert tx.datagrams_to_send(100.0) == []  # B wins over A: no retransmission burst
    assert kinds(events(tx)) == ["TransactionTimeout", "TransactionTerminated"]


def test_handle_timer_before_deadline_does_nothing() -> None:
    tx = InviteClientTransaction(req(), 0.0, destination=UDP)
    tx.datagrams_to_send(0.0)
    for now in (0.0, 0.1, 0.4999):
        tx.handle_timer(now)
        assert tx.datagrams_to_send(now) == []
    assert tx.state is S.CALLING


def test_client_transaction_rejects_bad_requests() -> None:
    with pytest.raises(SipProtocolError):
        InviteClientTransaction(req("OPTIONS"), 0.0)
    with pytest.raises(SipProtocolError):
        NonInviteClientTransaction(req("INVITE"), 0.0)
    with pytest.raises(SipProtocolError):
        NonInviteClientTransaction(req("ACK"), 0.0)
    with pytest.raises(SipProtocolError):
        InviteClientTransaction(req(branch=None), 0.0)
    with pytest.raises(SipProtocolError):
        NonInviteClientTransaction(built("BYE", VIA, FROM, TO, CALL_ID, ("CSeq", "1 INFO")), 0.0)


# --- non-INVITE client (17.1.2) ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("t1", "t2"), [(0.5, 4.0), (0.5, 2.0), (0.1, 4.0), (1.0, 4.0), (0.5, 8.0), (0.25, 1.0)]
)
@pytest.mark.parametrize("method", ["OPTIONS", "BYE", "REGISTER", "INFO", "UPDATE", "CANCEL"])
def test_non_invite_client_timer_e_doubles_to_t2_then_f(t1: float, t2: float, method: str) -> None:
    tx = NonInviteClientTransaction(
        req(method), 0.0, destination=UDP, timers=TimerConfig(t1=t1, t2=t2)
    )
    assert lines(tx.datagrams_to_send(0.0)) == [f"{method} sip:bob@10.0.0.2 SIP/2.0"]
    sent = run_until(tx, 1000.0)
    assert [t for t, _ in sent] == pytest.approx(doubling(t1, t2, 64 * t1))
    assert tx.state is S.TERMINATED
    assert kinds(events(tx)) == ["TransactionTimeout", "TransactionTerminated"]


def test_non_invite_client_default_schedule_exactly() -> None:
    tx = NonInviteClientTransaction(req("OPTIONS"), 0.0, destination=UDP)
    tx.datagrams_to_send(0.0)
    times = [t for t, _ in run_until(tx, 100.0)]
    assert times == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert tx.state is S.TERMINATED


def test_non_invite_client_proceeding_retransmits_every_t2() -> None:
    request = req("BYE")
    tx = NonInviteClientTransaction(request, 0.0, destination=UDP)
    tx.datagrams_to_send(0.0)
    tx.handle_timer(0.5)
    assert len(tx.datagrams_to_send(0.5)) == 1
    tx.receive(resp(request, 100), 0.6)
    assert tx.state is S.PROCEEDING
    times = [t for t, _ in run_until(tx, 100.0)]
    # E armed at 0.5 for +1.0 still fires at 1.5, then every T2 (17.1.2.2); F at 32.
    assert times == [1.5, 5.5, 9.5, 13.5, 17.5, 21.5, 25.5, 29.5]
    assert kinds(events(tx)) == ["ResponseReceived", "TransactionTimeout", "TransactionTerminated"]


@pytest.mark.parametrize("status", [200, 202, 302, 401, 404, 481, 500, 603])
def test_non_invite_client_final_then_timer_k(status: int) -> None:
    request = req("OPTIONS")
    tx = NonInviteClientTransaction(request, 0.0, destination=UDP)
    tx.datagrams_to_send(0.0)
    final = resp(request, status)
    tx.receive(final, 1.0)
    assert tx.state is S.COMPLETED
    assert tx.deadlines == {"K": 6.0}  # T4
    tx.receive(final, 2.0)  # retransmission absorbed
    tx.receive(resp(request, 180), 2.0)
    assert tx.datagrams_to_send(2.0) == []
    assert [e.response.status for e in events(tx) if isinstance(e, ResponseReceived)] == [status]
    tx.handle_timer(6.0)
    assert tx.state is S.TERMINATED
    assert kinds(events(tx)) == ["TransactionTerminated"]


def test_non_invite_client_tcp_no_e_and_k_zero() -> None:
    request = req("REGISTER", transport="TCP")
    tx = NonInviteClientTransaction(request, 0.0, destination=TCP)
    tx.datagrams_to_send(0.0)
    assert tx.deadlines == {"F": 32.0}
    tx.receive(resp(request, 200), 0.1)
    assert tx.state is S.TERMINATED
    assert kinds(events(tx)) == ["ResponseReceived", "TransactionTerminated"]


def test_non_invite_client_response_at_the_instant_timer_f_fires() -> None:
    request = req("OPTIONS")
    tx = NonInviteClientTransaction(request, 0.0, destination=UDP)
    run_until(tx, 31.9)
    tx.receive(resp(request, 200), 32.0)
    tx.handle_timer(32.0)
    assert tx.state is S.COMPLETED
    assert kinds(events(tx)) == ["ResponseReceived"]


# --- INVITE server (17.2.1) ------------------------------------------------------------------


def test_invite_server_sends_100_trying_after_200ms_of_tu_silence() -> None:
    invite = req()
    tx = InviteServerTransaction(invite, 10.0, source=PHONE_UDP)
    assert tx.deadlines == {"100": pytest.approx(10.2)}
    tx.handle_timer(10.19)
    assert tx.datagrams_to_send(10.19) == []
    tx.handle_timer(10.2)
    [(trying, where)] = tx.datagrams_to_send(10.2)
    assert isinstance(trying, Response) and trying.status == 100
    assert trying.to.tag is None
    assert where == PHONE_UDP
    assert tx.get_timer() is None
    # A retransmitted INVITE gets the 100 again.
    tx.receive(invite, 10.5)
    assert tx.datagrams_to_send(10.5) == [(trying, PHONE_UDP)]


@pytest.mark.parametrize("status", [100, 180, 183, 200, 486])
def test_invite_server_no_automatic_100_when_tu_answers_in_time(status: int) -> None:
    invite = req()
    tx = InviteServerTransaction(invite, 0.0, source=PHONE_UDP)
    tx.send_response(resp(invite, status), 0.15)
    assert "100" not in tx.deadlines
    tx.datagrams_to_send(0.15)
    tx.handle_timer(0.2)
    sent = [m for m, _ in tx.datagrams_to_send(0.2)]
    assert all(isinstance(m, Response) and m.status != 100 or status == 100 for m in sent)


def test_invite_server_retransmission_before_any_response_is_absorbed() -> None:
    invite = req()
    tx = InviteServerTransaction(invite, 0.0, source=PHONE_UDP)
    tx.receive(invite, 0.1)
    assert tx.datagrams_to_send(0.1) == []
    assert events(tx) == []


def test_invite_server_resends_latest_provisional() -> None:
    invite = req()
    tx = InviteServerTransaction(invite, 0.0, source=PHONE_UDP)
    tx.send_response(resp(invite, 100), 0.0)
    ringing = resp(invite, 180)
    tx.send_response(ringing, 0.1)
    tx.datagrams_to_send(0.1)
    tx.receive(invite, 0.5)
    assert tx.datagrams_to_send(0.5) == [(ringing, PHONE_UDP)]


@pytest.mark.parametrize(("t1", "t2"), [(0.5, 4.0), (0.2, 1.0), (1.0, 2.0)])
@pytest.mark.parametrize("status", [301, 404, 486, 487, 503, 603])
def test_invite_server_non_2xx_timer_g_until_h(t1: float, t2: float, status: int) -> None:
    invite = req()
    tx = InviteServerTransaction(invite, 0.0, source=PHONE_UDP, timers=TimerConfig(t1=t1, t2=t2))
    final = resp(invite, status)
    tx.send_response(final, 0.0)
    assert tx.state is S.COMPLETED
    assert tx.datagrams_to_send(0.0) == [(final, PHONE_UDP)]
    assert tx.deadlines == {"G": t1, "H": 64 * t1}
    sent = run_until(tx, 1000.0)
    assert [t for t, _ in sent] == pytest.approx(doubling(t1, t2, 64 * t1))
    assert all(line == final.start_line() for _, line in sent)
    assert tx.state is S.TERMINATED
    assert kinds(events(tx)) == ["TransactionTimeout", "TransactionTerminated"]


def test_invite_server_ack_confirms_then_timer_i() -> None:
    invite = req()
    tx = InviteServerTransaction(invite, 0.0, source=PHONE_UDP)
    busy = resp(invite, 486)
    tx.send_response(busy, 0.0)
    tx.datagrams_to_send(0.0)
    tx.handle_timer(0.5)
    assert tx.datagrams_to_send(0.5) == [(busy, PHONE_UDP)]
    tx.receive(invite, 0.6)  # INVITE retransmission in Completed: the final again
    assert tx.datagrams_to_send(0.6) == [(busy, PHONE_UDP)]
    ack = ack_for(invite, busy)
    tx.receive(ack, 0.7)
    assert tx.state is S.CONFIRMED
    assert tx.deadlines == {"I": pytest.approx(5.7)}
    tx.receive(ack, 1.0)  # absorbed
    tx.receive(invite, 1.0)  # absorbed too
    assert run_until(tx, 5.69) == []
    tx.handle_timer(5.7)
    assert tx.state is S.TERMINATED
    assert kinds(events(tx)) == ["TransactionTerminated"]


def test_invite_server_tcp_no_g_and_i_zero_but_h_stays() -> None:
    invite = req(transport="TCP")
    tx = InviteServerTransaction(invite, 0.0, source=PHONE_TCP)
    tx.send_response(resp(invite, 486), 0.0)
    assert tx.deadlines == {"H": 32.0}
    tx.datagrams_to_send(0.0)
    tx.receive(ack_for(invite, resp(invite, 486)), 0.1)
    assert tx.state is S.TERMINATED
    # Without an ACK, H fires on TCP too.
    tx2 = InviteServerTransaction(invite, 0.0, source=PHONE_TCP)
    tx2.send_response(resp(invite, 486), 0.0)
    tx2.datagrams_to_send(0.0)
    assert run_until(tx2, 100.0) == []
    assert kinds(events(tx2)) == ["TransactionTimeout", "TransactionTerminated"]


def test_invite_server_2xx_accepted_retransmits_until_ack() -> None:
    invite = req()
    tx = InviteServerTransaction(invite, 0.0, source=PHONE_UDP)
    ok = resp(invite, 200)
    tx.send_response(ok, 1.0)
    assert tx.state is S.ACCEPTED
    assert tx.deadlines == {"L": 33.0, "2xx": 1.5}
    tx.datagrams_to_send(1.0)
    sent = run_until(tx, 9.0)
    assert [t for t, _ in sent] == [1.5, 2.5, 4.5, 8.5]
    tx.receive(invite, 9.0)  # RFC 6026: INVITE retransmission absorbed in Accepted
    assert tx.datagrams_to_send(9.0) == []
    tx.receive(ack_for(invite, ok, branch="z9hG4bKnewack"), 9.1)
    assert tx.acked
    assert tx.deadlines == {"L": 33.0}
    assert run_until(tx, 100.0) == []
    assert tx.state is S.TERMINATED
    assert kinds(events(tx)) == ["TransactionTerminated"]


def test_invite_server_2xx_never_acked_times_out_at_l() -> None:
    invite = req()
    tx = InviteServerTransaction(invite, 0.0, source=PHONE_UDP)
    tx.send_response(resp(invite, 200), 0.0)
    tx.datagrams_to_send(0.0)
    sent = run_until(tx, 100.0)
    assert [t for t, _ in sent] == doubling(0.5, 4.0, 32.0)
    assert kinds(events(tx)) == ["TransactionTimeout", "TransactionTerminated"]


def test_invite_server_2xx_over_tcp_not_retransmitted() -> None:
    invite = req(transport="TCP")
    tx = InviteServerTransaction(invite, 0.0, source=PHONE_TCP)
    tx.send_response(resp(invite, 200), 0.0)
    assert tx.deadlines == {"L": 32.0}


def test_invite_server_2xx_retransmission_can_be_left_to_the_tu() -> None:
    invite = req()
    tx = InviteServerTransaction(invite, 0.0, source=PHONE_UDP, retransmit_2xx=False)
    ok = resp(invite, 200)
    tx.send_response(ok, 0.0)
    assert tx.deadlines == {"L": 32.0}
    tx.datagrams_to_send(0.0)
    tx.send_response(ok, 0.5)  # RFC 6026: the TU's own retransmission passes through
    assert tx.datagrams_to_send(0.5) == [(ok, PHONE_UDP)]
    assert tx.deadlines == {"L": 32.0}


@pytest.mark.parametrize(
    ("first", "second"),
    [(200, 486), (486, 200), (486, 486), (404, 180), (200, 180), (603, 100)],
)
def test_invite_server_second_final_is_tu_misuse(first: int, second: int) -> None:
    invite = req()
    tx = InviteServerTransaction(invite, 0.0, source=PHONE_UDP)
    tx.send_response(resp(invite, first), 0.0)
    with pytest.raises(SipProtocolError):
        tx.send_response(resp(invite, second), 0.1)


def test_server_response_must_answer_its_request() -> None:
    invite = req()
    tx = InviteServerTransaction(invite, 0.0, source=PHONE_UDP)
    with pytest.raises(SipProtocolError):
        tx.send_response(resp(req(cseq=2), 200), 0.0)
    with pytest.raises(SipProtocolError):
        tx.send_response(resp(req("BYE"), 200), 0.0)
    with pytest.raises(SipProtocolError):
        tx.send_response(Response(status=99, headers=invite.headers), 0.0)


# --- non-INVITE server (17.2.2) ---------------------------------------------------------------


def test_non_invite_server_trying_absorbs_retransmissions() -> None:
    request = req("OPTIONS")
    tx = NonInviteServerTransaction(request, 0.0, source=PHONE_UDP)
    assert tx.state is S.TRYING and tx.get_timer() is None
    tx.receive(request, 0.5)
    assert tx.datagrams_to_send(0.5) == []


def test_non_invite_server_proceeding_resends_provisional() -> None:
    request = req("REGISTER")
    tx = NonInviteServerTransaction(request, 0.0, source=PHONE_UDP)
    trying = resp(request, 100, None)
    tx.send_response(trying, 0.1)
    assert tx.state is S.PROCEEDING
    tx.datagrams_to_send(0.1)
    tx.receive(request, 0.5)
    assert tx.datagrams_to_send(0.5) == [(trying, PHONE_UDP)]


@pytest.mark.parametrize("t1", [0.5, 0.1, 1.0])
@pytest.mark.parametrize("status", [200, 401, 404, 486])
def test_non_invite_server_completed_resends_final_until_j(t1: float, status: int) -> None:
    request = req("BYE")
    tx = NonInviteServerTransaction(request, 0.0, source=PHONE_UDP, timers=TimerConfig(t1=t1))
    final = resp(request, status)
    tx.send_response(final, 1.0)
    assert tx.state is S.COMPLETED
    assert tx.deadlines == {"J": 1.0 + 64 * t1}
    tx.datagrams_to_send(1.0)
    tx.receive(request, 2.0)
    assert tx.datagrams_to_send(2.0) == [(final, PHONE_UDP)]
    with pytest.raises(SipProtocolError):
        tx.send_response(final, 2.0)
    run_until(tx, 1000.0)
    assert tx.state is S.TERMINATED
    assert kinds(events(tx)) == ["TransactionTerminated"]


def test_non_invite_server_tcp_j_is_zero() -> None:
    request = req("BYE", transport="TCP")
    tx = NonInviteServerTransaction(request, 0.0, source=PHONE_TCP)
    tx.send_response(resp(request, 200), 0.0)
    assert tx.state is S.TERMINATED
    assert kinds(events(tx)) == ["TransactionTerminated"]
    with pytest.raises(SipProtocolError):
        tx.send_response(resp(request, 200), 0.0)


def test_server_transaction_method_checks() -> None:
    with pytest.raises(SipProtocolError):
        InviteServerTransaction(req("BYE"), 0.0)
    with pytest.raises(SipProtocolError):
        NonInviteServerTransaction(req("INVITE"), 0.0)


# --- response routing (18.2.2, RFC 3581) ---------------------------------------------------------


@pytest.mark.parametrize(
    ("via_params", "via_port", "source", "expected"),
    [
        ("", 5060, ("udp", "10.0.0.1", 5060), ("udp", "10.0.0.1", 5060)),
        ("", None, ("udp", "10.0.0.1", 6000), ("udp", "10.0.0.1", 5060)),
        (";received=192.0.2.7", 5062, ("udp", "192.0.2.7", 40000), ("udp", "192.0.2.7", 5062)),
        (";rport", 5060, ("udp", "192.0.2.7", 40000), ("udp", "192.0.2.7", 40000)),
        (
            ";received=192.0.2.7;rport=40000",
            5060,
            ("udp", "192.0.2.7", 40000),
            ("udp", "192.0.2.7", 40000),
        ),
        (";maddr=239.1.1.1", 5070, ("udp", "10.0.0.1", 5070), ("udp", "239.1.1.1", 5070)),
        (";rport", 5060, ("tcp", "192.0.2.7", 40000), ("tcp", "192.0.2.7", 40000)),
        ("", 5060, ("tcp", "192.0.2.7", 40000), ("tcp", "192.0.2.7", 40000)),
    ],
)
def test_response_destination(
    via_params: str, via_port: int | None, source: Address, expected: Address
) -> None:
    request = req(via_params=via_params, via_port=via_port)
    assert response_destination(request, source) == expected
    tx = NonInviteServerTransaction(
        req("OPTIONS", via_params=via_params, via_port=via_port), 0.0, source=source
    )
    assert tx.destination == expected


# --- the layer: matching (17.1.3, 17.2.3) -------------------------------------------------------


def test_layer_new_request_then_retransmission_answered_with_last_response() -> None:
    layer = TransactionLayer()
    request = req("OPTIONS", via_params=";rport")
    layer.receive(request, ("udp", "192.0.2.7", 40000), 0.0)
    [event] = events(layer)
    assert isinstance(event, RequestReceived)
    assert event.request is request and event.source == ("udp", "192.0.2.7", 40000)
    assert event.transaction.source == ("udp", "192.0.2.7", 40000)
    layer.receive(request, ("udp", "192.0.2.7", 40000), 0.1)
    assert events(layer) == [] and layer.datagrams_to_send(0.1) == []
    ok = resp(request, 200)
    layer.send_response(event.transaction, ok, 0.2)
    assert layer.datagrams_to_send(0.2) == [(ok, ("udp", "192.0.2.7", 40000))]
    for t in (0.3, 1.0, 5.0):
        layer.receive(request, ("udp", "192.0.2.7", 40000), t)
        assert layer.datagrams_to_send(t) == [(ok, ("udp", "192.0.2.7", 40000))]
    assert events(layer) == []
    assert layer.get_timer() == pytest.approx(32.2)
    layer.handle_timer(32.2)
    assert kinds(events(layer)) == ["TransactionTerminated"]
    assert len(layer) == 0
    # After timer J the same request is new again.
    layer.receive(request, ("udp", "192.0.2.7", 40000), 40.0)
    assert kinds(events(layer)) == ["RequestReceived"]


def test_layer_same_branch_other_sent_by_or_method_is_another_transaction() -> None:
    layer = TransactionLayer()
    layer.receive(req("OPTIONS", via_host="10.0.0.1"), PHONE_UDP, 0.0)
    layer.receive(req("OPTIONS", via_host="10.0.0.5"), ("udp", "10.0.0.5", 5060), 0.0)
    layer.receive(req("OPTIONS", via_host="10.0.0.1", via_port=5070), PHONE_UDP, 0.0)
    layer.receive(req("INFO", via_host="10.0.0.1"), PHONE_UDP, 0.0)
    layer.receive(req("INVITE", via_host="10.0.0.1"), PHONE_UDP, 0.0)
    assert kinds(events(layer)) == ["RequestReceived"] * 5
    assert len(layer) == 5


def test_layer_server_key_ignores_received_and_case() -> None:
    a = req(via_params=";rport=40000;received=192.0.2.1", via_host="PHONE.example")
    b = req(via_params="", via_host="phone.EXAMPLE")
    assert server_key(a) == server_key(b)
    assert server_key(req("ACK")) == server_key(req("INVITE"))
    assert server_key(req("CANCEL")) != server_key(req("INVITE"))
    assert server_key(req("CANCEL"), "INVITE") == server_key(req("INVITE"))


def test_layer_invite_busy_flow_with_ack_absorbed() -> None:
    layer = TransactionLayer()
    invite = req()
    layer.receive(invite, PHONE_UDP, 0.0)
    [received] = events(layer)
    assert isinstance(received, RequestReceived)
    tx = received.transaction
    assert isinstance(tx, InviteServerTransaction)
    layer.handle_timer(0.2)
    assert lines(layer.datagrams_to_send(0.2)) == ["SIP/2.0 100 Trying"]
    busy = resp(invite, 486)
    layer.send_response(tx, busy, 1.0)
    assert layer.datagrams_to_send(1.0) == [(busy, PHONE_UDP)]
    sent = run_layer_until(layer, 2.0)
    assert [(t, line) for t, line, _ in sent] == [(1.5, "SIP/2.0 486 Busy Here")]
    layer.receive(ack_for(invite, busy), PHONE_UDP, 2.1)
    assert tx.state is S.CONFIRMED
    assert events(layer) == []  # the non-2xx ACK stays in the transaction
    assert run_layer_until(layer, 100.0) == []
    assert kinds(events(layer)) == ["TransactionTerminated"]
    assert len(layer) == 0


def test_layer_2xx_ack_goes_to_tu_and_stops_retransmission() -> None:
    layer = TransactionLayer()
    invite = req()
    layer.receive(invite, PHONE_UDP, 0.0)
    tx = events(layer)[0].transaction  # type: ignore[union-attr]
    assert isinstance(tx, InviteServerTransaction)
    ok = resp(invite, 200, "mine")
    layer.send_response(tx, ok, 0.1)
    layer.datagrams_to_send(0.1)
    sent = run_layer_until(layer, 2.0)
    assert [t for t, _, _ in sent] == [0.6, 1.6]
    ack = ack_for(invite, ok, branch="z9hG4bKack2xx")
    layer.receive(ack, PHONE_UDP, 2.0)
    [event] = events(layer)
    assert isinstance(event, AckReceived) and event.request is ack
    assert tx.acked
    assert run_layer_until(layer, 20.0) == []
    # Another copy of the ACK is still passed up; the dialog ignores repeats.
    layer.receive(ack, PHONE_UDP, 3.0)
    assert kinds(events(layer)) == ["AckReceived"]
    run_layer_until(layer, 100.0)
    assert kinds(events(layer)) == ["TransactionTerminated"]


def test_layer_2xx_ack_reusing_invite_branch_goes_to_tu() -> None:
    """RFC 6026 8.7: an ACK matching the INVITE transaction in Accepted is passed up."""
    layer = TransactionLayer()
    invite = req()
    layer.receive(invite, PHONE_UDP, 0.0)
    tx = events(layer)[0].transaction  # type: ignore[union-attr]
    assert isinstance(tx, InviteServerTransaction)
    ok = resp(invite, 200)
    layer.send_response(tx, ok, 0.0)
    layer.receive(ack_for(invite, ok), PHONE_UDP, 0.2)
    assert kinds(events(layer)) == ["AckReceived"]
    assert tx.acked and tx.state is S.ACCEPTED


def test_layer_ack_matching_nothing_goes_to_tu() -> None:
    layer = TransactionLayer()
    ack = req("ACK", branch="z9hG4bKlonely", to_tag="x")
    layer.receive(ack, PHONE_UDP, 0.0)
    [event] = events(layer)
    assert isinstance(event, AckReceived) and event.source == PHONE_UDP
    assert len(layer) == 0


def test_layer_cancel_flow() -> None:
    layer = TransactionLayer()
    invite = req()
    layer.receive(invite, PHONE_UDP, 0.0)
    tx = events(layer)[0].transaction  # type: ignore[union-attr]
    assert isinstance(tx, InviteServerTransaction)
    layer.send_response(tx, resp(invite, 180, "ours"), 0.1)
    layer.datagrams_to_send(0.1)
    cancel = cancel_for(invite)
    layer.receive(cancel, PHONE_UDP, 1.0)
    [event] = events(layer)
    assert isinstance(event, CancelReceived)
    assert event.invite_transaction is tx and event.cancel_request is cancel
    [(answer, where)] = layer.datagrams_to_send(1.0)
    assert isinstance(answer, Response) and answer.status == 200 and where == PHONE_UDP
    assert str(answer.cseq) == "1 CANCEL" and answer.to.tag == "ours"  # 9.2
    # A retransmitted CANCEL gets the same 200 and no second event.
    layer.receive(cancel, PHONE_UDP, 1.5)
    assert layer.datagrams_to_send(1.5) == [(answer, PHONE_UDP)]
    assert events(layer) == []
    terminated = resp(invite, 487, "ours")
    layer.send_response(tx, terminated, 1.6)
    assert layer.datagrams_to_send(1.6) == [(terminated, PHONE_UDP)]
    layer.receive(ack_for(invite, terminated), PHONE_UDP, 1.7)
    assert tx.state is S.CONFIRMED
    run_layer_until(layer, 100.0)
    assert kinds(events(layer)) == ["TransactionTerminated", "TransactionTerminated"]
    assert len(layer) == 0


def test_layer_cancel_without_invite_gets_481() -> None:
    layer = TransactionLayer()
    cancel = cancel_for(req())
    layer.receive(cancel, PHONE_UDP, 0.0)
    assert events(layer) == []
    [(answer, _)] = layer.datagrams_to_send(0.0)
    assert isinstance(answer, Response) and answer.status == 481


def test_layer_cancel_after_final_gets_200_and_no_event() -> None:
    layer = TransactionLayer()
    invite = req()
    layer.receive(invite, PHONE_UDP, 0.0)
    tx = events(layer)[0].transaction  # type: ignore[union-attr]
    assert isinstance(tx, InviteServerTransaction)
    layer.send_response(tx, resp(invite, 200), 0.1)
    layer.datagrams_to_send(0.1)
    layer.receive(cancel_for(invite), PHONE_UDP, 0.2)
    assert events(layer) == []
    [(answer, _)] = layer.datagrams_to_send(0.2)
    assert isinstance(answer, Response) and answer.status == 200
    assert tx.state is S.ACCEPTED


def test_layer_cancel_for_other_branch_does_not_match() -> None:
    layer = TransactionLayer()
    layer.receive(req(branch="z9hG4bKone"), PHONE_UDP, 0.0)
    events(layer)
    layer.receive(cancel_for(req(branch="z9hG4bKtwo")), PHONE_UDP, 0.1)
    assert events(layer) == []
    [(answer, _)] = layer.datagrams_to_send(0.1)
    assert isinstance(answer, Response) and answer.status == 481


# --- RFC 2543 fallback (17.2.3) ----------------------------------------------------------------


@pytest.mark.parametrize("branch", [None, "1234", "z9hG4bk-wrong-case"])
def test_layer_rfc2543_invite_retransmission_ack_and_cancel(branch: str | None) -> None:
    layer = TransactionLayer()
    invite = req(branch=branch)
    layer.receive(invite, PHONE_UDP, 0.0)
    tx = events(layer)[0].transaction  # type: ignore[union-attr]
    assert isinstance(tx, InviteServerTransaction)
    assert tx.key.branch is None and tx.key.legacy
    layer.receive(invite, PHONE_UDP, 0.1)  # retransmission: matched by URI/tags/Call-ID/CSeq/Via
    assert events(layer) == []
    layer.receive(req(branch=branch, cseq=2), PHONE_UDP, 0.1)  # another CSeq: a new request
    assert kinds(events(layer)) == ["RequestReceived"]
    layer.receive(req(branch=branch, from_tag="other"), PHONE_UDP, 0.1)
    assert kinds(events(layer)) == ["RequestReceived"]
    layer.receive(cancel_for(invite), PHONE_UDP, 0.2)
    assert kinds(events(layer)) == ["CancelReceived"]
    busy = resp(invite, 487, "ours")
    layer.send_response(tx, busy, 0.3)
    # An ACK whose To tag is not ours does not belong to the transaction.
    wrong = ack_for(invite, resp(invite, 487, "theirs"))
    layer.receive(wrong, PHONE_UDP, 0.4)
    assert kinds(events(layer)) == ["AckReceived"]
    assert tx.state is S.COMPLETED
    layer.receive(ack_for(invite, busy), PHONE_UDP, 0.5)
    assert events(layer) == []
    assert tx.state is S.CONFIRMED


# --- the layer: client side ----------------------------------------------------------------------


def test_layer_response_matching_by_branch_and_cseq_method() -> None:
    layer = TransactionLayer()
    invite = req(via_host="10.0.0.2", branch="z9hG4bKout1")
    tx = layer.send_request(invite, UDP, 0.0)
    assert isinstance(tx, InviteClientTransaction)
    assert layer.datagrams_to_send(0.0) == [(invite, UDP)]
    # Same branch, CSeq method CANCEL: belongs to no transaction here (no CANCEL was sent).
    layer.receive(resp(cancel_for(invite), 200), UDP, 0.1)
    assert kinds(events(layer)) == ["StrayResponse"]
    layer.receive(resp(invite, 180), UDP, 0.2)
    [event] = events(layer)
    assert isinstance(event, ResponseReceived) and event.transaction is tx
    # An unknown branch: stray.
    layer.receive(resp(req(branch="z9hG4bKnope"), 200), UDP, 0.3)
    [stray] = events(layer)
    assert isinstance(stray, StrayResponse) and stray.source == UDP


def test_layer_stray_2xx_after_timer_m() -> None:
    layer = TransactionLayer()
    invite = req(via_host="10.0.0.2", branch="z9hG4bKout2")
    tx = layer.send_request(invite, UDP, 0.0)
    ok = resp(invite, 200)
    layer.receive(ok, UDP, 1.0)
    assert kinds(events(layer)) == ["ResponseReceived"]
    layer.receive(ok, UDP, 1.5)
    assert kinds(events(layer)) == ["ResponseReceived"]  # no ACK sent via the layer yet
    run_layer_until(layer, 40.0)
    assert kinds(events(layer)) == ["TransactionTerminated"]
    assert tx.state is S.TERMINATED
    layer.receive(ok, UDP, 41.0)
    assert kinds(events(layer)) == ["StrayResponse"]


def test_layer_send_ack_reacks_retransmitted_2xx() -> None:
    layer = TransactionLayer()
    invite = req(via_host="10.0.0.2", branch="z9hG4bKout3")
    tx = layer.send_request(invite, UDP, 0.0)
    assert isinstance(tx, InviteClientTransaction)
    layer.datagrams_to_send(0.0)
    ok = resp(invite, 200)
    layer.receive(ok, UDP, 1.0)
    events(layer)
    ack = ack_for(invite, ok, branch="z9hG4bKack")
    target: Address = ("udp", "10.0.0.2", 5090)
    layer.send_ack(tx, ack, target, 1.0)
    assert layer.datagrams_to_send(1.0) == [(ack, target)]
    for t in (1.5, 2.5, 4.5):
        layer.receive(ok, UDP, t)
        assert layer.datagrams_to_send(t) == [(ack, target)]
    assert events(layer) == []
    with pytest.raises(SipProtocolError):
        layer.send_ack(tx, invite, target, 5.0)


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_layer_cancel_waits_for_a_provisional(transport: str) -> None:
    layer = TransactionLayer()
    dest: Address = (transport, "10.0.0.2", 5060)
    invite = req(
        via_host="10.0.0.9",
        branch="z9hG4bKc1",
        transport=transport.upper(),
        extra=("Route: <sip:proxy.example;lr>",),
    )
    tx = layer.send_request(invite, dest, 0.0)
    assert isinstance(tx, InviteClientTransaction)
    layer.datagrams_to_send(0.0)
    cancel = layer.cancel(tx, 0.1)
    assert cancel is not None
    assert layer.cancel(tx, 0.15) is cancel  # idempotent
    assert [m for m, _ in layer.datagrams_to_send(0.1)] == []  # 9.1: not before a 1xx
    layer.receive(resp(invite, 100, None), dest, 0.3)
    sent = layer.datagrams_to_send(0.3)
    assert sent == [(cancel, dest)]
    # 9.1
    assert cancel.method == "CANCEL" and cancel.uri == invite.uri
    assert cancel.headers.values("Via") == [invite.headers.values("Via")[0]]
    assert cancel.headers.lines("Route") == invite.headers.lines("Route")
    assert cancel.headers.get("To") == invite.headers.get("To")
    assert cancel.headers.get("From") == invite.headers.get("From")
    assert str(cancel.cseq) == "1 CANCEL" and cancel.call_id == invite.call_id
    assert kinds(events(layer)) == ["ResponseReceived"]
    # The CANCEL's 200 and the INVITE's 487 each go to their own transaction.
    layer.receive(resp(cancel, 200), dest, 0.4)
    layer.receive(resp(invite, 487), dest, 0.5)
    got = [
        (e.transaction.request.method, e.response.status)
        for e in events(layer)
        if isinstance(e, ResponseReceived)
    ]
    assert got == [("CANCEL", 200), ("INVITE", 487)]
    assert tx.state in (S.COMPLETED, S.TERMINATED)


def test_layer_cancel_dropped_when_final_arrives_first() -> None:
    layer = TransactionLayer()
    invite = req(via_host="10.0.0.9", branch="z9hG4bKc2")
    tx = layer.send_request(invite, UDP, 0.0)
    assert isinstance(tx, InviteClientTransaction)
    layer.datagrams_to_send(0.0)
    layer.cancel(tx, 0.1)
    layer.receive(resp(invite, 486), UDP, 0.2)
    assert lines(layer.datagrams_to_send(0.2)) == ["ACK sip:bob@10.0.0.2 SIP/2.0"]
    assert layer.cancel(tx, 0.3) is None
    layer.receive(resp(invite, 180), UDP, 0.4)
    assert layer.datagrams_to_send(0.4) == []


def test_layer_cancel_with_no_final_gives_up_after_64_t1() -> None:
    layer = TransactionLayer()
    invite = req(via_host="10.0.0.9", branch="z9hG4bKc3")
    tx = layer.send_request(invite, UDP, 0.0)
    assert isinstance(tx, InviteClientTransaction)
    layer.receive(resp(invite, 180), UDP, 0.1)
    layer.cancel(tx, 10.0)
    events(layer)
    run_layer_until(layer, 1000.0)
    evs = events(layer)
    timeouts = [e.transaction for e in evs if isinstance(e, TransactionTimeout)]
    assert tx in timeouts  # the CANCEL guard (9.1), 64*T1 after the CANCEL
    assert tx.state is S.TERMINATED
    assert len(layer) == 0


def test_layer_cancel_misuse() -> None:
    layer = TransactionLayer()
    options = layer.send_request(req("OPTIONS", branch="z9hG4bKo"), UDP, 0.0)
    with pytest.raises(SipProtocolError):
        layer.cancel(options, 0.0)  # type: ignore[arg-type]


def test_layer_send_request_misuse() -> None:
    layer = TransactionLayer()
    with pytest.raises(SipProtocolError):
        layer.send_request(req("ACK"), UDP, 0.0)
    layer.send_request(req("OPTIONS", branch="z9hG4bKdup"), UDP, 0.0)
    with pytest.raises(SipProtocolError):
        layer.send_request(req("OPTIONS", branch="z9hG4bKdup"), UDP, 0.0)


def test_layer_send_response_misuse() -> None:
    layer = TransactionLayer()
    other = TransactionLayer()
    invite = req()
    other.receive(invite, PHONE_UDP, 0.0)
    foreign = events(other)[0].transaction  # type: ignore[union-attr]
    assert isinstance(foreign, InviteServerTransaction)
    with pytest.raises(SipProtocolError):
        layer.send_response(foreign, resp(invite, 200), 0.0)
    other.send_response(foreign, resp(invite, 486), 0.0)
    with pytest.raises(SipProtocolError):
        other.send_response(foreign, resp(invite, 200), 0.0)


@pytest.mark.parametrize(
    "request_",
    [
        built("OPTIONS", VIA, FROM, TO, CALL_ID, ("CSeq", "1 INVITE")),
        built("OPTIONS", FROM, TO, CALL_ID, ("CSeq", "1 OPTIONS")),
        built("OPTIONS", VIA, FROM, TO, ("CSeq", "1 OPTIONS")),
        built("OPTIONS", VIA, FROM, TO, CALL_ID),
        built("OPTIONS", VIA, FROM, TO, CALL_ID, ("CSeq", "x OPTIONS")),
    ],
)
def test_layer_rejects_requests_it_cannot_match(request_: Request) -> None:
    layer = TransactionLayer()
    with pytest.raises(SipParseError):
        layer.receive(request_, PHONE_UDP, 0.0)
    assert len(layer) == 0 and events(layer) == []


def test_layer_treats_responses_without_branch_as_stray() -> None:
    layer = TransactionLayer()
    response = Response(
        status=200,
        headers=Headers.of(
            ("Via", "SIP/2.0/UDP 10.0.0.1:5060"), FROM, TO, CALL_ID, ("CSeq", "1 OPTIONS")
        ),
    )
    layer.receive(response, PHONE_UDP, 0.0)
    assert kinds(events(layer)) == ["StrayResponse"]


def test_layer_timer_is_the_earliest_of_all_transactions() -> None:
    layer = TransactionLayer()
    assert layer.get_timer() is None
    layer.send_request(req("OPTIONS", branch="z9hG4bKt1"), UDP, 0.0)  # E at 0.5
    layer.send_request(req("OPTIONS", branch="z9hG4bKt2"), TCP, 0.2)  # F at 32.2
    layer.receive(req("INVITE"), PHONE_UDP, 0.1)  # 100 Trying at 0.3
    assert layer.get_timer() == pytest.approx(0.3)
    layer.handle_timer(0.3)
    assert layer.get_timer() == pytest.approx(0.5)
    layer.handle_timer(0.49)
    assert layer.get_timer() == pytest.approx(0.5)
    layer.handle_timer(0.5)
    assert layer.get_timer() == pytest.approx(1.5)


def test_layer_many_transactions_all_end() -> None:
    layer = TransactionLayer()
    for i in range(300):
        dest = UDP if i % 2 else TCP
        layer.send_request(req("OPTIONS", branch=f"z9hG4bKm{i}"), dest, i * 0.01)
        layer.receive(req("BYE", branch=f"z9hG4bKs{i}", cseq=i + 2), PHONE_UDP, i * 0.01)
    assert len(layer) == 600
    for event in events(layer):
        if isinstance(event, RequestReceived):
            layer.send_response(event.transaction, resp(event.request, 200), 5.0)
    run_layer_until(layer, 1000.0)
    evs = events(layer)
    assert kinds(evs).count("TransactionTimeout") == 300
    assert kinds(evs).count("TransactionTerminated") == 600
    assert len(layer) == 0 and layer.get_timer() is None


# --- two layers over a lossy network (hypothesis) ---------------------------------------------------


class Network:
    """Delivers what one layer sends to the other after a delay; drops and duplicates."""

    def __init__(self, rng: random.Random, loss: float, dup: float) -> None:
        self.rng, self.loss, self.dup = rng, loss, dup
        self.in_flight: list[tuple[float, int, int, Message]] = []
        self.seq = 0

    def send(self, now: float, to: int, message: Message) -> None:
        copies = 0 if self.rng.random() < self.loss else 1
        if self.rng.random() < self.dup:
            copies += 1
        for _ in range(copies):
            self.seq += 1
            self.in_flight.append((now + self.rng.uniform(0.001, 0.8), self.seq, to, message))


RING_TIMEOUT = 60.0


def simulate(seed: int, loss: float, dup: float, method: str, status: int, reliable: bool) -> None:
    rng = random.Random(seed)
    net = Network(rng, 0.0 if reliable else loss, 0.0 if reliable else dup)
    uac, uas = TransactionLayer(), TransactionLayer()
    transport = "tcp" if reliable else "udp"
    to_uas: Address = (transport, "10.0.0.2", 5060)
    to_uac: Address = (transport, "10.0.0.1", 5060)
    request = req(method, branch=new_branch(), transport=transport.upper())
    client = uac.send_request(request, to_uas, 0.0)
    tu_requests: list[Request] = []
    tu_finals: list[int] = []
    timeouts: list[Transaction] = []
    answered_at = rng.uniform(0.0, 3.0)
    server_tx = None
    answered = gave_up = False
    now = 0.0
    for _ in range(10_000):
        for layer in (uac, uas):
            while (event := layer.next_event()) is not None:
                if isinstance(event, RequestReceived):
                    tu_requests.append(event.request)
                    server_tx = event.transaction
                elif (
                    isinstance(event, ResponseReceived)
                    and event.response.is_final
                    and event.transaction is client
                ):
                    tu_finals.append(event.response.status)
                    if method == "INVITE" and event.response.is_success:
                        ack = ack_for(request, event.response, branch=new_branch())
                        assert isinstance(client, InviteClientTransaction)
                        uac.send_ack(client, ack, to_uas, now)
                elif isinstance(event, TransactionTimeout):
                    timeouts.append(event.transaction)
        for layer, peer in ((uac, 1), (uas, 0)):
            for message, _ in layer.datagrams_to_send(now):
                net.send(now, peer, message)
        candidates = [t for t in (uac.get_timer(), uas.get_timer()) if t is not None]
        if not gave_up:
            candidates.append(max(RING_TIMEOUT, now))
        if server_tx is not None and not answered:
            candidates.append(max(answered_at, now))
        if net.in_flight:
            candidates.append(min(net.in_flight)[0])
        if not candidates:
            break
        now = max(now, min(candidates))
        if not gave_up and now >= RING_TIMEOUT:
            # The TU's own patience (an INVITE in Proceeding has no timer): CANCEL, and the
            # 9.1 guard ends the transaction if the final response never comes.
            gave_up = True
            if isinstance(client, InviteClientTransaction) and not client.terminated:
                uac.cancel(client, now)
            continue
        if server_tx is not None and not answered and now >= answered_at:
            answered = True
            uas.send_response(server_tx, resp(server_tx.request, status), now)
            continue
        due = [m for m in net.in_flight if m[0] <= now]
        if due:
            first = min(due)
            net.in_flight.remove(first)
            if first[2] == 0:
                uac.receive(first[3], to_uas, now)
            else:
                uas.receive(first[3], to_uac, now)
            continue
        uac.handle_timer(now)
        uas.handle_timer(now)
    else:
        raise AssertionError("simulation did not settle")
    # Invariants: the TU sees the request once and at most one final per transaction, unless
    # (INVITE 2xx) retransmissions came before the ACK; everything ends, nothing leaks.
    assert len(uac) == 0 and len(uas) == 0
    assert client.state is S.TERMINATED
    assert len(tu_requests) <= 1
    if method != "INVITE" or status >= 300:
        assert len(tu_finals) <= 1
    if tu_finals:
        assert set(tu_finals) == {status}
    else:
        assert client in timeouts
    if reliable or loss == 0.0:
        assert tu_requests and tu_finals == [status] and not timeouts


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    seed=st.integers(0, 2**32 - 1),
    loss=st.sampled_from([0.0, 0.1, 0.3, 0.6, 0.8]),
    dup=st.sampled_from([0.0, 0.2, 0.5]),
    method=st.sampled_from(["INVITE", "OPTIONS", "BYE"]),
    status=st.sampled_from([200, 404, 486]),
    reliable=st.booleans(),
)
def test_two_layers_over_a_lossy_network_settle(
    seed: int, loss: float, dup: float, method: str, status: int, reliable: bool
) -> None:
    simulate(seed, loss, dup, method, status, reliable)


@pytest.mark.parametrize("seed", range(40))
def test_two_layers_lossless_always_complete(seed: int) -> None:
    simulate(
        seed, 0.0, 0.0, ["INVITE", "OPTIONS"][seed % 2], [200, 486][seed // 2 % 2], seed % 3 == 0
    )


@pytest.mark.parametrize("seed", range(60))
def test_two_layers_heavy_loss_still_settle(seed: int) -> None:
    """Timeouts of every kind happen here (B, F, H, L, the CANCEL guard); nothing leaks."""
    simulate(
        seed, 0.7, 0.0, ["INVITE", "OPTIONS", "BYE"][seed % 3], [200, 486][seed // 3 % 2], False
    )


def test_events_name_every_transaction_once_terminated() -> None:
    layer = TransactionLayer()
    tx = layer.send_request(req("OPTIONS", branch="z9hG4bKonce"), TCP, 0.0)
    layer.receive(resp(tx.request, 200), TCP, 0.1)
    evs = events(layer)
    assert [type(e) for e in evs] == [ResponseReceived, TransactionTerminated]
    assert all(getattr(e, "transaction", None) is tx for e in evs)
