"""Bytes -> SIP messages (RFC 3261 sections 7, 19, 20, 25), hardened against RFC 4475.

Three entry points, all sans-I/O:

* `parse_message(data)` reads one message (a UDP datagram, or one frame cut by the
  `StreamFramer`) and validates what a server must validate before acting on it;
* `StreamFramer` cuts a TCP byte stream into messages by Content-Length (RFC 3261 18.3);
* `error_response_for(data, err)` builds the stateless error answer for a request that
  failed to parse, when it is readable enough to be answered (RFC 3261 8.2, 16.3).

Every malformed input raises `SipParseError` and nothing else; its `reason` becomes the
reason phrase of the answer and its `status` the code (400 unless the RFC asks otherwise).
Header values stay as written (unfolded) in the message; the structured parsers below run
once here so a message that parses never fails later in a typed accessor.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re

from telephony.sip.errors import SipParseError
from telephony.sip.headers import CSeq, NameAddr, Via, canonical_name
from telephony.sip.message import Headers, Message, Request, Response
from telephony.sip.uri import AbsoluteUri, SipUri, Uri

MAX_MESSAGE_SIZE = 65_535

# RFC 3261 25.1: token, word (Call-ID) and the URI character classes. Explicit ASCII sets:
# str.isdigit()/\s would also accept Unicode digits and spaces, which SIP does not.
_ALNUM = "A-Za-z0-9"
_TOKEN_CLASS = _ALNUM + r"\-.!%*_+`'~"
_TOKEN = re.compile(f"[{_TOKEN_CLASS}]+")
_WORD = re.compile("[" + _ALNUM + r"\-.!%*_+`'~()<>:\\\"/\[\]?{}" + "]+")
_CALL_ID = re.compile(f"{_WORD.pattern}(?:@{_WORD.pattern})?")
_DIGITS = re.compile("[0-9]+")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+\-.]*")
_SIP_VERSION = re.compile(r"SIP/[0-9]+\.[0-9]+", re.IGNORECASE)
_IPV4 = re.compile(r"[0-9]{1,3}(?:\.[0-9]{1,3}){3}")
# hostname (RFC 3261 25.1), plus "_": container and Windows host names carry it and phones
# put them in Via and Contact; refusing them would gain nothing.
_HOSTNAME = re.compile(
    r"(?:[A-Za-z0-9_](?:[A-Za-z0-9_-]*[A-Za-z0-9_])?\.)*[A-Za-z](?:[A-Za-z0-9_-]*[A-Za-z0-9_])?\.?"
)
# gen-value = token / host / quoted-string (RFC 3261 25.1); host adds ":" "[" "]".
_GEN_VALUE = re.compile(f"[{_TOKEN_CLASS}:\\[\\]]+")
# RFC 3261 20.17 / RFC 1123: the only Date format SIP allows, always in GMT.
_RFC1123_DATE = re.compile(
    r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), [0-9]{1,2} "
    r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [0-9]{4} "
    r"[0-9]{2}:[0-9]{2}:[0-9]{2} GMT"
)
_END_OF_HEADERS = re.compile(rb"\r?\n\r?\n")
_LINE_END = re.compile(r"\r?\n")

_UNRESERVED = _ALNUM + r"\-_.!~*'()"
# user-unreserved (RFC 3261 25.1) plus "#": phones dial "*67#" and send it unescaped.
_USER_CHARS = re.compile(f"(?:[{_UNRESERVED}&=+$,;?/#]|%[0-9A-Fa-f]{{2}})+")
_PASSWORD_CHARS = re.compile(f"(?:[{_UNRESERVED}&=+$,]|%[0-9A-Fa-f]{{2}})*")
_PARAM_CHARS = re.compile(f"(?:[{_UNRESERVED}\\[\\]/:&+$]|%[0-9A-Fa-f]{{2}})+")
_HEADER_CHARS = re.compile(f"(?:[{_UNRESERVED}\\[\\]/?:+$]|%[0-9A-Fa-f]{{2}})*")

_MAX_CSEQ = 2**32 - 1  # RFC 3261 8.1.1.5: a 32-bit unsigned integer
_MAX_DIGITS = 10  # never hand int() more: it is slow on, and refuses, very long strings

# Headers that may appear at most once (RFC 3261 7.3.1: only list headers repeat);
# RFC 4475 3.3.8/3.3.9 (multi01, mcl01) send two of each and expect 400.
_SINGLE_HEADERS = frozenset(
    {
        "From",
        "To",
        "Call-ID",
        "CSeq",
        "Max-Forwards",
        "Content-Length",
        "Content-Type",
        "Expires",
        "Min-Expires",
        "Date",
    }
)
_MANDATORY = ("Via", "From", "To", "Call-ID", "CSeq")  # RFC 3261 8.1.1
# Request-URI schemes the switch can route; others get 416 (RFC 3261 8.2.2.1, RFC 4475 3.3.2).
_ROUTABLE_SCHEMES = frozenset({"sip", "sips"})
_TOKEN_LISTS = frozenset({"Require", "Proxy-Require", "Supported", "Unsupported", "Allow"})


def _fail(reason: str, status: int = 400) -> SipParseError:
    return SipParseError(reason, status)


def _show(text: str, limit: int = 40) -> str:
    """Quote a piece of input for a reason phrase: printable and short."""
    return repr(text if len(text) <= limit else text[:limit] + "...")


def _number(text: str, what: str, maximum: int | None = None) -> int:
    if not _DIGITS.fullmatch(text) or len(text.lstrip("0")) > _MAX_DIGITS:
        raise _fail(f"Bad {what} {_show(text)}")
    value = int(text)
    if maximum is not None and value > maximum:
        raise _fail(f"{what} out of range {_show(text)}")
    return value


# --- small lexer over header values (after unfolding, so LWS is SP/HTAB only) ---


def _skip_ws(text: str, i: int) -> int:
    while i < len(text) and text[i] in " \t":
        i += 1
    return i


def _read_quoted(text: str, i: int) -> tuple[str, int]:
    """`text[i]` is a DQUOTE; returns the unescaped content and the index after the close.

    quoted-pair = "\\" (%x00-09 / %x0B-0C / %x0E-7F) (RFC 3261 25.1), so NUL and DEL may
    be escaped (RFC 4475 3.1.1.2) but CR and LF may not."""
    out: list[str] = []
    i += 1
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            if i + 1 >= len(text) or text[i + 1] in "\r\n" or ord(text[i + 1]) > 0x7F:
                raise _fail("Bad escape in quoted string")
            out.append(text[i + 1])
            i += 2
        elif ch == '"':
            return "".join(out), i + 1
        elif ch in "\r\n":
            raise _fail("Line break in quoted string")
        else:
            out.append(ch)
            i += 1
    raise _fail("Unterminated quoted string")


def _read_params(text: str, i: int, what: str) -> tuple[tuple[tuple[str, str | None], ...], int]:
    """`*( SEMI generic-param )` from `text[i]`; returns the params and where they stop.

    SEMI and EQUAL allow LWS around them (RFC 3261 25.1). Values keep their wire form,
    quotes included, so a relayed header is unchanged."""
    params: list[tuple[str, str | None]] = []
    while True:
        j = _skip_ws(text, i)
        if j >= len(text) or text[j] != ";":
            return tuple(params), j
        j = _skip_ws(text, j + 1)
        name = _TOKEN.match(text, j)
        if name is None:
            raise _fail(f"Empty or malformed parameter in {what}")
        j = _skip_ws(text, name.end())
        value: str | None = None
        if j < len(text) and text[j] == "=":
            j = _skip_ws(text, j + 1)
            if j < len(text) and text[j] == '"':
                _, end = _read_quoted(text, j)
                value = text[j:end]
                j = end
            else:
                gen = _GEN_VALUE.match(text, j)
                if gen is None:
                    raise _fail(f"Parameter {_show(name.group())} without a value in {what}")
                value = gen.group()
                j = gen.end()
        params.append((name.group(), value))
        i = j


# --- URIs (RFC 3261 19.1, 25.1) ---


def _parse_host(text: str, where: str) -> str:
    """host = hostname / IPv4address / IPv6reference; IPv6 comes back without brackets."""
    if text.startswith("["):
        inner = text[1:-1] if text.endswith("]") else ""
        try:
            if not inner or "%" in inner:
                raise ValueError(inner)
            ipaddress.IPv6Address(inner)
        except ValueError:
            raise _fail(f"Bad IPv6 reference in {where}") from None
        return inner
    if _IPV4.fullmatch(text):
        if any(int(octet) > 255 for octet in text.split(".")):
            raise _fail(f"Bad IPv4 address in {where}")
        return text
    if not _HOSTNAME.fullmatch(text):
        raise _fail(f"Bad host in {where}")
    return text


def _parse_port(text: str, where: str) -> int:
    if not _DIGITS.fullmatch(text) or len(text) > 5 or int(text) > 65535:
        raise _fail(f"Bad port in {where}")
    return int(text)


def _split_hostport(text: str, where: str) -> tuple[str, int | None]:
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise _fail(f"Unclosed IPv6 reference in {where}")
        host, rest = text[: end + 1], text[end + 1 :]
        if rest and not rest.startswith(":"):
            raise _fail(f"Junk after IPv6 reference in {where}")
        port_text = rest[1:] if rest else None
    else:
        host, colon, port_text_ = text.partition(":")
        port_text = port_text_ if colon else None
    port = None if port_text is None else _parse_port(port_text, where)
    return _parse_host(host, where), port


def parse_uri(text: str) -> Uri:
    """A SIP/SIPS URI per RFC 3261 19.1, or any other absolute URI kept opaque (19.1.6)."""
    text = text.strip(" \t")
    scheme = _SCHEME.match(text)
    if scheme is None or text[scheme.end() : scheme.end() + 1] != ":":
        raise _fail(f"Malformed URI {_show(text)}")
    name, rest = scheme.group(), text[scheme.end() + 1 :]
    if not rest or any(ch <= " " or ch in '<>"\x7f' for ch in rest):
        raise _fail(f"Malformed URI {_show(text)}")
    lname = name.lower()
    if lname not in ("sip", "sips"):
        return AbsoluteUri(scheme=name, opaque=rest)
    return _parse_sip_uri(lname, rest, text)


def _parse_sip_uri(scheme: str, rest: str, text: str) -> SipUri:
    where = f"URI {_show(text)}"
    user = password = None
    # "@" cannot appear unescaped after the userinfo (hosts, params and headers exclude it),
    # while the user part may hold ";" "?" "/" (RFC 3261 25.1 user-unreserved): cut at "@".
    if rest.count("@") > 1:
        raise _fail(f"Unescaped '@' in {where}")
    userinfo, at, hostpart = rest.rpartition("@")
    if at:
        user_text, colon, password_text = userinfo.partition(":")
        if not _USER_CHARS.fullmatch(user_text):
            raise _fail(f"Bad user part in {where}")
        if colon and not _PASSWORD_CHARS.fullmatch(password_text):
            raise _fail(f"Bad password in {where}")
        user, password = user_text, (password_text if colon else None)
    hostparams, question, header_text = hostpart.partition("?")
    if hostparams.startswith("["):
        close = hostparams.find("]")
        split_at = hostparams.find(";", close if close >= 0 else 0)
    else:
        split_at = hostparams.find(";")
    hostport, param_text = (
        (hostparams, "") if split_at < 0 else (hostparams[:split_at], hostparams[split_at + 1 :])
    )
    host, port = _split_hostport(hostport, where)
    params: list[tuple[str, str | None]] = []
    if split_at >= 0:
        for part in param_text.split(";"):
            pname, eq, pvalue = part.partition("=")
            if not _PARAM_CHARS.fullmatch(pname) or (eq and not _PARAM_CHARS.fullmatch(pvalue)):
                raise _fail(f"Bad parameter in {where}")
            params.append((pname, pvalue if eq else None))
    headers: list[tuple[str, str]] = []
    if question:
        for part in header_text.split("&"):
            hname, eq, hvalue = part.partition("=")
            if not eq or not hname or not _HEADER_CHARS.fullmatch(hname + hvalue):
                raise _fail(f"Bad header in {where}")
            headers.append((hname, hvalue))
    return SipUri(
        scheme=scheme,
        user=user,
        password=password,
        host=host,
        port=port,
        params=tuple(params),
        headers=tuple(headers),
    )


# --- header values ---


def parse_via(text: str) -> Via:
    """`SIP / 2.0 / UDP host:port ;params` (RFC 3261 20.42): LWS may surround "/" ":" ";"."""
    where = f"Via {_show(text)}"
    parts: list[str] = []
    i = _skip_ws(text, 0)
    for n in range(3):
        token = _TOKEN.match(text, i)
        if token is None:
            raise _fail(f"Malformed {where}")
        parts.append(token.group())
        i = _skip_ws(text, token.end())
        if n < 2:
            if text[i : i + 1] != "/":
                raise _fail(f"Malformed {where}")
            i = _skip_ws(text, i + 1)
        elif i == token.end() or i == len(text):
            raise _fail(f"Missing sent-by in {where}")  # sent-protocol LWS sent-by
    if text[i] == "[":
        end = text.find("]", i)
        if end < 0:
            raise _fail(f"Unclosed IPv6 reference in {where}")
        host_text, i = text[i : end + 1], end + 1
    else:
        host_match = re.compile(r"[A-Za-z0-9_.\-]+").match(text, i)
        if host_match is None:
            raise _fail(f"Missing sent-by in {where}")
        host_text, i = host_match.group(), host_match.end()
    host = _parse_host(host_text, where)
    port = None
    j = _skip_ws(text, i)
    if text[j : j + 1] == ":":
        j = _skip_ws(text, j + 1)
        digits = _DIGITS.match(text, j)
        if digits is None:
            raise _fail(f"Bad port in {where}")
        port, i = _parse_port(digits.group(), where), digits.end()
    params, i = _read_params(text, i, where)
    if i != len(text):
        raise _fail(f"Junk in {where}")
    for key, value in params:
        lkey = key.lower()
        if lkey == "received" and (value is None or not _is_ip(value)):
            raise _fail(f"Bad received parameter in {where}")
        if lkey in ("ttl", "rport") and value is not None and not _DIGITS.fullmatch(value):
            raise _fail(f"Bad {lkey} parameter in {where}")
        if lkey == "branch" and (value is None or not _TOKEN.fullmatch(value)):
            raise _fail(f"Bad branch parameter in {where}")
    return Via(
        transport=parts[2].upper(),
        host=host,
        port=port,
        params=params,
        protocol=f"{parts[0]}/{parts[1]}",
    )


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return False
    return True


def parse_name_addr(text: str) -> NameAddr:
    """`"Display" <uri>;params` or `uri;params` (RFC 3261 20.10, 25.1).

    In the addr-spec form the URI cannot carry parameters of its own: everything after
    the first ";" belongs to the header (RFC 4475 3.3.12), and a URI with "?" or "," must be
    bracketed (RFC 4475 3.1.2.13). No LWS inside the brackets (LAQUOT/RAQUOT, RFC 4475
    3.1.2.14); an unquoted display name is tokens only (RFC 4475 3.1.2.15)."""
    s = text.strip(" \t")
    where = _show(s)
    if not s:
        raise _fail("Empty address")
    display: str | None = None
    if s[0] == '"':
        display, i = _read_quoted(s, 0)
        i = _skip_ws(s, i)
        if s[i : i + 1] != "<":
            raise _fail(f"Quoted display name without <uri> in {where}")
        lt = i
    else:
        lt = s.find("<")
        prefix = s[:lt] if lt >= 0 else ""
        if lt >= 0 and ":" in prefix:
            lt = -1  # a "<" inside the params of an addr-spec, not a name-addr
        if lt >= 0:
            words = prefix.replace("\t", " ").split(" ")
            tokens = [w for w in words if w]
            if not all(_TOKEN.fullmatch(w) for w in tokens):
                raise _fail(f"Display name must be quoted in {where}")
            display = " ".join(tokens) or None
    if lt >= 0:
        gt = s.find(">", lt)
        if gt < 0:
            raise _fail(f"Unclosed '<' in {where}")
        inner = s[lt + 1 : gt]
        if not inner or inner != inner.strip(" \t"):
            raise _fail(f"Whitespace inside <> in {where}")
        uri = parse_uri(inner)
        params, end = _read_params(s, gt + 1, where)
        bracketed = True
    else:
        semi = s.find(";")
        uri_text = s if semi < 0 else s[:semi].rstrip(" \t")
        if any(c in uri_text for c in "?, \t"):
            raise _fail(f"URI with '?', ',' or spaces must be in <> in {where}")
        uri = parse_uri(uri_text)
        params, end = _read_params(s, len(uri_text), where)
        bracketed = False
    if end != len(s):
        raise _fail(f"Junk after address in {where}")
    return NameAddr(uri=uri, display_name=display, params=params, bracketed=bracketed)


def parse_cseq(text: str) -> CSeq:
    """`CSeq: 1*DIGIT LWS Method`, the number a 32-bit unsigned integer (RFC 3261 8.1.1.5)."""
    m = re.fullmatch(f"[ \t]*([0-9]+)[ \t]+([{_TOKEN_CLASS}]+)[ \t]*", text)
    if m is None:
        raise _fail(f"Malformed CSeq {_show(text)}")
    return CSeq(_number(m.group(1), "CSeq number", _MAX_CSEQ), m.group(2))


def _check_header(name: str, value: str) -> None:
    """Validate the headers the switch relies on, so later typed access cannot fail."""
    if name == "Via":
        elements = _split_list_strict(value, "Via")
        for element in elements:
            parse_via(element)
    elif name in ("From", "To"):
        parse_name_addr(value)
    elif name in ("Contact", "Route", "Record-Route"):
        if name == "Contact" and value.strip(" \t") == "*":
            return
        for element in _split_list_strict(value, name):
            parse_name_addr(element)
    elif name == "Call-ID":
        if not _CALL_ID.fullmatch(value):
            raise _fail(f"Malformed Call-ID {_show(value)}")
    elif name == "CSeq":
        parse_cseq(value)
    elif name in ("Max-Forwards", "Expires", "Min-Expires"):
        # Only the syntax: RFC 4475 3.1.2.4 lets an element treat an out-of-range value
        # as absent or as the default, so the size is the application's business.
        if not _DIGITS.fullmatch(value):
            raise _fail(f"Bad {name} {_show(value)}")
    elif name == "Content-Length":
        _number(value, "Content-Length")
    elif name == "Content-Type":
        m = re.match(f"[{_TOKEN_CLASS}]+[ \t]*/[ \t]*[{_TOKEN_CLASS}]+", value)
        if m is None or _read_params(value, m.end(), "Content-Type")[1] != len(value):
            raise _fail(f"Malformed Content-Type {_show(value)}")
    elif name == "Date":
        if not _RFC1123_DATE.fullmatch(value):
            raise _fail(f"Malformed Date {_show(value)}")  # RFC 4475 3.1.2.12
    elif name in _TOKEN_LISTS:
        if not value and name in ("Supported", "Allow"):
            return  # both may be empty (RFC 3261 20.37, 20.5): "supports nothing"
        for element in value.split(","):
            if not _TOKEN.fullmatch(element.strip(" \t")):
                raise _fail(f"Malformed {name} {_show(value)}")
    elif name == "Warning":
        for element in _split_list_strict(value, name):
            if not re.match("[0-9]{3} ", element):
                raise _fail(f"Malformed Warning {_show(element)}")  # RFC 4475 3.1.2.5


def _split_list_strict(value: str, name: str) -> list[str]:
    """Split a list header on top-level commas; an empty element is an error (RFC 7.3.1)."""
    parts: list[str] = []
    start = 0
    i = 0
    depth = 0
    while i < len(value):
        ch = value[i]
        if ch == '"':
            _, i = _read_quoted(value, i)
            continue
        if ch == "<":
            depth += 1
        elif ch == ">":
            depth = max(0, depth - 1)
        elif ch == "," and depth == 0:
            parts.append(value[start:i])
            start = i + 1
        i += 1
    parts.append(value[start:])
    stripped = [p.strip(" \t") for p in parts]
    if not all(stripped):
        raise _fail(f"Empty element in {name} {_show(value)}")
    return stripped


# --- messages ---


def _split_head(data: bytes) -> tuple[bytes, bytes]:
    data = data.lstrip(b"\r\n")  # RFC 3261 7.5: ignore CRLFs before the start line
    end = _END_OF_HEADERS.search(data)
    if end is None:
        raise _fail("No empty line after the headers")
    return data[: end.start()], data[end.end() :]


def _header_lines(head: bytes, strict: bool) -> tuple[str, list[tuple[str, str]]]:
    """Start line and `(canonical name, unfolded value)` pairs, in wire order.

    Folding (LWS = [*WSP CRLF] 1*WSP) means the same as one SP (RFC 3261 7.3.1)."""
    text = head.decode("utf-8", "surrogateescape")
    lines = _LINE_END.split(text)
    start, rest = lines[0], lines[1:]
    if not start:
        raise _fail("Empty start line")
    unfolded: list[str] = []
    for line in rest:
        if line[:1] in (" ", "\t"):
            if not unfolded:
                if strict:
                    raise _fail("Folded line right after the start line")
                continue
            unfolded[-1] = unfolded[-1].rstrip(" \t") + " " + line.strip(" \t")
        else:
            unfolded.append(line)
    items: list[tuple[str, str]] = []
    for line in unfolded:
        m = re.match(f"([{_TOKEN_CLASS}]+)[ \t]*:", line)
        if m is None or "\r" in line:
            if strict:
                raise _fail(f"Malformed header line {_show(line)}")
            continue
        items.append((canonical_name(m.group(1)), line[m.end() :].strip(" \t")))
    return start, items


def parse_message(data: bytes) -> Message:
    """One SIP message from a datagram or a framed stream message.

    Without Content-Length the body is the rest of the datagram (RFC 3261 18.3); with it,
    octets beyond it are discarded (RFC 4475 3.1.1.8) and a shorter body is an error."""
    if len(data) > MAX_MESSAGE_SIZE:
        raise _fail("Message Too Large", 513)
    head, body = _split_head(data)
    start, items = _header_lines(head, strict=True)

    if start[:4].upper() == "SIP/":
        version, _, rest = start.partition(" ")
        code, _, reason = rest.partition(" ")
        if version.upper() != "SIP/2.0":
            raise _fail("Unsupported SIP version in response")
        if not re.fullmatch("[1-6][0-9][0-9]", code):
            raise _fail(f"Bad status code {_show(code)}")  # RFC 4475 3.1.2.19
        if any(ch in reason for ch in "\r\x00"):
            raise _fail("Bad reason phrase")
        request_line: tuple[str, str, str] | None = None
    else:
        # Request-Line = Method SP Request-URI SP SIP-Version: exactly one SP each
        # (RFC 4475 3.1.2.8-3.1.2.10 send extra spaces and expect 400).
        parts = start.split(" ")
        if len(parts) != 3 or not all(parts):
            raise _fail("Malformed Request-Line")
        method, uri_text, version = parts
        if not _TOKEN.fullmatch(method):
            raise _fail(f"Bad method {_show(method)}")
        if not _SIP_VERSION.fullmatch(version):
            raise _fail("Malformed Request-Line")
        if version.upper() != "SIP/2.0":
            raise _fail("Version Not Supported", 505)
        request_line = (method, uri_text, version)

    headers = Headers(tuple(items))
    seen: set[str] = set()
    for name, value in items:
        if name in _SINGLE_HEADERS:
            if name in seen:
                raise _fail(f"More than one {name}")
            seen.add(name)
        _check_header(name, value)
    for name in _MANDATORY:
        if headers.get(name) is None:
            raise _fail(f"Missing {name}")

    length = headers.get("Content-Length")
    if length is not None:
        n = _number(length, "Content-Length")
        if n > len(body):
            raise _fail("Content-Length larger than the message body")  # RFC 4475 3.1.2.2
        body = body[:n]

    if request_line is None:
        version, _, rest = start.partition(" ")
        code, _, reason = rest.partition(" ")
        return Response(
            status=int(code), reason=reason, headers=headers, body=body, version=version
        )

    method, uri_text, version = request_line
    uri = parse_uri(uri_text)
    if isinstance(uri, SipUri) and uri.headers:
        raise _fail("Headers in the Request-URI")  # RFC 3261 19.1.5, RFC 4475 3.1.2.11
    cseq = parse_cseq(headers.get("CSeq") or "")
    if cseq.method != method:
        raise _fail("CSeq method does not match the request method")  # RFC 4475 3.1.2.17
    if uri.scheme.lower() not in _ROUTABLE_SCHEMES:
        raise _fail("Unsupported URI Scheme", 416)  # RFC 4475 3.3.2, 3.3.3
    return Request(method=method, uri=uri, headers=headers, body=body, version=version)


# --- stream framing (RFC 3261 18.3) ---


class StreamFramer:
    """Cuts a TCP byte stream into whole SIP messages by Content-Length.

    CRLFs between messages are skipped (RFC 3261 7.5; RFC 5626 3.5.1 "\\r\\n\\r\\n" pings:
    `keepalives` counts them so the transport can answer the single CRLF pong). Errors are
    final: the stream position is lost, so the caller answers if it can (`pending` holds
    the unparsed bytes for `error_response_for`) and closes the connection.
    """

    def __init__(self, max_message_size: int = MAX_MESSAGE_SIZE) -> None:
        self.max_message_size = max_message_size
        self.keepalives = 0
        self._buffer = bytearray()
        self._gap = bytearray()
        self._failed: SipParseError | None = None

    @property
    def pending(self) -> bytes:
        return bytes(self._buffer)

    def feed(self, data: bytes) -> list[bytes]:
        if self._failed is not None:
            raise self._failed
        self._buffer += data
        try:
            return self._drain()
        except SipParseError as exc:
            self._failed = exc
            raise

    def _drain(self) -> list[bytes]:
        messages: list[bytes] = []
        while True:
            skipped = len(self._buffer) - len(self._buffer.lstrip(b"\r\n"))
            if skipped:
                # A ping may arrive split over reads: count it across them.
                self._gap += self._buffer[:skipped]
                del self._buffer[:skipped]
                while (ping := self._gap.find(b"\r\n\r\n")) >= 0:
                    self.keepalives += 1
                    del self._gap[: ping + 4]
                del self._gap[:-3]
            if not self._buffer:
                return messages
            self._gap.clear()
            end = _END_OF_HEADERS.search(self._buffer)
            if end is None:
                if len(self._buffer) > self.max_message_size:
                    raise _fail("Message Too Large", 513)
                return messages
            head = bytes(self._buffer[: end.start()])
            if end.end() > self.max_message_size:
                raise _fail("Message Too Large", 513)
            total = end.end() + self._content_length(head)
            if total > self.max_message_size:
                raise _fail("Request Entity Too Large", 413)
            if len(self._buffer) < total:
                return messages
            messages.append(bytes(self._buffer[:total]))
            del self._buffer[:total]

    @staticmethod
    def _content_length(head: bytes) -> int:
        _, items = _header_lines(head, strict=True)
        values = [value for name, value in items if name == "Content-Length"]
        if not values:
            raise _fail("Missing Content-Length on a stream transport")  # RFC 3261 18.3
        if len(values) > 1:
            raise _fail("More than one Content-Length")
        return _number(values[0], "Content-Length")


# --- stateless error answers (RFC 3261 8.2, 16.3) ---


def error_response_for(data: bytes, err: SipParseError) -> bytes | None:
    """The wire form of the `err.status` answer to a request that failed to parse.

    None when it must or cannot be answered: responses and ACKs are never answered
    (RFC 3261 17), and without a readable top Via there is nowhere to send it. From, To,
    Call-ID and CSeq are copied when present (RFC 3261 8.2.6.2) so the client can match
    the answer; To gets a tag derived from the request, stable across retransmissions."""
    try:
        head, _ = _split_head(
            data[: MAX_MESSAGE_SIZE + 1] if len(data) > MAX_MESSAGE_SIZE else data
        )
    except SipParseError:
        return None
    try:
        start, items = _header_lines(head, strict=False)
    except SipParseError:
        return None
    method = start.split(" ", 1)[0]
    if start[:4].upper() == "SIP/" or not _TOKEN.fullmatch(method) or method == "ACK":
        return None
    via_lines = [value for name, value in items if name == "Via"]
    if not via_lines or not _readable_via(via_lines[0]):
        return None
    copied: list[tuple[str, str]] = [("Via", value) for value in via_lines]
    for name in ("From", "To", "Call-ID", "CSeq"):
        value = next((v for n, v in items if n == name), None)
        if value is None:
            continue
        if name == "To" and err.status != 100 and not re.search(r";[ \t]*tag[ \t]*=", value, re.I):
            value = f"{value};tag={_stable_tag(data)}"
        copied.append((name, value))
    reason = "".join(ch if ch.isprintable() else " " for ch in err.reason)[:120].strip()
    response = Response(
        status=err.status, reason=reason or "Bad Request", headers=Headers(tuple(copied))
    )
    return response.to_bytes()


def _readable_via(line: str) -> bool:
    top = line.split(",", 1)[0]
    try:
        parse_via(top)
    except SipParseError:
        # Enough to route the answer back: protocol, transport and a sent-by host
        # (RFC 4475 3.1.2.1 breaks only the parameters and still expects a 400).
        return (
            re.match(
                f"[ \t]*[{_TOKEN_CLASS}]+[ \t]*/[ \t]*[{_TOKEN_CLASS}]+[ \t]*/[ \t]*"
                f"[{_TOKEN_CLASS}]+[ \t]+[A-Za-z0-9.\\-\\[\\]:]+",
                top,
            )
            is not None
        )
    return True


def _stable_tag(data: bytes) -> str:
    return hashlib.sha1(data, usedforsecurity=False).hexdigest()[:12]


__all__ = [
    "MAX_MESSAGE_SIZE",
    "StreamFramer",
    "error_response_for",
    "parse_cseq",
    "parse_message",
    "parse_name_addr",
    "parse_uri",
    "parse_via",
]
