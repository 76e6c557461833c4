"""SIP and SIPS URIs (RFC 3261 section 19.1) and the other absolute URIs a message may carry."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from urllib.parse import unquote

# RFC 3261 25.1 unreserved: escaping these changes nothing (RFC 3261 19.1.4).
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.!~*'()")
_ESCAPE = re.compile("%([0-9A-Fa-f]{2})")


def unescape(text: str) -> str:
    """`%75se%72` -> `user`; escaped octets are UTF-8 (RFC 3261 19.1.2)."""
    return unquote(text, errors="surrogateescape")


def normalize_escapes(text: str) -> str:
    """Canonical escaping for comparison (RFC 3261 19.1.4): unescape the unreserved
    characters, upper-case the hex of the others, so `%75se%72` and `user` compare equal."""

    def fix(match: re.Match[str]) -> str:
        ch = chr(int(match.group(1), 16))
        return ch if ch in _UNRESERVED else match.group(0).upper()

    return _ESCAPE.sub(fix, text)


@dataclass(frozen=True, slots=True)
class SipUri:
    """`sip:user:password@host:port;params?headers`.

    `params` keeps the order and spelling seen on the wire; names compare case-insensitively
    (RFC 3261 19.1.4), so look them up with `param()`. A valueless parameter (`;lr`) has
    value `None`.
    """

    host: str
    user: str | None = None
    password: str | None = None
    port: int | None = None
    scheme: str = "sip"
    params: tuple[tuple[str, str | None], ...] = ()
    headers: tuple[tuple[str, str], ...] = ()

    def param(self, name: str) -> str | None:
        # Names compare case-insensitively and after unescaping: `%6C%72` is `lr` (19.1.4).
        lname = name.lower()
        for key, value in self.params:
            if key.lower() == lname or unescape(key).lower() == lname:
                return value if value is not None else ""
        return None

    def has_param(self, name: str) -> bool:
        return self.param(name) is not None

    @property
    def decoded_user(self) -> str | None:
        """The user part with its escapes resolved (`sips%3Auser%40example.com` ->
        `sips:user@example.com`, RFC 4475 3.1.1.3); `user` keeps the wire form."""
        return None if self.user is None else unescape(self.user)

    def with_params(self, **params: str | None) -> SipUri:
        kept = tuple((k, v) for k, v in self.params if k.lower() not in params)
        return replace(self, params=kept + tuple(params.items()))

    def without_params(self, *names: str) -> SipUri:
        lnames = {n.lower() for n in names}
        return replace(
            self, params=tuple((k, v) for k, v in self.params if k.lower() not in lnames)
        )

    @property
    def transport(self) -> str:
        return (self.param("transport") or ("tls" if self.scheme == "sips" else "udp")).lower()

    @property
    def hostport(self) -> str:
        host = f"[{self.host}]" if ":" in self.host and not self.host.startswith("[") else self.host
        return host if self.port is None else f"{host}:{self.port}"

    @property
    def address_of_record(self) -> str:
        """The key a registrar files bindings under: scheme, user and host, lower-cased host."""
        user = f"{normalize_escapes(self.user)}@" if self.user else ""
        return f"{self.scheme}:{user}{self.host.lower()}"

    def __str__(self) -> str:
        userinfo = ""
        if self.user is not None:
            userinfo = self.user + (f":{self.password}" if self.password is not None else "") + "@"
        params = "".join(f";{k}" if v is None else f";{k}={v}" for k, v in self.params)
        headers = "&".join(f"{k}={v}" for k, v in self.headers)
        return f"{self.scheme}:{userinfo}{self.hostport}{params}" + (
            f"?{headers}" if headers else ""
        )


@dataclass(frozen=True, slots=True)
class AbsoluteUri:
    """Any other absolute URI (tel:, urn:, http:, ...), kept as written (RFC 3261 19.1.6)."""

    scheme: str
    opaque: str = field(default="")

    def __str__(self) -> str:
        return f"{self.scheme}:{self.opaque}"


Uri = SipUri | AbsoluteUri


__all__ = ["AbsoluteUri", "SipUri", "Uri", "normalize_escapes", "unescape"]
