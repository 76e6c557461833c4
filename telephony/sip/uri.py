"""SIP and SIPS URIs (RFC 3261 section 19.1) and the other absolute URIs a message may carry."""

from __future__ import annotations

from dataclasses import dataclass, field, replace


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
        lname = name.lower()
        for key, value in self.params:
            if key.lower() == lname:
                return value if value is not None else ""
        return None

    def has_param(self, name: str) -> bool:
        lname = name.lower()
        return any(key.lower() == lname for key, _ in self.params)

    def with_params(self, **params: str | None) -> SipUri:
        kept = tuple((k, v) for k, v in self.params if k.lower() not in params)
        return replace(self, params=kept + tuple(params.items()))

    def without_params(self, *names: str) -> SipUri:
        lnames = {n.lower() for n in names}
        return replace(self, params=tuple((k, v) for k, v in self.params if k.lower() not in lnames))

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
        user = f"{self.user}@" if self.user else ""
        return f"{self.scheme}:{user}{self.host.lower()}"

    def __str__(self) -> str:
        userinfo = ""
        if self.user is not None:
            userinfo = self.user + (f":{self.password}" if self.password is not None else "") + "@"
        params = "".join(f";{k}" if v is None else f";{k}={v}" for k, v in self.params)
        headers = "&".join(f"{k}={v}" for k, v in self.headers)
        return f"{self.scheme}:{userinfo}{self.hostport}{params}" + (f"?{headers}" if headers else "")


@dataclass(frozen=True, slots=True)
class AbsoluteUri:
    """Any other absolute URI (tel:, urn:, http:, ...), kept as written (RFC 3261 19.1.6)."""

    scheme: str
    opaque: str = field(default="")

    def __str__(self) -> str:
        return f"{self.scheme}:{self.opaque}"


Uri = SipUri | AbsoluteUri


__all__ = ["AbsoluteUri", "SipUri", "Uri"]
