"""Header names and the structured header values the switch reasons about.

Parsing of the values lives in `telephony.sip.parser`; this module only holds the types,
their wire form, and the header-name table (RFC 3261 section 7.3.3 compact forms).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from telephony.sip.uri import SipUri, Uri

# RFC 3261 7.3.3 and the IANA registry: compact form -> full name.
COMPACT_FORMS: dict[str, str] = {
    "a": "Accept-Contact",
    "b": "Referred-By",
    "c": "Content-Type",
    "d": "Request-Disposition",
    "e": "Content-Encoding",
    "f": "From",
    "i": "Call-ID",
    "j": "Reject-Contact",
    "k": "Supported",
    "l": "Content-Length",
    "m": "Contact",
    "n": "Identity-Info",
    "o": "Event",
    "r": "Refer-To",
    "s": "Subject",
    "t": "To",
    "u": "Allow-Events",
    "v": "Via",
    "x": "Session-Expires",
    "y": "Identity",
}

# Spellings that plain title-casing gets wrong.
_SPECIAL_CASE: dict[str, str] = {
    "call-id": "Call-ID",
    "cseq": "CSeq",
    "www-authenticate": "WWW-Authenticate",
    "mime-version": "MIME-Version",
    "p-asserted-identity": "P-Asserted-Identity",
    "p-preferred-identity": "P-Preferred-Identity",
    "rack": "RAck",
    "rseq": "RSeq",
    "sip-etag": "SIP-ETag",
    "sip-if-match": "SIP-If-Match",
    "identity-info": "Identity-Info",
}

# Headers whose value is a comma-separated list (RFC 3261 7.3.1): several header lines and
# one line with commas mean the same. Others (WWW-Authenticate, Date, ...) contain commas
# that are not list separators.
LIST_HEADERS: frozenset[str] = frozenset(
    {
        "Via",
        "Contact",
        "Route",
        "Record-Route",
        "Allow",
        "Supported",
        "Require",
        "Proxy-Require",
        "Unsupported",
        "Accept",
        "Accept-Encoding",
        "Accept-Language",
        "Content-Encoding",
        "Content-Language",
        "Allow-Events",
        "In-Reply-To",
        "Alert-Info",
        "Call-Info",
        "Error-Info",
        "P-Asserted-Identity",
        "Path",
        "Service-Route",
        "Warning",
    }
)


def canonical_name(name: str) -> str:
    """`v` -> `Via`, `call-id` -> `Call-ID`, `x-foo-bar` -> `X-Foo-Bar`."""
    lname = name.strip().lower()
    if lname in COMPACT_FORMS:
        return COMPACT_FORMS[lname]
    if lname in _SPECIAL_CASE:
        return _SPECIAL_CASE[lname]
    return "-".join(part[:1].upper() + part[1:] for part in lname.split("-"))


def _format_params(params: tuple[tuple[str, str | None], ...]) -> str:
    return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params)


def _param(params: tuple[tuple[str, str | None], ...], name: str) -> str | None:
    lname = name.lower()
    for key, value in params:
        if key.lower() == lname:
            return "" if value is None else value
    return None


@dataclass(frozen=True, slots=True)
class Via:
    """One Via hop: `SIP/2.0/UDP host:port;branch=z9hG4bK...;rport;received=...`."""

    transport: str
    host: str
    port: int | None = None
    params: tuple[tuple[str, str | None], ...] = ()
    protocol: str = "SIP/2.0"

    def param(self, name: str) -> str | None:
        return _param(self.params, name)

    @property
    def branch(self) -> str | None:
        return self.param("branch")

    def with_params(self, **params: str | None) -> Via:
        kept = tuple((k, v) for k, v in self.params if k.lower() not in params)
        return replace(self, params=kept + tuple(params.items()))

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host and not self.host.startswith("[") else self.host
        hostport = host if self.port is None else f"{host}:{self.port}"
        return f"{self.protocol}/{self.transport.upper()} {hostport}{_format_params(self.params)}"


@dataclass(frozen=True, slots=True)
class NameAddr:
    """`"Display" <uri>;tag=...` as used by From, To, Contact, Route, Record-Route, PAI.

    `bracketed` remembers whether the URI was in angle brackets; it must be when the URI has
    parameters or headers of its own (RFC 3261 20.10), so serialisation adds them then.
    """

    uri: Uri
    display_name: str | None = None
    params: tuple[tuple[str, str | None], ...] = ()
    bracketed: bool = True

    def param(self, name: str) -> str | None:
        return _param(self.params, name)

    @property
    def tag(self) -> str | None:
        return self.param("tag")

    def with_params(self, **params: str | None) -> NameAddr:
        kept = tuple((k, v) for k, v in self.params if k.lower() not in params)
        return replace(self, params=kept + tuple(params.items()))

    def __str__(self) -> str:
        uri = str(self.uri)
        needs_brackets = (
            self.bracketed
            or self.display_name is not None
            or (isinstance(self.uri, SipUri) and (bool(self.uri.params) or bool(self.uri.headers)))
            or any(c in uri for c in ",;?")
        )
        out = f"<{uri}>" if needs_brackets else uri
        if self.display_name is not None:
            out = f"{quote_display_name(self.display_name)} {out}"
        return out + _format_params(self.params)


def quote_display_name(name: str) -> str:
    """quoted-string form (RFC 3261 25.1): `\\` and `"` and control characters go out as
    quoted-pairs; CR and LF cannot be quoted at all, so they become spaces."""
    out = []
    for ch in name:
        if ch in "\r\n":
            out.append(" ")
        elif ch in '"\\' or ch == "\x7f" or (ch < " " and ch != "\t"):
            out.append("\\" + ch)
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


@dataclass(frozen=True, slots=True)
class CSeq:
    seq: int
    method: str

    def __str__(self) -> str:
        return f"{self.seq} {self.method}"


@dataclass(frozen=True, slots=True)
class Challenge:
    """A WWW-Authenticate / Authorization value: `Digest realm="...", nonce="..."`."""

    scheme: str
    params: tuple[tuple[str, str], ...]

    def param(self, name: str) -> str | None:
        lname = name.lower()
        for key, value in self.params:
            if key.lower() == lname:
                return value
        return None


__all__ = [
    "COMPACT_FORMS",
    "LIST_HEADERS",
    "CSeq",
    "Challenge",
    "NameAddr",
    "Via",
    "canonical_name",
    "quote_display_name",
]
