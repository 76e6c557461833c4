"""RFC 4475 section 3: every torture message is handled as the RFC says.

The fixtures are bit-exact files under `torture/`, indexed by `torture/index.json` (which the
switch's integration test also replays over UDP and TCP). Here: valid ones parse and their
key fields come out right; invalid ones are rejected for the right reason with the right
status; requests that fail are answered by `error_response_for`, responses are dropped; and
a TCP stream carrying each message is framed as RFC 3261 18.3 says.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from telephony.sip.errors import SipParseError
from telephony.sip.message import Message, Request, Response
from telephony.sip.parser import StreamFramer, error_response_for, parse_message
from telephony.sip.uri import AbsoluteUri, SipUri

TORTURE = Path(__file__).resolve().parent / "torture"
INDEX: list[dict[str, Any]] = json.loads((TORTURE / "index.json").read_text("utf-8"))["cases"]
BY_FILE = {case["file"]: case for case in INDEX}


def load(name: str) -> bytes:
    return (TORTURE / name).read_bytes()


def parses(case: dict[str, Any]) -> bool:
    return case["expected"] == "valid" or case["layer"] == "application"


def request(name: str) -> Request:
    message = parse_message(load(name))
    assert isinstance(message, Request)
    return message


def sip(uri: object) -> SipUri:
    assert isinstance(uri, SipUri)
    return uri


def test_the_index_covers_every_message_of_section_3_once() -> None:
    sections = [case["section"] for case in INDEX]
    assert len(INDEX) == 49 and len(set(sections)) == 49
    assert sorted(p.name for p in TORTURE.glob("*.dat")) == sorted(BY_FILE)
    assert sum(s.startswith("3.1.1.") for s in sections) == 13
    assert sum(s.startswith("3.1.2.") for s in sections) == 19
    assert sum(s.startswith("3.3.") for s in sections) == 15
    for case in INDEX:
        assert case["expected"] in ("valid", "invalid") or isinstance(case["expected"], int)
        assert case["layer"] in ("parser", "application")


@pytest.mark.parametrize("case", INDEX, ids=lambda c: c["file"])
def test_each_message_parses_or_fails_as_the_rfc_says(case: dict[str, Any]) -> None:
    data = load(case["file"])
    if parses(case):
        message = parse_message(data)
        assert isinstance(message, Response if case["kind"] == "response" else Request)
        return
    with pytest.raises(SipParseError) as info:
        parse_message(data)
    expected = 400 if case["expected"] == "invalid" else case["expected"]
    assert info.value.status == expected


# Invalid messages must be refused for the reason the RFC describes, not by accident.
REASONS = {
    "badinv01.dat": "Empty element in Via",
    "clerr.dat": "Content-Length larger",
    "ncl.dat": "Bad Content-Length",
    "scalar02.dat": "CSeq number",
    "scalarlg.dat": "CSeq number",
    "quotbal.dat": "Unterminated quoted string",
    "ltgtruri.dat": "Malformed URI '<sip:",
    "lwsruri.dat": "Malformed Request-Line",
    "lwsstart.dat": "Malformed Request-Line",
    "trws.dat": "Malformed Request-Line",
    "escruri.dat": "Headers in the Request-URI",
    "baddate.dat": "Malformed Date",
    "regbadct.dat": "must be in <>",
    "badaspec.dat": "Whitespace inside <>",
    "baddn.dat": "Display name must be quoted",
    "badvers.dat": "Version Not Supported",
    "mismatch01.dat": "CSeq method does not match",
    "mismatch02.dat": "CSeq method does not match",
    "bigcode.dat": "Bad status code",
    "insuf.dat": "Missing From",
    "unkscm.dat": "Unsupported URI Scheme",
    "novelsc.dat": "Unsupported URI Scheme",
    "multi01.dat": "More than one",
    "mcl01.dat": "More than one Content-Length",
}


def test_every_rejected_message_has_its_reason_listed() -> None:
    rejected = {case["file"] for case in INDEX if not parses(case)}
    assert rejected == set(REASONS)


@pytest.mark.parametrize("name", sorted(REASONS))
def test_rejections_name_the_fault(name: str) -> None:
    with pytest.raises(SipParseError) as info:
        parse_message(load(name))
    assert REASONS[name] in info.value.reason
    assert "\r" not in info.value.reason and "\n" not in info.value.reason


@pytest.mark.parametrize("case", [c for c in INDEX if not parses(c)], ids=lambda c: c["file"])
def test_failed_requests_are_answered_and_failed_responses_dropped(case: dict[str, Any]) -> None:
    data = load(case["file"])
    with pytest.raises(SipParseError) as info:
        parse_message(data)
    answer = error_response_for(data, info.value)
    if case["kind"] == "response":
        assert answer is None
        return
    assert answer is not None
    status = 400 if case["expected"] == "invalid" else case["expected"]
    assert answer.startswith(f"SIP/2.0 {status} ".encode())
    # The answer carries the request's own Via lines (RFC 3261 8.2.6.2), so it finds home.
    top_via = next(line for line in data.split(b"\r\n") if line.lower().startswith(b"via"))
    assert top_via.split(b":", 1)[1].strip() in answer


CHECKS: dict[str, Callable[[Message], None]] = {}


def check(name: str) -> Callable[[Callable[[Message], None]], Callable[[Message], None]]:
    def register(fn: Callable[[Message], None]) -> Callable[[Message], None]:
        CHECKS[name] = fn
        return fn

    return register


@check("wsinv.dat")
def _wsinv(m: Message) -> None:
    assert isinstance(m, Request) and m.method == "INVITE"
    uri = sip(m.uri)
    assert (uri.user, uri.host, uri.params) == (
        "vivekg",
        "chair-dnrc.example.com",
        (("unknownparam", None),),
    )
    assert m.to.tag == "1918181833n" and m.to.display_name is None
    assert m.from_.display_name == 'J Rosenberg \\"' and m.from_.tag == "98asjd8"
    assert m.headers.get("Max-Forwards") == "0068"
    assert (m.cseq.seq, m.cseq.method) == (9, "INVITE")
    assert [(v.transport, v.host, v.branch) for v in m.vias] == [
        ("UDP", "192.0.2.2", "390skdjuw"),
        ("TCP", "spindle.example.com", "z9hG4bK9ikj8"),
        ("UDP", "192.168.255.111", "z9hG4bK30239"),
    ]
    assert m.headers.get("Subject") == ""
    assert m.headers.get("NewFangledHeader") == "newfangled value continued newfangled value"
    assert m.headers.get("UnknownHeaderWithUnusualValue") == ";;,,;;,;"
    (route,) = m.name_addrs("Route")
    assert sip(route.uri).has_param("lr") and sip(route.uri).param("unknownwith") == "value"
    (contact,) = m.contacts
    assert contact.display_name == 'Quoted string ""'
    assert contact.params == (("newparam", "newvalue"), ("secondparam", None), ("q", "0.33"))
    assert m.content_type == "application/sdp" and len(m.body) == 150


@check("intmeth.dat")
def _intmeth(m: Message) -> None:
    method = "!interesting-Method0123456789_*+`.%indeed'~"
    assert isinstance(m, Request) and m.method == method and m.cseq.method == method
    uri = sip(m.uri)
    assert uri.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert uri.password == "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"
    assert uri.host == "example.com" and uri.params == ()
    assert m.to.display_name == "BEL:\x07 NUL:\x00 DEL:\x7f"
    assert sip(m.to.uri).user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert m.from_.display_name == "token1~` token2'+_ token3*%!.-"
    assert m.from_.param("fromParam''~+*_!.-%") == '"работающий"'
    assert m.from_.tag == "_token~1'+`*%!-."
    assert m.call_id == "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"
    assert m.vias[0].branch == "z9hG4bK-.!%66*_+`'~"
    assert m.headers.get("extensionHeader-!.%*+_`'~") == "\ufeff大停電"


@check("esc01.dat")
def _esc01(m: Message) -> None:
    uri = sip(m.uri)
    assert uri.user == "sips%3Auser%40example.com" and uri.host == "example.net"
    assert uri.decoded_user == "sips:user@example.com"
    to = sip(m.to.uri)
    assert to.decoded_user == "user" and to.address_of_record == "sip:user@example.com"
    assert sip(m.from_.uri).decoded_user == "I have spaces"
    contact = sip(m.contacts[0].uri)
    assert contact.decoded_user == "caller"
    assert contact.has_param("lr") and contact.param("name") == "v%61lue%25%34%31"
    assert m.headers.get("Content-Type") == "application/sdp"  # compact "C"


@check("escnull.dat")
def _escnull(m: Message) -> None:
    assert sip(m.to.uri).decoded_user == "null-\x00-null"
    assert [sip(c.uri).decoded_user for c in m.contacts] == ["\x00", "\x00\x00"]


@check("esc02.dat")
def _esc02(m: Message) -> None:
    assert isinstance(m, Request) and m.method == "RE%47IST%45R" != "REGISTER"
    assert m.to.display_name == "%Z%45"
    assert m.vias[0].branch == "z9hG4bK209%fzsnel234"
    # C%6Fntact is an unknown header, not a third Contact.
    assert [sip(c.uri).user for c in m.contacts] == ["alias1", "alias3"]
    assert m.headers.get("C%6Fntact") == "<sip:alias2@host2.example.com>"


@check("lwsdisp.dat")
def _lwsdisp(m: Message) -> None:
    assert m.from_.display_name == "caller" and m.from_.tag == "323"


@check("longreq.dat")
def _longreq(m: Message) -> None:
    assert m.to.display_name == "I have a user name of " + "extreme" * 10 + " proportion"
    to = sip(m.to.uri)
    assert to.port == 6000 and len(to.params) == 3
    assert to.has_param("very" + "long" * 25 + "ParameterNameWithNoValue")
    assert m.from_.tag == "12" + "982" * 50 + "424"
    assert len(m.vias) == 34 and m.vias[0].host == "sip33.example.com"
    assert m.vias[-1].branch == "very" + "long" * 50 + "branchvalue"
    assert m.call_id == "longreq.one" + "really" * 20 + "longcallid"
    assert len(m.body) == 150


@check("dblreq.dat")
def _dblreq(m: Message) -> None:
    assert isinstance(m, Request) and m.method == "REGISTER" and m.body == b""
    assert m.call_id == "dblreq.0ha0isndaksdj99sdfafnl3lk233412"


@check("semiuri.dat")
def _semiuri(m: Message) -> None:
    uri = sip(m.uri)
    assert (uri.user, uri.host, uri.params) == ("user;par=u%40example.net", "example.com", ())
    assert len(m.headers.values("Accept")) == 6


@check("transports.dat")
def _transports(m: Message) -> None:
    assert [v.transport for v in m.vias] == ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]
    assert m.call_id == "transports.kijh4akdnaqjkwendsasfdj"


@check("mpart01.dat")
def _mpart01(m: Message) -> None:
    assert len(m.body) == 553 and m.content_type == "multipart/mixed"
    assert m.body.endswith(b"\xd0\x05\r\n--7a9cbec02ceef655--\r\n")
    assert m.vias[0].port == 5070 and m.vias[0].param("rport") == ""
    route = sip(m.name_addrs("Route")[0].uri)
    assert (route.user, route.host, route.port) == (None, "127.0.0.1", 5080)


@check("unreason.dat")
def _unreason(m: Message) -> None:
    assert isinstance(m, Response) and m.status == 200
    assert m.reason == "= 2**3 * 5**2 но сто девяносто девять - простое"


@check("noreason.dat")
def _noreason(m: Message) -> None:
    assert isinstance(m, Response) and (m.status, m.reason) == (100, "")


@check("badbranch.dat")
def _badbranch(m: Message) -> None:
    assert m.top_via.branch == "z9hG4bK"


@check("unksm2.dat")
def _unksm2(m: Message) -> None:
    assert m.to.uri == AbsoluteUri("isbn", "2983792873")
    assert m.from_.uri == AbsoluteUri("http", "//www.example.com") and m.from_.tag == "3234233"
    assert m.contacts[0].uri == AbsoluteUri("name", "John_Smith")


@check("bext01.dat")
def _bext01(m: Message) -> None:
    assert m.headers.values("Require") == ["nothingSupportsThis", "nothingSupportsThisEither"]
    assert len(m.headers.values("Proxy-Require")) == 2


@check("invut.dat")
def _invut(m: Message) -> None:
    assert m.content_type == "application/unknownformat" and len(m.body) == 40


@check("regaut01.dat")
def _regaut01(m: Message) -> None:
    assert m.headers.get("Authorization") == "NoOneKnowsThisScheme opaque-data=here"


@check("bcast.dat")
def _bcast(m: Message) -> None:
    assert [v.host for v in m.vias] == ["192.0.2.198", "255.255.255.255"]


@check("zeromf.dat")
def _zeromf(m: Message) -> None:
    assert m.headers.get("Max-Forwards") == "0"


@check("cparam01.dat")
def _cparam01(m: Message) -> None:
    (contact,) = m.contacts
    assert contact.params == (("unknownparam", None),) and not contact.bracketed
    assert sip(contact.uri).params == ()


@check("cparam02.dat")
def _cparam02(m: Message) -> None:
    (contact,) = m.contacts
    assert contact.params == () and sip(contact.uri).params == (("unknownparam", None),)


@check("regescrt.dat")
def _regescrt(m: Message) -> None:
    assert sip(m.contacts[0].uri).headers == (("Route", "%3Csip:sip.example.com%3E"),)


@check("sdp01.dat")
def _sdp01(m: Message) -> None:
    assert m.headers.values("Accept") == ["text/nobodyKnowsThis"]


@check("inv2543.dat")
def _inv2543(m: Message) -> None:
    assert m.headers.get("Max-Forwards") is None and m.top_via.branch is None
    assert m.from_.tag is None and sip(m.from_.uri).param("user") == "phone"
    # addr-spec form: ;user=phone belongs to the To header, not to its URI (RFC 3261 20.10)
    assert m.to.param("user") == "phone" and sip(m.to.uri).params == ()
    assert len(m.body) == 105  # no Content-Length over UDP: the rest of the datagram


def test_every_parsing_message_has_field_checks() -> None:
    assert set(CHECKS) == {case["file"] for case in INDEX if parses(case)}


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_key_fields_of_valid_messages(name: str) -> None:
    message = parse_message(load(name))
    CHECKS[name](message)
    # Serialising and parsing again keeps every header and the body.
    again = parse_message(message.to_bytes())
    assert [h for h in again.headers if h[0] != "Content-Length"] == [
        h for h in message.headers if h[0] != "Content-Length"
    ]
    assert again.body == message.body


# --- the same messages over a stream (RFC 3261 18.3) ---

STREAM_FAILS = {"inv2543.dat", "ncl.dat", "mcl01.dat"}  # no, negative, or two Content-Lengths


@pytest.mark.parametrize("case", INDEX, ids=lambda c: c["file"])
def test_each_message_over_a_stream(case: dict[str, Any]) -> None:
    data = load(case["file"])
    framer = StreamFramer()
    name = case["file"]
    if name in STREAM_FAILS:
        with pytest.raises(SipParseError):
            for i in range(len(data)):
                framer.feed(data[i : i + 1])
        return
    frames: list[bytes] = []
    if name == "dblreq.dat":
        # Two requests, then the INVITE's octets beyond its Content-Length: 150 ("C\r\n\r\n")
        # are a broken third message, which on a stream is fatal.
        with pytest.raises(SipParseError, match="Missing Content-Length"):
            for i in range(0, len(data), 7):
                frames += framer.feed(data[i : i + 7])
        assert [f.split(b" ", 1)[0] for f in frames] == [b"REGISTER", b"INVITE"]
        return
    for i in range(0, len(data), 7):
        frames += framer.feed(data[i : i + 7])
    if name == "clerr.dat":
        assert frames == [] and framer.pending == data  # waits for 9999 octets
    else:
        assert frames == [data[: len(frames[0])]] and len(frames) == 1
        assert data[len(frames[0]) :].strip(b"\r\n") == b""
        if parses(case):
            framed, whole = parse_message(frames[0]), parse_message(data)
            assert (framed.headers, framed.body) == (whole.headers, whole.body)
