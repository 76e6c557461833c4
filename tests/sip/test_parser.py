"""Edge cases of the SIP parser: URIs, Via, name-addr, messages, stream framing, error answers."""

from __future__ import annotations

import pytest

from telephony.sip.errors import SipParseError
from telephony.sip.headers import NameAddr, Via
from telephony.sip.message import Request, Response
from telephony.sip.parser import (
    MAX_MESSAGE_SIZE,
    StreamFramer,
    error_response_for,
    parse_cseq,
    parse_message,
    parse_name_addr,
    parse_uri,
    parse_via,
)
from telephony.sip.uri import AbsoluteUri, SipUri

# --- parse_uri ---


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("sip:alice@example.com", SipUri(host="example.com", user="alice")),
        ("SIP:alice@Example.COM:5070", SipUri(host="Example.COM", user="alice", port=5070)),
        (
            "sips:bob:secret@10.0.0.1",
            SipUri(host="10.0.0.1", user="bob", password="secret", scheme="sips"),
        ),
        (
            "sip:[2001:db8::1]:5060;transport=tcp",
            SipUri(host="2001:db8::1", port=5060, params=(("transport", "tcp"),)),
        ),
        ("sip:[::ffff:192.0.2.1]", SipUri(host="::ffff:192.0.2.1")),
        ("sip:host.example.com.;lr", SipUri(host="host.example.com.", params=(("lr", None),))),
        (
            "sip:a@b.example?Subject=hi&Priority=urgent",
            SipUri(host="b.example", user="a", headers=(("Subject", "hi"), ("Priority", "urgent"))),
        ),
        ("sip:a@b.example?X=", SipUri(host="b.example", user="a", headers=(("X", ""),))),
        ("sip:*67#555@pbx.example", SipUri(host="pbx.example", user="*67#555")),
        ("sip:a@qconnect_switch_1", SipUri(host="qconnect_switch_1", user="a")),
        (
            "sip:+1-555@gw.example;user=phone",
            SipUri(host="gw.example", user="+1-555", params=(("user", "phone"),)),
        ),
        ("tel:+1-201-555-0123", AbsoluteUri("tel", "+1-201-555-0123")),
        ("urn:service:sos", AbsoluteUri("urn", "service:sos")),
    ],
)
def test_uris_that_parse(text: str, expected: object) -> None:
    assert parse_uri(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "example.com",
        ":alice@example.com",
        "<sip:alice@example.com>",
        "sip:",
        "sip:alice@",
        "sip:alice@example.com:",
        "sip:alice@example.com:65536",
        "sip:alice@example.com:5o60",
        "sip:alice@exa mple.com",
        "sip:al ice@example.com",
        "sip:a@b@example.com",
        "sip:@example.com",
        "sip:alice@[2001:db8::1",
        "sip:alice@[2001:db8::g]",
        "sip:alice@[fe80::1%eth0]",
        "sip:alice@[2001:db8::1]x",
        "sip:alice@256.1.1.1",
        "sip:alice@-bad.example",
        "sip:alice@example.123",
        "sip:alice@example.com;",
        "sip:alice@example.com;;lr",
        "sip:alice@example.com;a=",
        "sip:alice@example.com?",
        "sip:alice@example.com?noequals",
        "sip:al%4@example.com",
        "sip:al%zzce@example.com",
        "sip:alice@example.com;a=b\x00",
        "1sip:alice@example.com",
        "tel:",
        "tel:+1 555",
        "http://example.com/<x>",
    ],
)
def test_uris_that_do_not(text: str) -> None:
    with pytest.raises(SipParseError):
        parse_uri(text)


def test_ipv6_uri_round_trips_with_brackets() -> None:
    uri = parse_uri("sip:alice@[2001:db8::10]:5070")
    assert isinstance(uri, SipUri) and uri.host == "2001:db8::10"
    assert str(uri) == "sip:alice@[2001:db8::10]:5070"


def test_escapes_decode_and_normalise() -> None:
    uri = parse_uri("sip:%41lice%2b@example.com;%6C%72")
    assert isinstance(uri, SipUri)
    assert uri.user == "%41lice%2b" and uri.decoded_user == "Alice+"
    assert uri.address_of_record == "sip:Alice%2B@example.com"
    assert uri.has_param("lr") and uri.param("LR") == ""


# --- parse_via ---


def test_via_with_lws_everywhere() -> None:
    via = parse_via(
        "SIP / 2.0 / udp  host.example.com : 5062 ; branch = z9hG4bKx ; rport ; received=10.0.0.1"
    )
    assert via == Via(
        transport="UDP",
        host="host.example.com",
        port=5062,
        params=(("branch", "z9hG4bKx"), ("rport", None), ("received", "10.0.0.1")),
    )
    assert via.branch == "z9hG4bKx"


