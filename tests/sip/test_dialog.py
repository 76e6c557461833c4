"""RFC 3261 section 12 dialogs: creation on both sides, in-dialog requests (routing, CSeq,
target refresh), the 2xx ACK, and finding dialogs. Pure: messages in, messages out."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from telephony.sip.dialog import Dialog, DialogSet, DialogState
from telephony.sip.errors import SipProtocolError
from telephony.sip.headers import NameAddr, Via
from telephony.sip.message import Message, Request, Response, make_response
from telephony.sip.parser import parse_message, parse_uri
from telephony.sip.transaction import (
    MAGIC_COOKIE,
    AckReceived,
    Address,
    InviteClientTransaction,
    RequestReceived,
    ResponseReceived,
    TransactionLayer,
    new_branch,
)
from telephony.sip.uri import SipUri

ALICE_VIA = Via("UDP", "10.0.0.1", 5060, (("branch", "z9hG4bKinv1"),))
SWITCH_VIA = Via("UDP", "10.0.0.2", 5060)


def parse(data: bytes | Message) -> Message:
    return parse_message(bytes(data))


def invite(
    *,
    record_route: tuple[str, ...] = (),
    route: tuple[str, ...] = (),
    cseq: int = 10,
    contact: str | None = "<sip:alice@10.0.0.1:5060>",
    extra: tuple[str, ...] = (),
    uri: str = "sip:bob@example.com",
) -> Request:
    lines = [
        f"INVITE {uri} SIP/2.0",
        f"Via: {ALICE_VIA}",
        "Max-Forwards: 70",
        *(f"Route: {r}" for r in route),
        *(f"Record-Route: {r}" for r in record_route),
        'From: "Alice" <sip:alice@example.com>;tag=atag',
        "To: <sip:bob@example.com>",
        "Call-ID: call-1@10.0.0.1",
        f"CSeq: {cseq} INVITE",
        *([f"Contact: {contact}"] if contact else []),
        *extra,
    ]
    message = parse(("\r\n".join(lines) + "\r\n\r\n").encode())
    assert isinstance(message, Request)
    return message


def answer(
    request: Request,
    status: int,
    *,
    tag: str | None = "btag",
    contact: str | None = "<sip:bob@10.0.0.3:5070>",
    record_route: tuple[str, ...] | None = None,
) -> Response:
    headers: list[tuple[str, str]] = []
    if contact:
        headers.append(("Contact", contact))
    rr = record_route if record_route is not None else tuple(request.headers.values("Record-Route"))
    headers.extend(("Record-Route", r) for r in rr)
    response = make_response(request, status, to_tag=tag, headers=tuple(headers))
    parsed = parse(response)
    assert isinstance(parsed, Response)
    return parsed


def uac_dialog(**kwargs: object) -> tuple[Request, Response, Dialog]:
    rr = kwargs.pop("record_route", ())
    req = invite(record_route=rr, **kwargs)  # type: ignore[arg-type]
    ok = answer(req, 200)
    return req, ok, Dialog.from_uac(req, ok)


def uas_dialog(**kwargs: object) -> tuple[Request, Response, Dialog]:
    rr = kwargs.pop("record_route", ())
    req = invite(record_route=rr, **kwargs)  # type: ignore[arg-type]
    ok = answer(req, 200, tag="stag", contact="<sip:switch@10.0.0.2:5060>")
    return req, ok, Dialog.from_uas(req, ok)


def in_dialog(
    method: str,
    *,
    cseq: int,
    from_tag: str = "btag",
    to_tag: str = "atag",
    call_id: str = "call-1@10.0.0.1",
    contact: str | None = None,
) -> Request:
    lines = [
        f"{method} sip:alice@10.0.0.1:5060 SIP/2.0",
        f"Via: SIP/2.0/UDP 10.0.0.3:5070;branch={new_branch()}",
        "Max-Forwards: 70",
        f"From: <sip:bob@example.com>;tag={from_tag}",
        f"To: <sip:alice@example.com>;tag={to_tag}",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} {method}",
        *([f"Contact: {contact}"] if contact else []),
    ]
    message = parse(("\r\n".join(lines) + "\r\n\r\n").encode())
    assert isinstance(message, Request)
    return message


# --- creation (12.1) ------------------------------------------------------------------------------


def test_uac_dialog_from_2xx() -> None:
    req, ok, dialog = uac_dialog(
        record_route=("<sip:p1.example;lr>", "<sip:p2.example;lr>, <sip:p3.example;lr>")
    )
    assert dialog.state is DialogState.CONFIRMED and dialog.is_uac
    assert dialog.dialog_id == ("call-1@10.0.0.1", "atag", "btag")
    assert dialog.local_uri.uri == parse_uri("sip:alice@example.com")
    assert dialog.local_uri.display_name == "Alice"
    assert dialog.local_uri.tag is None and dialog.remote_uri.tag is None
    assert dialog.remote_uri.uri == parse_uri("sip:bob@example.com")
    assert dialog.remote_target == parse_uri("sip:bob@10.0.0.3:5070")
    # 12.1.2: the Record-Route, reversed.
    assert [str(r.uri) for r in dialog.route_set] == [
        "sip:p3.example;lr",
        "sip:p2.example;lr",
        "sip:p1.example;lr",
    ]
    assert dialog.local_seq == 10 and dialog.remote_seq is None
    assert dialog.local_contact is not None
    assert str(dialog.local_contact.uri) == "sip:alice@10.0.0.1:5060"
    assert not dialog.secure


def test_uac_early_dialog_from_1xx_with_tag() -> None:
    req = invite()
    dialog = Dialog.from_uac(req, answer(req, 180))
    assert dialog.state is DialogState.EARLY
    no_contact = Dialog.from_uac(req, answer(req, 183, contact=None))
    assert no_contact.remote_target == req.uri


@pytest.mark.parametrize(
    ("status", "tag", "contact"),
    [(100, None, None), (180, None, "<sip:b@h>"), (486, "x", "<sip:b@h>"), (200, "x", None)],
)
def test_uac_dialog_refused(status: int, tag: str | None, contact: str | None) -> None:
    req = invite()
    with pytest.raises(SipProtocolError):
        Dialog.from_uac(req, answer(req, status, tag=tag, contact=contact))


def test_uac_dialog_response_must_answer_the_request() -> None:
    req = invite()
    with pytest.raises(SipProtocolError):
        Dialog.from_uac(req, answer(invite(cseq=11), 200))


def test_uas_dialog() -> None:
    req, ok, dialog = uas_dialog(record_route=("<sip:p1.example;lr>", "<sip:p2.example;lr>"))
    assert not dialog.is_uac and dialog.state is DialogState.CONFIRMED
    assert dialog.dialog_id == ("call-1@10.0.0.1", "stag", "atag")
    assert dialog.local_uri.uri == parse_uri("sip:bob@example.com")
    assert dialog.remote_uri.uri == parse_uri("sip:alice@example.com")
    assert dialog.remote_target == parse_uri("sip:alice@10.0.0.1:5060")
    # 12.1.1: the request's Record-Route, in order.
    assert [str(r.uri) for r in dialog.route_set] == ["sip:p1.example;lr", "sip:p2.example;lr"]
    assert dialog.remote_seq == 10 and dialog.local_seq is None
    assert dialog.local_contact is not None
    assert str(dialog.local_contact.uri) == "sip:switch@10.0.0.2:5060"


def test_uas_dialog_needs_contact_and_tag() -> None:
    req = invite(contact=None)
    with pytest.raises(SipProtocolError):
        Dialog.from_uas(req, answer(req, 200))
    req = invite()
    with pytest.raises(SipProtocolError):
        Dialog.from_uas(req, answer(req, 200, tag=None))
    with pytest.raises(SipProtocolError):
        Dialog.from_uas(req, answer(req, 404))


def test_sips_request_uri_makes_a_secure_dialog() -> None:
    req = invite(uri="sips:bob@example.com")
    assert Dialog.from_uac(req, answer(req, 200)).secure


# --- in-dialog requests (12.2.1.1) ----------------------------------------------------------------


@pytest.mark.parametrize(
    "method", ["INVITE", "BYE", "INFO", "UPDATE", "OPTIONS", "REFER", "NOTIFY"]
)
def test_create_request_without_route_set(method: str) -> None:
    _, _, dialog = uac_dialog()
    request = dialog.create_request(method, via=SWITCH_VIA)
    assert request.method == method
    assert request.uri == dialog.remote_target
    assert request.headers.lines("Route") == []
    assert str(request.cseq) == f"11 {method}"
    assert request.from_.tag == "atag" and request.to.tag == "btag"
    assert request.call_id == "call-1@10.0.0.1"
    assert request.headers.get("Max-Forwards") == "70"
    assert len(request.vias) == 1
    branch = request.top_via.branch
    assert branch is not None and branch.startswith(MAGIC_COOKIE)
    refresh = method in ("INVITE", "UPDATE", "REFER", "NOTIFY")
    assert bool(request.contacts) == refresh  # target refreshes carry our Contact
    # It survives the wire.
    assert parse(request) == parse(parse(request))


def test_create_request_counts_cseq_up() -> None:
    _, _, dialog = uac_dialog()
    seqs = [dialog.create_request(m, via=SWITCH_VIA).cseq.seq for m in ("INFO", "OPTIONS", "INFO")]
    assert seqs == [11, 12, 13]
    assert dialog.local_seq == 13


def test_create_request_keeps_a_given_branch_and_adds_headers_and_body() -> None:
    _, _, dialog = uac_dialog()
    via = SWITCH_VIA.with_params(branch="z9hG4bKgiven", rport=None)
    request = dialog.create_request(
        "INFO",
        via=via,
        body=b"Signal=5\r\nDuration=160\r\n",
        content_type="application/dtmf-relay",
        extra_headers=(("X-Leg", "a"),),
    )
    assert request.top_via.branch == "z9hG4bKgiven"
    assert request.top_via.param("rport") == ""
    assert request.headers.get("X-Leg") == "a"
    assert request.content_type == "application/dtmf-relay"
    wire = parse(request)
    assert wire.body == b"Signal=5\r\nDuration=160\r\n"
    assert wire.headers.get("Content-Length") == str(len(b"Signal=5\r\nDuration=160\r\n"))


def test_create_request_loose_routing() -> None:
    _, _, dialog = uac_dialog(record_route=("<sip:p1.example;lr>", "<sip:p2.example;lr;ftag=x>"))
    request = dialog.create_request("BYE", via=SWITCH_VIA)
    assert request.uri == dialog.remote_target
    assert request.headers.values("Route") == [
        "<sip:p2.example;lr;ftag=x>",
        "<sip:p1.example;lr>",
    ]
    assert dialog.next_hop() == parse_uri("sip:p2.example;lr;ftag=x")


def test_create_request_strict_routing() -> None:
    _, _, dialog = uac_dialog(
        record_route=("<sip:p1.example;lr>", "<sip:strict.example;method=INVITE;transport=tcp>")
    )
    request = dialog.create_request("BYE", via=SWITCH_VIA)
    # 12.2.1.1: the strict router's URI becomes the Request-URI, minus `method`; the remote
    # target goes last in Route.
    assert str(request.uri) == "sip:strict.example;transport=tcp"
    assert request.headers.values("Route") == [
        "<sip:p1.example;lr>",
        "<sip:bob@10.0.0.3:5070>",
    ]


def test_uas_side_picks_its_first_cseq() -> None:
    _, _, dialog = uas_dialog()
    first = dialog.create_request("INFO", via=SWITCH_VIA).cseq.seq
    second = dialog.create_request("INFO", via=SWITCH_VIA).cseq.seq
    assert 0 < first < 2**31 and second == first + 1
    bye = dialog.create_request("BYE", via=SWITCH_VIA)
    assert bye.from_.tag == "stag" and bye.to.tag == "atag"
    assert bye.uri == parse_uri("sip:alice@10.0.0.1:5060")


@pytest.mark.parametrize("method", ["ACK", "CANCEL", "ack"])
def test_create_request_refuses_ack_and_cancel(method: str) -> None:
    _, _, dialog = uac_dialog()
    with pytest.raises(SipProtocolError):
        dialog.create_request(method, via=SWITCH_VIA)


def test_bye_ends_the_dialog_at_once() -> None:
    _, _, dialog = uac_dialog()
    dialog.create_request("BYE", via=SWITCH_VIA)
    assert dialog.terminated
    with pytest.raises(SipProtocolError):
        dialog.create_request("INFO", via=SWITCH_VIA)


def test_one_reinvite_at_a_time() -> None:
    _, _, dialog = uac_dialog()
    reinvite = dialog.create_request(
        "INVITE", via=SWITCH_VIA, body=b"v=0\r\n", content_type="application/sdp"
    )
    with pytest.raises(SipProtocolError):
        dialog.create_request("INVITE", via=SWITCH_VIA)  # 14.1
    dialog.create_request("INFO", via=SWITCH_VIA)  # other requests may overlap
    dialog.update_from_response(answer(reinvite, 180))
    with pytest.raises(SipProtocolError):
        dialog.create_request("INVITE", via=SWITCH_VIA)
    dialog.update_from_response(answer(reinvite, 200))
    dialog.create_request("INVITE", via=SWITCH_VIA)


# --- the 2xx ACK (13.2.2.4) -----------------------------------------------------------------------


def test_create_ack_for_2xx() -> None:
    req, ok, dialog = uac_dialog(
        record_route=("<sip:p1.example;lr>",),
        extra=('Proxy-Authorization: Digest username="alice", realm="x"',),
    )
    ack = dialog.create_ack(req, ok)
    assert ack.method == "ACK"
    assert str(ack.cseq) == "10 ACK"  # the INVITE's number
    assert ack.uri == dialog.remote_target
    assert ack.headers.values("Route") == ["<sip:p1.example;lr>"]
    assert ack.top_via.branch != req.top_via.branch  # a new transaction's branch
    assert ack.top_via.host == req.top_via.host
    assert ack.headers.get("Proxy-Authorization") == 'Digest username="alice", realm="x"'
    assert ack.contacts == []
    assert dialog.local_seq == 10  # an ACK does not count
    with_sdp = dialog.create_ack(
        req, ok, via=SWITCH_VIA, body=b"v=0\r\n", content_type="application/sdp"
    )
    assert with_sdp.top_via.host == "10.0.0.2" and with_sdp.top_via.branch
    assert with_sdp.body == b"v=0\r\n"
    reused = dialog.create_ack(req, ok, via=req.top_via)
    assert reused.top_via.branch != req.top_via.branch


def test_create_ack_for_reinvite_uses_its_cseq() -> None:
    _, _, dialog = uac_dialog()
    reinvite = dialog.create_request("INVITE", via=SWITCH_VIA.with_params(branch=new_branch()))
    ok = answer(reinvite, 200, contact="<sip:bob@10.9.9.9>")
    dialog.update_from_response(ok)
    ack = dialog.create_ack(reinvite, ok)
    assert str(ack.cseq) == "11 ACK"
    assert ack.uri == parse_uri("sip:bob@10.9.9.9")


@pytest.mark.parametrize("case", ["non-2xx", "other-invite", "other-dialog", "not-invite"])
def test_create_ack_misuse(case: str) -> None:
    req, ok, dialog = uac_dialog()
    if case == "non-2xx":
        args = (req, answer(req, 486))
    elif case == "other-invite":
        args = (invite(cseq=99), ok)
    elif case == "other-dialog":
        args = (req, answer(req, 200, tag="fork2"))
    else:
        info = dialog.create_request("INFO", via=SWITCH_VIA)
        args = (info, answer(info, 200))
    with pytest.raises(SipProtocolError):
        dialog.create_ack(*args)


# --- responses to our requests (12.2.1.2, 13.2.2.4) ---------------------------------------------


def test_early_dialog_confirmed_by_2xx_with_new_route_set() -> None:
    req = invite()
    dialog = Dialog.from_uac(req, answer(req, 180, record_route=("<sip:early.example;lr>",)))
    assert [str(r.uri) for r in dialog.route_set] == ["sip:early.example;lr"]
    dialog.update_from_response(answer(req, 183, contact="<sip:bob@10.0.0.4>"))
    assert dialog.remote_target == parse_uri("sip:bob@10.0.0.4")
    with pytest.raises(SipProtocolError):
        dialog.create_request("INVITE", via=SWITCH_VIA)  # the initial INVITE is pending
    ok = answer(req, 200, contact="<sip:bob@10.0.0.5>", record_route=("<sip:a;lr>", "<sip:b;lr>"))
    dialog.update_from_response(ok)
    assert dialog.state is DialogState.CONFIRMED
    assert dialog.remote_target == parse_uri("sip:bob@10.0.0.5")
    assert [str(r.uri) for r in dialog.route_set] == ["sip:b;lr", "sip:a;lr"]
    dialog.create_request("INVITE", via=SWITCH_VIA)


def test_early_dialog_ended_by_non_2xx() -> None:
    req = invite()
    dialog = Dialog.from_uac(req, answer(req, 180))
    dialog.update_from_response(answer(req, 486))
    assert dialog.terminated


@pytest.mark.parametrize("status", [408, 481])
def test_408_and_481_end_the_dialog(status: int) -> None:
    _, _, dialog = uac_dialog()
    info = dialog.create_request("INFO", via=SWITCH_VIA)
    dialog.update_from_response(answer(info, status))
    assert dialog.terminated


@pytest.mark.parametrize(
    ("method", "status", "refreshes"),
    [
        ("INVITE", 200, True),
        ("UPDATE", 200, True),
        ("INFO", 200, False),
        ("OPTIONS", 200, False),
        ("INVITE", 488, False),
        ("UPDATE", 491, False),
    ],
)
def test_target_refresh_by_response(method: str, status: int, refreshes: bool) -> None:
    _, _, dialog = uac_dialog()
    before = dialog.remote_target
    request = dialog.create_request(method, via=SWITCH_VIA)
    dialog.update_from_response(answer(request, status, contact="<sip:bob@192.0.2.99:5999>"))
    expected = parse_uri("sip:bob@192.0.2.99:5999") if refreshes else before
    assert dialog.remote_target == expected
    assert not dialog.terminated


def test_response_for_another_dialog_is_refused() -> None:
    _, _, dialog = uac_dialog()
    info = dialog.create_request("INFO", via=SWITCH_VIA)
    with pytest.raises(SipProtocolError):
        dialog.update_from_response(
            answer(info, 200).with_header("To", "<sip:bob@example.com>;tag=someone-else")
        )


# --- requests from the peer (12.2.2, 14.2) -------------------------------------------------------


def test_receive_request_checks_identity() -> None:
    _, _, dialog = uac_dialog()
    assert dialog.receive_request(in_dialog("INFO", cseq=1)) is None
    assert dialog.receive_request(in_dialog("INFO", cseq=2, from_tag="x")) == 481
    assert dialog.receive_request(in_dialog("INFO", cseq=3, to_tag="x")) == 481
    assert dialog.receive_request(in_dialog("INFO", cseq=4, call_id="other")) == 481


def test_receive_request_cseq_order() -> None:
    _, _, dialog = uac_dialog()
    assert dialog.remote_seq is None  # any first number goes (12.2.2)
    assert dialog.receive_request(in_dialog("INFO", cseq=500)) is None
    assert dialog.remote_seq == 500
    assert dialog.receive_request(in_dialog("INFO", cseq=499)) == 500
    assert dialog.receive_request(in_dialog("OPTIONS", cseq=501)) is None
    assert dialog.receive_request(in_dialog("INFO", cseq=1)) == 500
    assert dialog.remote_seq == 501
    # An ACK carries its INVITE's number and is never refused nor counted.
    assert dialog.receive_request(in_dialog("ACK", cseq=3)) is None
    assert dialog.remote_seq == 501


def test_uas_dialog_refuses_cseq_below_the_invite() -> None:
    _, _, dialog = uas_dialog(cseq=10)
    bye = in_dialog("BYE", cseq=9, from_tag="atag", to_tag="stag")
    assert dialog.receive_request(bye) == 500
    bye = in_dialog("BYE", cseq=11, from_tag="atag", to_tag="stag")
    assert dialog.receive_request(bye) is None
    assert dialog.terminated
    again = in_dialog("INFO", cseq=12, from_tag="atag", to_tag="stag")
    assert dialog.receive_request(again) == 481


@pytest.mark.parametrize(
    ("method", "refreshes"),
    [("INVITE", True), ("UPDATE", True), ("NOTIFY", True), ("INFO", False), ("OPTIONS", False)],
)
def test_target_refresh_by_request(method: str, refreshes: bool) -> None:
    _, _, dialog = uac_dialog()
    before = dialog.remote_target
    assert dialog.receive_request(in_dialog(method, cseq=1, contact="<sip:bob@10.7.7.7>")) is None
    assert dialog.remote_target == (parse_uri("sip:bob@10.7.7.7") if refreshes else before)


def test_reinvite_glare() -> None:
    _, _, dialog = uac_dialog()
    # Theirs overlapping theirs: 500 (14.2).
    first = in_dialog("INVITE", cseq=1)
    assert dialog.receive_request(first) is None
    assert dialog.receive_request(in_dialog("INVITE", cseq=2)) == 500
    dialog.update_from_local_response(make_response(first, 100))
    assert dialog.receive_request(in_dialog("INVITE", cseq=3)) == 500
    dialog.update_from_local_response(make_response(first, 200, to_tag="atag"))
    assert dialog.receive_request(in_dialog("INVITE", cseq=4)) is None
    dialog.update_from_local_response(make_response(in_dialog("INVITE", cseq=4), 488))
    # Theirs overlapping ours: 491 (14.2).
    ours = dialog.create_request("INVITE", via=SWITCH_VIA)
    assert dialog.receive_request(in_dialog("INVITE", cseq=5)) == 491
    assert dialog.receive_request(in_dialog("INFO", cseq=6)) is None
    dialog.update_from_response(answer(ours, 491))
    assert dialog.receive_request(in_dialog("INVITE", cseq=7)) is None


def test_uas_early_dialog_confirmed_by_our_2xx() -> None:
    req = invite()
    ringing = answer(req, 180, tag="stag")
    dialog = Dialog.from_uas(req, ringing)
    assert dialog.state is DialogState.EARLY
    update = in_dialog(
        "UPDATE", cseq=11, from_tag="atag", to_tag="stag", contact="<sip:a@10.1.1.1>"
    )
    assert dialog.receive_request(update) is None  # RFC 3311: UPDATE in an early dialog
    assert dialog.remote_target == parse_uri("sip:a@10.1.1.1")
    reinvite = in_dialog("INVITE", cseq=12, from_tag="atag", to_tag="stag")
    assert dialog.receive_request(reinvite) == 500  # the initial INVITE is unanswered
    dialog.update_from_local_response(answer(req, 200, tag="stag"))
    assert dialog.state is DialogState.CONFIRMED
    assert dialog.receive_request(reinvite) is None


def test_uas_early_dialog_ended_by_our_non_2xx() -> None:
    req = invite()
    dialog = Dialog.from_uas(req, answer(req, 183, tag="stag"))
    dialog.update_from_local_response(answer(req, 487, tag="stag"))
    assert dialog.terminated


@given(st.lists(st.integers(0, 2**31 - 1), min_size=1, max_size=40))
def test_cseq_model(seqs: list[int]) -> None:
    """12.2.2 against a model: accepted iff not below the highest accepted so far."""
    _, _, dialog = uac_dialog()
    highest: int | None = None
    for seq in seqs:
        status = dialog.receive_request(in_dialog("INFO", cseq=seq))
        if highest is not None and seq < highest:
            assert status == 500
        else:
            assert status is None
            highest = seq
        assert dialog.remote_seq == highest


# --- DialogSet ------------------------------------------------------------------------------------


def test_dialog_set_finds_by_request_and_response() -> None:
    dialogs = DialogSet()
    req = invite()
    a = dialogs.add(Dialog.from_uac(req, answer(req, 180, tag="fork-a")))
    b = dialogs.add(Dialog.from_uac(req, answer(req, 180, tag="fork-b")))
    assert len(dialogs) == 2 and a in dialogs and set(dialogs) == {a, b}
    assert dialogs.find_for_response(answer(req, 200, tag="fork-b")) is b
    assert dialogs.find_for_response(answer(req, 200, tag="fork-c")) is None
    assert dialogs.find_for_response(answer(req, 100, tag=None)) is None
    assert dialogs.find_for_request(in_dialog("BYE", cseq=1, from_tag="fork-a")) is a
    assert dialogs.find_for_request(in_dialog("BYE", cseq=1, from_tag="fork-z")) is None
    assert dialogs.find_for_request(invite()) is None  # no To tag: not in a dialog
    assert dialogs.for_call("call-1@10.0.0.1") == [a, b]
    assert dialogs.for_call("call-1@10.0.0.1", "other") == []
    assert dialogs.get(a.dialog_id) is a
    with pytest.raises(SipProtocolError):
        dialogs.add(Dialog.from_uac(req, answer(req, 200, tag="fork-a")))
    a.terminate()
    assert dialogs.prune() == [a]
    dialogs.remove(b)
    assert len(dialogs) == 0


def test_uas_dialog_found_for_peer_requests() -> None:
    dialogs = DialogSet()
    _, _, dialog = uas_dialog()
    dialogs.add(dialog)
    bye = in_dialog("BYE", cseq=11, from_tag="atag", to_tag="stag")
    assert dialogs.find_for_request(bye) is dialog


# --- both ends together, over two transaction layers ----------------------------------------------


def test_call_between_two_user_agents_through_transaction_layers() -> None:
    """INVITE / 180 / 200 / ACK, a re-INVITE, INFO, then BYE; each side's dialog built from
    the wire form of the other's messages."""
    alice_addr: Address = ("udp", "10.0.0.1", 5060)
    bob_addr: Address = ("udp", "10.0.0.3", 5070)
    alice, bob = TransactionLayer(), TransactionLayer()
    wire: list[tuple[TransactionLayer, Message, Address]] = []
    now = 0.0

    def pump() -> list[object]:
        out: list[object] = []
        for _ in range(50):
            for layer, peer, src in ((alice, bob, alice_addr), (bob, alice, bob_addr)):
                for message, _dest in layer.datagrams_to_send(now):
                    wire.append((peer, parse(message), src))
            if not wire:
                break
            peer, message, src = wire.pop(0)
            peer.receive(message, src, now)
            for layer in (alice, bob):
                while (event := layer.next_event()) is not None:
                    out.append(event)
        return out

    req = invite(record_route=("<sip:proxy.example;lr>",))
    tx = alice.send_request(req, bob_addr, now)
    assert isinstance(tx, InviteClientTransaction)
    [incoming] = [e for e in pump() if isinstance(e, RequestReceived)]
    server_tx = incoming.transaction
    ringing = answer(incoming.request, 180)
    bob_dialog = Dialog.from_uas(incoming.request, ringing)
    bob.send_response(server_tx, ringing, now)
    [got_180] = [e for e in pump() if isinstance(e, ResponseReceived)]
    alice_dialog = Dialog.from_uac(req, got_180.response)
    assert alice_dialog.state is DialogState.EARLY

    now = 1.0
    ok = answer(incoming.request, 200)
    bob.send_response(server_tx, ok, now)
    bob_dialog.update_from_local_response(ok)
    [got_200] = [e for e in pump() if isinstance(e, ResponseReceived)]
    alice_dialog.update_from_response(got_200.response)
    assert alice_dialog.state is bob_dialog.state is DialogState.CONFIRMED
    assert alice_dialog.dialog_id == (
        bob_dialog.call_id,
        bob_dialog.remote_tag,
        bob_dialog.local_tag,
    )
    ack = alice_dialog.create_ack(req, got_200.response)
    alice.send_ack(tx, ack, bob_addr, now)
    [got_ack] = [e for e in pump() if isinstance(e, AckReceived)]
    assert bob_dialog.receive_request(got_ack.request) is None
    assert got_ack.request.headers.values("Route") == ["<sip:proxy.example;lr>"]

    # In-dialog requests both ways.
    for sender, receiver, layer, peer_addr, method in (
        (bob_dialog, alice_dialog, bob, alice_addr, "INVITE"),
        (alice_dialog, bob_dialog, alice, bob_addr, "INFO"),
        (bob_dialog, alice_dialog, bob, alice_addr, "UPDATE"),
        (alice_dialog, bob_dialog, alice, bob_addr, "OPTIONS"),
        (alice_dialog, bob_dialog, alice, bob_addr, "BYE"),
    ):
        now += 1.0
        via = Via("UDP", peer_addr[1], peer_addr[2])
        request = sender.create_request(method, via=via)
        layer.send_request(request, peer_addr, now)
        [arrived] = [e for e in pump() if isinstance(e, RequestReceived)]
        assert receiver.receive_request(arrived.request) is None
        final = make_response(arrived.request, 200)
        other = alice if layer is bob else bob
        other.send_response(arrived.transaction, final, now)
        receiver.update_from_local_response(final)
        [reply] = [e for e in pump() if isinstance(e, ResponseReceived)]
        sender.update_from_response(reply.response)
        assert reply.response.status == 200
        if method == "INVITE":
            reack = sender.create_ack(request, reply.response)
            assert str(reack.cseq) == f"{request.cseq.seq} ACK"
    assert alice_dialog.terminated and bob_dialog.terminated
    assert isinstance(bob_dialog.remote_target, SipUri)
    assert bob_dialog.remote_seq == alice_dialog.local_seq


def test_name_addr_params_other_than_tag_survive() -> None:
    req = invite()
    dialog = Dialog.from_uac(req, answer(req, 200))
    dialog.local_uri = NameAddr(uri=parse_uri("sip:alice@example.com"), params=(("x", "1"),))
    request = dialog.create_request("INFO", via=SWITCH_VIA)
    assert request.from_.param("x") == "1" and request.from_.tag == "atag"
