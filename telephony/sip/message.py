"""SIP requests and responses as immutable values (RFC 3261 section 7).

A message keeps its header lines in wire order as `(canonical name, raw value)` pairs; the
typed accessors (`vias`, `from_`, `cseq`, ...) parse on demand, so a header the switch never
looks at is relayed exactly as received. Changing a message returns a new one.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Self

from telephony.sip.headers import LIST_HEADERS, CSeq, NameAddr, Via, canonical_name
from telephony.sip.uri import SipUri, Uri

SIP_VERSION = "SIP/2.0"

# RFC 3261 21: default reason phrases.
REASON_PHRASES: dict[int, str] = {
    100: "Trying",
    180: "Ringing",
    181: "Call Is Being Forwarded",
    182: "Queued",
    183: "Session Progress",
    200: "OK",
    202: "Accepted",
    300: "Multiple Choices",
    301: "Moved Permanently",
    302: "Moved Temporarily",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    407: "Proxy Authentication Required",
    408: "Request Timeout",
    410: "Gone",
    413: "Request Entity Too Large",
    414: "Request-URI Too Long",
    415: "Unsupported Media Type",
    416: "Unsupported URI Scheme",
    420: "Bad Extension",
    421: "Extension Required",
    423: "Interval Too Brief",
    480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist",
    482: "Loop Detected",
    483: "Too Many Hops",
    484: "Address Incomplete",
    485: "Ambiguous",
    486: "Busy Here",
    487: "Request Terminated",
    488: "Not Acceptable Here",
    491: "Request Pending",
    500: "Server Internal Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Server Time-out",
    505: "Version Not Supported",
    513: "Message Too Large",
    600: "Busy Everywhere",
    603: "Decline",
    604: "Does Not Exist Anywhere",
    606: "Not Acceptable",
}


def split_list(value: str) -> list[str]:
    """Split a comma-separated header value, ignoring commas in quotes and angle brackets."""
    parts: list[str] = []
    depth = 0
    quoted = False
    escaped = False
    start = 0
    for i, ch in enumerate(value):
        if escaped:
            escaped = False
        elif quoted:
            if ch == "\\":
                escaped = True
            elif ch == '"':
                quoted = False
        elif ch == '"':
            quoted = True
        elif ch == "<":
            depth += 1
        elif ch == ">":
            depth = max(0, depth - 1)
        elif ch == "," and depth == 0:
            parts.append(value[start:i].strip())
            start = i + 1
    parts.append(value[start:].strip())
    return [p for p in parts if p]


@dataclass(frozen=True, slots=True)
class Headers:
    """Ordered header lines; names are canonical (`v` and `via` are both stored as `Via`)."""

    items: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, *pairs: tuple[str, str]) -> Headers:
        return cls(tuple((canonical_name(n), v) for n, v in pairs))

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def get(self, name: str, default: str | None = None) -> str | None:
        cname = canonical_name(name)
        for key, value in self.items:
            if key == cname:
                return value
        return default

    def lines(self, name: str) -> list[str]:
        """Every header line of this name, as written."""
        cname = canonical_name(name)
        return [value for key, value in self.items if key == cname]

    def values(self, name: str) -> list[str]:
        """Every element of this header: list headers are split on their commas."""
        cname = canonical_name(name)
        if cname not in LIST_HEADERS:
            return self.lines(cname)
        out: list[str] = []
        for line in self.lines(cname):
            out.extend(split_list(line))
        return out

    def add(self, name: str, value: str) -> Headers:
        return Headers((*self.items, (canonical_name(name), value)))

    def prepend(self, name: str, value: str) -> Headers:
        """Put a header line before the first of its name (a new top Via or Record-Route)."""
        cname = canonical_name(name)
        for i, (key, _) in enumerate(self.items):
            if key == cname:
                return Headers((*self.items[:i], (cname, value), *self.items[i:]))
        return Headers(((cname, value), *self.items))

    def set(self, name: str, value: str) -> Headers:
        """Replace every line of this name by one, where the first one stood."""
        cname = canonical_name(name)
        out: list[tuple[str, str]] = []
        placed = False
        for key, old in self.items:
            if key == cname:
                if not placed:
                    out.append((cname, value))
                    placed = True
            else:
                out.append((key, old))
        if not placed:
            out.append((cname, value))
        return Headers(tuple(out))

    def remove(self, name: str) -> Headers:
        cname = canonical_name(name)
        return Headers(tuple((k, v) for k, v in self.items if k != cname))

    def remove_first(self, name: str) -> Headers:
        """Drop the first element of a list header (the top Via when a response goes back)."""
        cname = canonical_name(name)
        for i, (key, value) in enumerate(self.items):
            if key == cname:
                rest = split_list(value)[1:]
                if rest:
                    return Headers(
                        (*self.items[:i], (cname, ", ".join(rest)), *self.items[i + 1 :])
                    )
                return Headers((*self.items[:i], *self.items[i + 1 :]))
        return self


@dataclass(frozen=True, slots=True)
class _Message:
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""

    # --- typed views; each parses on demand and raises SipParseError when malformed ---

    @property
    def call_id(self) -> str:
        return self._required("Call-ID").strip()

    @property
    def cseq(self) -> CSeq:
        from telephony.sip.parser import parse_cseq

        return parse_cseq(self._required("CSeq"))

    @property
    def vias(self) -> list[Via]:
        from telephony.sip.parser import parse_via

        return [parse_via(v) for v in self.headers.values("Via")]

    @property
    def top_via(self) -> Via:
        from telephony.sip.errors import SipParseError

        vias = self.vias
        if not vias:
            raise SipParseError("Missing Via")
        return vias[0]

    @property
    def from_(self) -> NameAddr:
        from telephony.sip.parser import parse_name_addr

        return parse_name_addr(self._required("From"))

    @property
    def to(self) -> NameAddr:
        from telephony.sip.parser import parse_name_addr

        return parse_name_addr(self._required("To"))

    @property
    def contacts(self) -> list[NameAddr]:
        """Contact values; `*` (unregister all) comes back as an empty list, see `is_star`."""
        from telephony.sip.parser import parse_name_addr

        return [parse_name_addr(v) for v in self.headers.values("Contact") if v.strip() != "*"]

    def name_addrs(self, name: str) -> list[NameAddr]:
        """Route, Record-Route, P-Asserted-Identity and other lists of name-addrs."""
        from telephony.sip.parser import parse_name_addr

        return [parse_name_addr(v) for v in self.headers.values(name)]

    @property
    def content_type(self) -> str | None:
        value = self.headers.get("Content-Type")
        return None if value is None else value.split(";")[0].strip().lower()

    def _required(self, name: str) -> str:
        from telephony.sip.errors import SipParseError

        value = self.headers.get(name)
        if value is None:
            raise SipParseError(f"Missing {canonical_name(name)}")
        return value

    def with_header(self, name: str, value: str) -> Self:
        return replace(self, headers=self.headers.set(name, value))

    def with_added(self, name: str, value: str) -> Self:
        return replace(self, headers=self.headers.add(name, value))

    def without_header(self, name: str) -> Self:
        return replace(self, headers=self.headers.remove(name))

    def with_body(self, body: bytes, content_type: str | None = None) -> Self:
        headers = self.headers
        if content_type is not None:
            headers = headers.set("Content-Type", content_type)
        elif not body:
            headers = headers.remove("Content-Type")
        return replace(self, headers=headers, body=body)

    def start_line(self) -> str:
        raise NotImplementedError

    def to_bytes(self) -> bytes:
        """Wire form; Content-Length always reflects the body (RFC 3261 20.14)."""
        lines = [self.start_line()]
        lines.extend(
            f"{name}: {value}" for name, value in self.headers.items if name != "Content-Length"
        )
        lines.append(f"Content-Length: {len(self.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape") + self.body

    def __bytes__(self) -> bytes:
        return self.to_bytes()


@dataclass(frozen=True, slots=True)
class Request(_Message):
    method: str = "OPTIONS"
    uri: Uri = field(default_factory=lambda: SipUri(host="invalid"))
    version: str = SIP_VERSION

    def start_line(self) -> str:
        return f"{self.method} {self.uri} {self.version}"

    @property
    def sip_uri(self) -> SipUri | None:
        return self.uri if isinstance(self.uri, SipUri) else None


@dataclass(frozen=True, slots=True)
class Response(_Message):
    status: int = 200
    reason: str = "OK"
    version: str = SIP_VERSION

    def start_line(self) -> str:
        return f"{self.version} {self.status} {self.reason}"

    @property
    def is_provisional(self) -> bool:
        return self.status < 200

    @property
    def is_success(self) -> bool:
        return 200 <= self.status < 300

    @property
    def is_final(self) -> bool:
        return self.status >= 200


Message = Request | Response

# Headers a UAS copies from the request into every response (RFC 3261 8.2.6.2).
_COPIED_INTO_RESPONSE = ("Via", "From", "To", "Call-ID", "CSeq")


def make_response(
    request: Request,
    status: int,
    reason: str | None = None,
    *,
    to_tag: str | None = None,
    headers: tuple[tuple[str, str], ...] = (),
    body: bytes = b"",
    content_type: str | None = None,
) -> Response:
    """Build the response to `request` as RFC 3261 8.2.6 says: same Via list, From, Call-ID and
    CSeq; To gets `to_tag` unless it already has one (100 Trying never gets one)."""
    copied: list[tuple[str, str]] = []
    for name, value in request.headers.items:
        if name in _COPIED_INTO_RESPONSE:
            if name == "To" and to_tag and status != 100 and request.to.tag is None:
                value = str(request.to.with_params(tag=to_tag))
            copied.append((name, value))
    if status == 100 and (stamp := request.headers.get("Timestamp")) is not None:
        copied.append(("Timestamp", stamp))  # RFC 3261 8.2.6.1
    extra = tuple((canonical_name(n), v) for n, v in headers)
    if content_type is not None:
        extra += (("Content-Type", content_type),)
    return Response(
        status=status,
        reason=reason if reason is not None else REASON_PHRASES.get(status, "Unknown"),
        headers=Headers((*copied, *extra)),
        body=body,
    )


__all__ = [
    "REASON_PHRASES",
    "SIP_VERSION",
    "Headers",
    "Message",
    "Request",
    "Response",
    "make_response",
    "split_list",
]