def test_via_ipv6_sent_by_and_received() -> None:
    via = parse_via("SIP/2.0/TCP [2001:db8::9]:5061;branch=z9hG4bK1;received=2001:db8::1")
    assert (via.host, via.port, via.param("received")) == ("2001:db8::9", 5061, "2001:db8::1")
    assert str(via) == "SIP/2.0/TCP [2001:db8::9]:5061;branch=z9hG4bK1;received=2001:db8::1"


@pytest.mark.parametrize(
    "text",
    [
        "SIP/2.0/UDP",
        "SIP/2.0/UDPhost.example.com",
        "SIP/2.0 UDP host.example.com",
        "SIP/2.0/UDP host.example.com;",
        "SIP/2.0/UDP host.example.com;;branch=z9hG4bK1",
        "SIP/2.0/UDP host.example.com:99999",
        "SIP/2.0/UDP host.example.com:",
        "SIP/2.0/UDP host.example.com junk",
        "SIP/2.0/UDP host.example.com;received=not-an-ip",
        "SIP/2.0/UDP host.example.com;rport=abc",
        "SIP/2.0/UDP host.example.com;branch",
        "SIP/2.0/UDP [2001:db8::1;branch=z9hG4bK1",
        "SIP/2.0/UDP ",
    ],
)
def test_vias_that_do_not_parse(text: str) -> None:
    with pytest.raises(SipParseError):
        parse_via(text)


# --- parse_name_addr ---


def test_addr_spec_params_belong_to_the_header() -> None:
    na = parse_name_addr("sip:bob@example.com;tag=abc;user=phone")
    assert not na.bracketed and na.tag == "abc" and na.param("user") == "phone"
    assert isinstance(na.uri, SipUri) and na.uri.params == ()


def test_name_addr_uri_params_stay_in_the_uri() -> None:
    na = parse_name_addr('"Bob \\"B\\"" <sip:bob@example.com;transport=tcp>;tag=9;q="0.5"')
    assert na.display_name == 'Bob "B"' and na.tag == "9" and na.param("q") == '"0.5"'
    assert isinstance(na.uri, SipUri) and na.uri.params == (("transport", "tcp"),)
    assert parse_name_addr(str(na)) == na


def test_token_display_names_and_quoted_commas() -> None:
    assert parse_name_addr("Alice  Smith <sip:a@example.com>").display_name == "Alice Smith"
    assert (
        parse_name_addr('"Bell, Alexander" <sip:a@example.com>').display_name == "Bell, Alexander"
    )
    assert parse_name_addr("<sip:a@example.com>").display_name is None
    assert parse_name_addr('"" <sip:a@example.com>').display_name == ""


def test_quoted_control_characters_round_trip() -> None:
    na = NameAddr(uri=SipUri(host="example.com"), display_name='a\x00b\\c"d\x7f')
    assert parse_name_addr(str(na)) == na


@pytest.mark.parametrize(
    "text",
    [
        "",
        '"unterminated <sip:a@example.com>',
        '"quoted" sip:a@example.com',
        "Bell, Alexander <sip:a@example.com>",
        "<sip:a@example.com",
        "< sip:a@example.com>",
        "<sip:a@example.com >",
        "<>",
        "<sip:a@example.com> junk",
        "<sip:a@example.com>;",
        "<sip:a@example.com>;tag=",
        "sip:a@example.com?Route=x",
        "sip:a@example.com, sip:b@example.com",
        "sip:a@example.com;tag=a b",
        '<sip:a@example.com>;x="open',
        '"bad \\\r escape" <sip:a@example.com>',
    ],
)
def test_name_addrs_that_do_not_parse(text: str) -> None:
    with pytest.raises(SipParseError):
        parse_name_addr(text)


# --- parse_cseq ---


def test_cseq_bounds() -> None:
    assert parse_cseq("  4294967295   INVITE ").seq == 2**32 - 1
    assert parse_cseq("0009 BYE").seq == 9
    for bad in (
        "4294967296 INVITE",
        "1",
        "INVITE 1",
        "-1 INVITE",
        "1 IN VITE",
        "١ INVITE",
        "9" * 5000 + " X",
    ):
        with pytest.raises(SipParseError):
            parse_cseq(bad)


# --- parse_message ---

OPTIONS = (
    "OPTIONS sip:bob@example.com SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776asdhds\r\n"
    "Max-Forwards: 70\r\n"
    "To: <sip:bob@example.com>\r\n"
    "From: Alice <sip:alice@example.com>;tag=1928301774\r\n"
    "Call-ID: a84b4c76e66710@pc33.example.com\r\n"
    "CSeq: 63104 OPTIONS\r\n"
    "Content-Length: 0\r\n"
    "\r\n"
)


