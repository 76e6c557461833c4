"""Property tests: valid messages survive serialise -> parse unchanged, and no input makes the
parser, the stream framer or the error answerer raise anything but `SipParseError`."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from telephony.sip.errors import SipParseError
from telephony.sip.headers import NameAddr, Via
from telephony.sip.message import Headers, Message, Request, Response
from telephony.sip.parser import (
    StreamFramer,
    error_response_for,
    parse_message,
    parse_name_addr,
    parse_uri,
    parse_via,
)
from telephony.sip.uri import SipUri

FAST = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MESSAGES = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TORTURE = sorted((Path(__file__).resolve().parent / "torture").glob("*.dat"))
SEEDS = [p.read_bytes() for p in TORTURE]

# --- building blocks, straight from the RFC 3261 25.1 grammar ---

TOKEN_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~"
tokens = st.text(alphabet=TOKEN_CHARS, min_size=1, max_size=10)
label = st.from_regex(r"[a-z]([a-z0-9-]{0,6}[a-z0-9])?", fullmatch=True)
hostnames = st.lists(label, min_size=1, max_size=4).map(".".join)
hosts = st.one_of(
    hostnames,
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(str),
)
ports = st.none() | st.integers(0, 65535)
escaped = st.from_regex(r"%[0-9A-F]{2}", fullmatch=True)


def chars_or_escapes(alphabet: str, min_size: int) -> st.SearchStrategy[str]:
    return st.lists(st.sampled_from(list(alphabet)) | escaped, min_size=min_size, max_size=8).map(
        "".join
    )


UNRESERVED = "abcXYZ019-_.!~*'()"
users = chars_or_escapes(UNRESERVED + "&=+$,;?/", 1)
passwords = chars_or_escapes(UNRESERVED + "&=+$,", 0)
param_chars = chars_or_escapes(UNRESERVED + "[]/:&+$", 1)
uri_params = st.lists(st.tuples(param_chars, st.none() | param_chars), max_size=3).map(tuple)
uri_headers = st.lists(
    st.tuples(
        chars_or_escapes(UNRESERVED + "[]/?:+$", 1), chars_or_escapes(UNRESERVED + "[]/?:+$", 0)
    ),
    max_size=2,
).map(tuple)


@st.composite
def sip_uris(draw: st.DrawFn, with_headers: bool = True) -> SipUri:
    user = draw(st.none() | users)
    return SipUri(
        scheme=draw(st.sampled_from(["sip", "sips"])),
        user=user,
        password=None if user is None else draw(st.none() | passwords),
        host=draw(hosts),
        port=draw(ports),
        params=draw(uri_params),
        headers=draw(uri_headers) if with_headers else (),
    )


display_names = st.none() | st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"), max_size=12
)
quoted_values = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=8).map(
    lambda s: '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'
)
header_params = st.lists(
    st.tuples(st.from_regex(r"x[a-z0-9]{0,5}", fullmatch=True), st.none() | tokens | quoted_values),
    max_size=3,
).map(tuple)


@st.composite
def name_addrs(draw: st.DrawFn) -> NameAddr:
    return NameAddr(
        uri=draw(sip_uris()), display_name=draw(display_names), params=draw(header_params)
    )


@st.composite
def vias(draw: st.DrawFn) -> Via:
    params: tuple[tuple[str, str | None], ...] = (("branch", "z9hG4bK" + draw(tokens)),)
    if draw(st.booleans()):
        params += (("rport", draw(st.none() | st.integers(1, 65535).map(str))),)
    params += draw(
        header_params.map(lambda ps: tuple((k, v) for k, v in ps if v is None or v[0] != '"'))
    )
    return Via(
        transport=draw(st.sampled_from(["UDP", "TCP", "TLS", "SCTP", "WS"])),
        host=draw(hosts),
        port=draw(ports),
        params=params,
    )


word = st.text(alphabet=TOKEN_CHARS + '()<>:\\"/[]?{}', min_size=1, max_size=12)
safe_text = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=30).map(
    lambda s: s.strip(" \t")
)
extension_headers = st.lists(st.tuples(tokens.map(lambda t: "X-" + t), safe_text), max_size=4)


@st.composite
def requests(draw: st.DrawFn) -> Request:
    method = draw(st.sampled_from(["INVITE", "OPTIONS", "BYE", "REGISTER"]) | tokens)
    to, from_ = draw(name_addrs()), draw(name_addrs()).with_params(tag=draw(tokens))
    headers = [
        ("Via", ", ".join(str(v) for v in draw(st.lists(vias(), min_size=1, max_size=3)))),
        ("From", str(from_)),
        ("To", str(to)),
        ("Call-ID", draw(word) + draw(st.sampled_from(["", "@"])).replace("@", "@" + draw(word))),
        ("CSeq", f"{draw(st.integers(0, 2**32 - 1))} {method}"),
        ("Max-Forwards", str(draw(st.integers(0, 255)))),
        *draw(extension_headers),
    ]
    return Request(
        method=method,
        uri=draw(sip_uris(with_headers=False)),
        headers=Headers.of(*draw(st.permutations(headers))),
        body=draw(st.binary(max_size=64)),
    )


@st.composite
def responses(draw: st.DrawFn) -> Response:
    request = draw(requests())
    reason = draw(st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=20))
    return Response(
        status=draw(st.integers(100, 699)),
        reason=reason,
        headers=request.headers,
        body=request.body,
    )


def same(a: Message, b: Message) -> None:
    assert type(a) is type(b)
    assert [h for h in a.headers if h[0] != "Content-Length"] == [
        h for h in b.headers if h[0] != "Content-Length"
    ]
    assert a.body == b.body and a.start_line() == b.start_line()


# --- round trips ---


@FAST
@given(sip_uris())
def test_uri_round_trip(uri: SipUri) -> None:
    assert parse_uri(str(uri)) == uri


@FAST
@given(name_addrs())
def test_name_addr_round_trip(address: NameAddr) -> None:
    assert parse_name_addr(str(address)) == address


@FAST
@given(vias())
def test_via_round_trip(via: Via) -> None:
    assert parse_via(str(via)) == via


@MESSAGES
@given(requests())
def test_request_round_trip(request: Request) -> None:
    parsed = parse_message(request.to_bytes())
    same(parsed, request)
    assert (
        isinstance(parsed, Request)
        and parsed.uri == request.uri
        and parsed.method == request.method
    )


@MESSAGES
@given(responses())
def test_response_round_trip(response: Response) -> None:
    parsed = parse_message(response.to_bytes())
    same(parsed, response)
    assert isinstance(parsed, Response) and (parsed.status, parsed.reason) == (
        response.status,
        response.reason,
    )


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(requests() | responses(), min_size=1, max_size=3),
    st.lists(st.integers(1, 300), min_size=1, max_size=8),
)
def test_stream_framing_is_independent_of_read_sizes(
    messages: list[Message], steps: list[int]
) -> None:
    wire = [m.to_bytes() for m in messages]
    stream = b"\r\n\r\n".join(wire)
    framer = StreamFramer()
    frames: list[bytes] = []
    i = 0
    while i < len(stream):
        step = steps[len(frames) % len(steps)] if i else steps[0]
        frames += framer.feed(stream[i : i + step])
        i += step
    assert frames == wire and framer.keepalives == len(wire) - 1


# --- fuzz: nothing but SipParseError, and parsed messages are safe to read ---


def exercise(data: bytes) -> None:
    try:
        message = parse_message(data)
    except SipParseError as err:
        assert isinstance(err.status, int) and err.reason
        answer = error_response_for(data, err)
        assert answer is None or answer.startswith(f"SIP/2.0 {err.status} ".encode())
        return
    # A message that parsed was validated: its typed views cannot fail.
    _ = (message.vias, message.from_, message.to, message.cseq, message.call_id, message.contacts)
    _ = (message.name_addrs("Route"), message.name_addrs("Record-Route"), message.content_type)


def frame(data: bytes, step: int) -> None:
    framer = StreamFramer()
    try:
        for i in range(0, len(data), step):
            for message in framer.feed(data[i : i + step]):
                exercise(message)
    except SipParseError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes(data: bytes) -> None:
    exercise(data)
    frame(data, 17)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(
        draw(st.sampled_from(SEEDS)) if draw(st.booleans()) else draw(requests()).to_bytes()
    )
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "duplicate"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[at] = draw(st.sampled_from(b'\x00\r\n \t:;,<>"\\%@[]=?/\xff'))
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete":
            del data[at : at + draw(st.integers(1, 8))]
        elif op == "truncate":
            del data[at:]
        else:
            data[at:at] = data[at : at + draw(st.integers(1, 40))]
    return bytes(data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated(), st.integers(1, 64))
def test_mutated_valid_messages(data: bytes, step: int) -> None:
    exercise(data)
    frame(data, step)


def test_every_torture_message_in_every_prefix() -> None:
    for seed in SEEDS:
        for end in range(0, len(seed), max(1, len(seed) // 40)):
            exercise(seed[:end])