def message(text: str = OPTIONS, **replace: str) -> bytes:
    for old, new in replace.items():
        text = text.replace(old.replace("_", "-") + ":", new)
    return text.encode()


def test_a_plain_request() -> None:
    m = parse_message(message())
    assert isinstance(m, Request) and m.method == "OPTIONS" and m.body == b""
    assert m.call_id == "a84b4c76e66710@pc33.example.com" and m.from_.display_name == "Alice"


def test_leading_crlfs_and_bare_lf_line_ends_are_tolerated() -> None:
    assert isinstance(parse_message(b"\r\n\r\n" + message()), Request)
    assert isinstance(parse_message(OPTIONS.replace("\r\n", "\n").encode()), Request)


def test_udp_body_without_content_length_runs_to_the_end() -> None:
    data = OPTIONS.replace("Content-Length: 0\r\n", "").encode() + b"hello"
    assert parse_message(data).body == b"hello"


def test_content_length_cuts_trailing_octets() -> None:
    data = OPTIONS.replace("Content-Length: 0", "Content-Length: 3").encode() + b"abcdef"
    assert parse_message(data).body == b"abc"


def test_supported_and_allow_may_be_empty() -> None:
    # baresip sends "Supported:" with nothing in it; RFC 3261 20.37 allows that.
    data = OPTIONS.replace("Max-Forwards", "Supported:\r\nAllow: \r\nMax-Forwards").encode()
    assert parse_message(data).headers.values("Supported") == []
    with pytest.raises(SipParseError):
        parse_message(OPTIONS.replace("Max-Forwards", "Require:\r\nMax-Forwards").encode())


def test_list_headers_split_across_lines_and_commas() -> None:
    data = OPTIONS.replace(
        "Max-Forwards", "Supported: timer, 100rel\r\nk: path\r\nMax-Forwards"
    ).encode()
    assert parse_message(data).headers.values("Supported") == ["timer", "100rel", "path"]


@pytest.mark.parametrize(
    ("text", "status"),
    [
        (OPTIONS.replace("SIP/2.0\r\n", "SIP/3.0\r\n", 1), 505),
        (OPTIONS.replace("sip:bob@example.com SIP", "tel:+15551234 SIP"), 416),
        (OPTIONS.replace("SIP/2.0\r\n", "HTTP/1.1\r\n", 1), 400),
        (OPTIONS.replace("OPTIONS sip", "OPT IONS sip"), 400),
        (OPTIONS.replace("Call-ID: a84b4c76e66710@pc33.example.com\r\n", ""), 400),
        (OPTIONS.replace("Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776asdhds\r\n", ""), 400),
        (OPTIONS.replace("Max-Forwards: 70", "Max-Forwards: seventy"), 400),
        (OPTIONS.replace("Max-Forwards: 70", "Expires: soon"), 400),
        (OPTIONS.replace("Max-Forwards: 70", "Content-Type: nonsense"), 400),
        (OPTIONS.replace("Max-Forwards: 70", "Require: a b"), 400),
        (OPTIONS.replace("Max-Forwards: 70", "NoColonHere"), 400),
        (OPTIONS.replace("Max-Forwards: 70", "Bad Name: x"), 400),
        (OPTIONS.replace("Max-Forwards: 70", "X-Bare: a\rb"), 400),
        (OPTIONS.replace("Call-ID: a84b4c76e66710@pc33.example.com", "Call-ID: a b"), 400),
        (OPTIONS.replace("Via: SIP", " Via: SIP"), 400),
        (OPTIONS.replace("Content-Length: 0", "Content-Length: 99999999999999999999"), 400),
        (OPTIONS.replace("\r\n\r\n", "\r\n"), 400),
        ("SIP/2.0 200 OK\r\n\r\n", 400),
        ("SIP/2.0 99 Low\r\n" + OPTIONS.split("\r\n", 1)[1], 400),
        ("SIP/1.0 200 OK\r\n" + OPTIONS.split("\r\n", 1)[1], 400),
        ("\r\n\r\n", 400),
    ],
)
def test_messages_rejected_with_status(text: str, status: int) -> None:
    with pytest.raises(SipParseError) as info:
        parse_message(text.encode("utf-8"))
    assert info.value.status == status


def test_oversized_message_is_513() -> None:
    data = OPTIONS.replace("Content-Length: 0", f"Content-Length: {MAX_MESSAGE_SIZE}").encode()
    with pytest.raises(SipParseError) as info:
        parse_message(data + b"x" * MAX_MESSAGE_SIZE)
    assert info.value.status == 513


def test_a_response() -> None:
    text = "SIP/2.0 180 Ringing\r\n" + OPTIONS.split("\r\n", 1)[1]
    m = parse_message(text.encode())
    assert isinstance(m, Response) and (m.status, m.reason) == (180, "Ringing")


def test_accessors_never_raise_after_a_successful_parse() -> None:
    text = OPTIONS.replace(
        "Max-Forwards",
        "Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>\r\nContact: *\r\nMax-Forwards",
    )
    m = parse_message(text.encode())
    assert len(m.name_addrs("Route")) == 2 and m.contacts == [] and m.cseq.method == "OPTIONS"


# --- StreamFramer ---


def test_framer_cuts_messages_across_chunks_and_skips_keepalives() -> None:
    body = OPTIONS.replace("Content-Length: 0", "Content-Length: 5").encode() + b"hello"
    stream = b"\r\n\r\n" + message() + b"\r\n\r\n" + body + message()
    framer = StreamFramer()
    frames: list[bytes] = []
    for i in range(0, len(stream), 3):
        frames += framer.feed(stream[i : i + 3])
    assert frames == [message(), body, message()]
    assert framer.keepalives == 2 and framer.pending == b""


def test_framer_waits_for_the_body() -> None:
    framer = StreamFramer()
    data = OPTIONS.replace("Content-Length: 0", "Content-Length: 4").encode()
    assert framer.feed(data + b"ab") == []
    assert framer.feed(b"cd" + b"OPT") == [data + b"abcd"]
    assert framer.pending == b"OPT"


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (OPTIONS.replace("Content-Length: 0\r\n", "").encode(), 400),
        (OPTIONS.replace("Content-Length: 0", "Content-Length: -1").encode(), 400),
        (OPTIONS.replace("Content-Length: 0", "l: 0\r\nContent-Length: 0").encode(), 400),
        (OPTIONS.replace("Content-Length: 0", f"Content-Length: {MAX_MESSAGE_SIZE}").encode(), 413),
        (b"X" * (MAX_MESSAGE_SIZE + 1), 513),
    ],
)
def test_framer_errors_are_final(data: bytes, status: int) -> None:
    framer = StreamFramer()
    with pytest.raises(SipParseError) as info:
        framer.feed(data)
    assert info.value.status == status
    with pytest.raises(SipParseError):
        framer.feed(message())


# --- error_response_for ---


def answer(data: bytes) -> bytes | None:
    with pytest.raises(SipParseError) as info:
        parse_message(data)
    return error_response_for(data, info.value)


def test_error_answer_copies_the_dialog_headers_and_adds_a_stable_to_tag() -> None:
    data = message().replace(b"CSeq: 63104 OPTIONS", b"CSeq: 63104 INVITE")
    first, again = answer(data), answer(data)
    assert first is not None and first == again
    response = parse_message(first)
    assert isinstance(response, Response) and response.status == 400
    assert response.reason == "CSeq method does not match the request method"
    request_headers = dict(parse_message(message()).headers.items)
    assert response.headers.get("Via") == request_headers["Via"]
    assert response.call_id == "a84b4c76e66710@pc33.example.com"
    assert response.from_.tag == "1928301774" and response.to.tag
    assert response.headers.get("CSeq") == "63104 INVITE"


def test_error_answer_keeps_an_existing_to_tag() -> None:
    data = message().replace(b"To: <sip:bob@example.com>", b"To: <sip:bob@example.com>;tag=xyz")
    data = data.replace(b"Max-Forwards: 70", b"Max-Forwards: many")
    result = answer(data)
    assert result is not None and parse_message(result).to.tag == "xyz"


def test_error_answer_status_follows_the_error() -> None:
    result = answer(message().replace(b"SIP/2.0\r\n", b"SIP/2.1\r\n", 1))
    assert result is not None and result.startswith(b"SIP/2.0 505 Version Not Supported\r\n")


@pytest.mark.parametrize(
    "data",
    [
        message().replace(b"OPTIONS", b"ACK").replace(b"Max-Forwards: 70", b"Max-Forwards: x"),
        ("SIP/2.0 200 OK\r\n" + OPTIONS.split("\r\n", 1)[1])
        .replace("CSeq: 63104", "CSeq: x")
        .encode(),
        message().replace(b"Via: SIP/2.0/UDP 192.0.2.1:5060;", b"Via: garbage;"),
        message().replace(b"Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776asdhds\r\n", b""),
        message().replace(b"\r\n\r\n", b"\r\n"),
        b"\x00\x01\x02",
    ],
)
def test_unanswerable_input_gets_no_answer(data: bytes) -> None:
    assert answer(data) is None


def test_error_answer_reason_is_one_printable_line() -> None:
    err = SipParseError("bad\r\nInjected: yes\x00" + "x" * 500)
    data = message()
    result = error_response_for(data, err)
    assert result is not None
    status_line = result.split(b"\r\n", 1)[0]
    assert b"Injected" in status_line and len(status_line) < 160
    assert isinstance(parse_message(result), Response)
