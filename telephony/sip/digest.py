"""Digest access authentication for SIP, sans-I/O (RFC 3261 22, RFC 8760, RFC 7616).

The server side (`DigestServer`) issues challenges and verifies credentials without storing
the nonces it hands out: a nonce is its own timestamp plus an HMAC over it, so it can be
checked and aged with nothing but the server secret (the RFC 2617 3.2.1 construction). The
only state is a small, bounded memory of the nonce counts already used, to refuse replays
(RFC 7616 3.4 nc).

The client side (`authorization_header`) answers one challenge; scripted phones and tests use
it, and it is written independently of the server code paths except for the hash table.

Neither side reads a clock: every call that needs the time takes `now`.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import secrets
import struct
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from telephony.sip.errors import SipError, SipParseError
from telephony.sip.headers import Challenge
from telephony.sip.parser import parse_uri
from telephony.sip.uri import SipUri

# RFC 8760 2.1 / RFC 7616 6.1: algorithm token -> hashlib name. Preference order is the
# caller's (`DigestServer(algorithms=...)`); SHA-256 comes first by default (RFC 8760 2.3).
HASH_ALGORITHMS: dict[str, str] = {
    "MD5": "md5",
    "SHA-256": "sha256",
    "SHA-512-256": "sha512_256",
}

# Parameters written as bare tokens rather than quoted strings (RFC 3261 25.1 challenge /
# credentials grammar: `stale`, `algorithm` in challenges; `algorithm`, `qop`, `nc` in answers).
_CHALLENGE_TOKEN_PARAMS = frozenset({"algorithm", "stale"})
_CREDENTIAL_TOKEN_PARAMS = frozenset({"algorithm", "qop", "nc"})

_TOKEN_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~")


class DigestError(SipError):
    """A challenge this side cannot answer (unknown algorithm, no usable qop)."""


# --- wire syntax -------------------------------------------------------------------------


def parse_challenge(value: str) -> Challenge:
    """Parse `Digest realm="x", nonce="y", qop="auth", ...` (WWW-Authenticate,
    Proxy-Authenticate, Authorization and Proxy-Authorization share this shape, RFC 3261 25.1).

    Quoted values come back unquoted and unescaped. A parameter given twice is malformed
    (RFC 7616 3.3: each directive at most once), so is anything that is not `name=value`.
    """
    text = value.strip()
    n = len(text)
    i = 0
    while i < n and text[i] in _TOKEN_CHARS:
        i += 1
    scheme = text[:i]
    if not scheme:
        raise SipParseError(f"Malformed authentication header {value!r}")
    params: list[tuple[str, str]] = []
    seen: set[str] = set()
    i = _skip_space(text, i)
    while i < n:
        if text[i] == ",":  # empty list elements are allowed (RFC 3261 7.3.1 #rule)
            i = _skip_space(text, i + 1)
            continue
        start = i
        while i < n and text[i] in _TOKEN_CHARS:
            i += 1
        name = text[start:i]
        i = _skip_space(text, i)
        if not name or i >= n or text[i] != "=":
            raise SipParseError(f"Malformed authentication parameter in {value!r}")
        i = _skip_space(text, i + 1)
        if i < n and text[i] == '"':
            chars: list[str] = []
            i += 1
            while True:
                if i >= n:
                    raise SipParseError(f"Unterminated quoted string in {value!r}")
                ch = text[i]
                if ch == "\\" and i + 1 < n:
                    chars.append(text[i + 1])
                    i += 2
                elif ch == '"':
                    i += 1
                    break
                else:
                    chars.append(ch)
                    i += 1
            param_value = "".join(chars)
        else:
            start = i
            while i < n and text[i] not in ", \t":
                i += 1
            param_value = text[start:i]
            if not param_value:
                raise SipParseError(f"Empty authentication parameter {name!r}")
        if name.lower() in seen:
            raise SipParseError(f"Repeated authentication parameter {name!r}")
        seen.add(name.lower())
        params.append((name, param_value))
        i = _skip_space(text, i)
        if i < n and text[i] != ",":
            raise SipParseError(f"Missing comma between authentication parameters in {value!r}")
    return Challenge(scheme=scheme, params=tuple(params))


def _skip_space(text: str, i: int) -> int:
    while i < len(text) and text[i] in " \t\r\n":
        i += 1
    return i


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _format(challenge: Challenge, tokens: frozenset[str]) -> str:
    parts = [f"{k}={v if k.lower() in tokens else _quote(v)}" for k, v in challenge.params]
    return f"{challenge.scheme} " + ", ".join(parts)


def format_challenge(challenge: Challenge) -> str:
    """WWW-Authenticate / Proxy-Authenticate wire form."""
    return _format(challenge, _CHALLENGE_TOKEN_PARAMS)


def format_credentials(credentials: Challenge) -> str:
    """Authorization / Proxy-Authorization wire form."""
    return _format(credentials, _CREDENTIAL_TOKEN_PARAMS)


# --- the digest computation (RFC 7616 3.4.1-3.4.3) -------------------------------------


def _split_algorithm(algorithm: str) -> tuple[str, bool]:
    """`SHA-256-sess` -> (`sha256`, True); raises DigestError for an unknown one."""
    name = algorithm.strip().upper()
    sess = name.endswith("-SESS")
    base = name[: -len("-SESS")] if sess else name
    hash_name = HASH_ALGORITHMS.get(base)
    if hash_name is None:
        raise DigestError(f"Unsupported digest algorithm {algorithm!r}")
    return hash_name, sess


def digest_response(
    *,
    algorithm: str,
    username: str,
    realm: str,
    password: str,
    method: str,
    uri: str,
    nonce: str,
    qop: str | None = None,
    nc: str | None = None,
    cnonce: str | None = None,
    body: bytes = b"",
) -> str:
    """The `response` value: KD(H(A1), nonce:nc:cnonce:qop:H(A2)) with a qop, or the RFC 2069
    form H(H(A1):nonce:H(A2)) without one. `nc` is the 8 hex digits as written on the wire."""
    hash_name, sess = _split_algorithm(algorithm)

    def h(data: str | bytes) -> str:
        raw = data.encode("utf-8") if isinstance(data, str) else data
        return hashlib.new(hash_name, raw).hexdigest()

    ha1 = h(f"{username}:{realm}:{password}")
    if sess:
        # RFC 7616 3.4.2: the session variant folds the nonces into A1.
        if cnonce is None:
            raise DigestError("-sess algorithms need a cnonce")
        ha1 = h(f"{ha1}:{nonce}:{cnonce}")
    if qop is not None and qop.lower() == "auth-int":
        ha2 = h(f"{method}:{uri}:{h(body)}")  # RFC 7616 3.4.3
    else:
        ha2 = h(f"{method}:{uri}")
    if qop is None:
        return h(f"{ha1}:{nonce}:{ha2}")  # RFC 2069 compatibility (RFC 7616 3.4.1 note)
    return h(f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")


# --- client side -------------------------------------------------------------------------


def _qop_options(challenge: Challenge) -> list[str]:
    raw = challenge.param("qop")
    if raw is None:
        return []
    return [q.strip().lower() for q in raw.split(",") if q.strip()]


def supports(challenge: Challenge) -> bool:
    """Whether `authorization_header` can answer this challenge."""
    if challenge.scheme.lower() != "digest":
        return False
    try:
        _split_algorithm(challenge.param("algorithm") or "MD5")
    except DigestError:
        return False
    options = _qop_options(challenge)
    return not options or "auth" in options or "auth-int" in options


def pick_challenge(values: Iterable[str]) -> Challenge | None:
    """The challenge a UAC answers among several: the topmost one whose algorithm it
    supports (RFC 8760 2.4, the server lists them most preferred first)."""
    for value in values:
        try:
            challenge = parse_challenge(value)
        except SipParseError:
            continue
        if supports(challenge):
            return challenge
    return None


def authorization_header(
    challenge_value: str | Challenge,
    *,
    method: str,
    uri: str,
    username: str,
    password: str,
    cnonce: str | None = None,
    nc: int = 1,
    body: bytes = b"",
) -> str:
    """The Authorization / Proxy-Authorization value answering one challenge (RFC 3261 22.2)."""
    challenge = (
        parse_challenge(challenge_value) if isinstance(challenge_value, str) else challenge_value
    )
    if challenge.scheme.lower() != "digest":
        raise DigestError(f"Unsupported authentication scheme {challenge.scheme!r}")
    realm = challenge.param("realm")
    nonce = challenge.param("nonce")
    if realm is None or nonce is None:
        raise DigestError("Challenge without realm or nonce")
    algorithm = challenge.param("algorithm")
    options = _qop_options(challenge)
    qop: str | None
    if not options:
        qop = None
    elif "auth" in options:
        qop = "auth"
    elif "auth-int" in options:
        qop = "auth-int"
    else:
        raise DigestError(f"No supported qop in {options!r}")
    nc_text = f"{nc:08x}" if qop is not None else None
    if qop is not None or (algorithm or "").upper().endswith("-SESS"):
        cnonce = cnonce if cnonce is not None else secrets.token_hex(8)
    else:
        cnonce = None
    response = digest_response(
        algorithm=algorithm or "MD5",
        username=username,
        realm=realm,
        password=password,
        method=method,
        uri=uri,
        nonce=nonce,
        qop=qop,
        nc=nc_text,
        cnonce=cnonce,
        body=body,
    )
    params: list[tuple[str, str]] = [
        ("username", username),
        ("realm", realm),
        ("nonce", nonce),
        ("uri", uri),
        ("response", response),
    ]
    if algorithm is not None:
        params.append(("algorithm", algorithm))
    if cnonce is not None:
        params.append(("cnonce", cnonce))
    opaque = challenge.param("opaque")
    if opaque is not None:
        params.append(("opaque", opaque))
    if qop is not None and nc_text is not None:
        params.append(("qop", qop))
        params.append(("nc", nc_text))
    return format_credentials(Challenge(scheme="Digest", params=tuple(params)))


# --- server side -------------------------------------------------------------------------


class AuthOutcome(enum.Enum):
    OK = "ok"
    # The digest was right but the nonce is expired, forged or forgotten: challenge again
    # with stale=true so the client retries without asking its user (RFC 7616 3.3 stale).
    STALE = "stale"
    # Wrong password, unknown user, replayed nonce count, wrong realm or URI: challenge again.
    FAILED = "failed"
    # Not parseable as Digest credentials at all: 400.
    MALFORMED = "malformed"


@dataclass(frozen=True, slots=True)
class AuthResult:
    """What `DigestServer.verify` concluded. `username` is set only when the digest was right
    (OK, STALE); `reason` is for logs, and is deliberately the same for an unknown user and
    a wrong password."""

    outcome: AuthOutcome
    username: str | None = None
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.outcome is AuthOutcome.OK

    @property
    def stale(self) -> bool:
        return self.outcome is AuthOutcome.STALE


_NONCE_STAMP = struct.Struct(">d")
_NONCE_SALT = 10
_NONCE_MAC = 15
_NONCE_BYTES = _NONCE_STAMP.size + _NONCE_SALT + _NONCE_MAC  # 33 -> 44 base64 chars, no '='
_REPLAY_WINDOW = 64  # nonce counts remembered below the highest seen (the IPsec window idea)
_CLOCK_SKEW = 1.0  # a nonce stamped slightly ahead of `now` (caller's clocks) is still fine


class _NonceUse:
    """Which nonce counts a nonce has been used with: highest seen and a bitmask below it."""

    __slots__ = ("highest", "issued", "window")

    def __init__(self, issued: float) -> None:
        self.issued = issued
        self.highest = 0
        self.window = 0

    def accept(self, nc: int) -> bool:
        if nc > self.highest:
            shift = nc - self.highest
            self.window = ((self.window << shift) | 1) & ((1 << _REPLAY_WINDOW) - 1)
            self.highest = nc
            return True
        offset = self.highest - nc
        if offset >= _REPLAY_WINDOW or self.window & (1 << offset):
            return False
        self.window |= 1 << offset
        return True


class DigestServer:
    """Issues Digest challenges for one realm and verifies the answers.

    `secret` keys the nonce HMAC; servers sharing it accept each other's nonces. Nonces live
    `nonce_ttl` seconds. `algorithms` is the preference order of the challenges (RFC 8760 2.3:
    one WWW-Authenticate per algorithm, most preferred first); their `-sess` variants are
    accepted too. `max_tracked_nonces` bounds the replay memory: when a nonce is forgotten,
    every nonce issued up to it is treated as stale, so forgetting never opens a replay.
    """

    def __init__(
        self,
        realm: str,
        secret: bytes,
        nonce_ttl: float = 300.0,
        algorithms: Iterable[str] = ("SHA-256", "MD5"),
        *,
        allow_rfc2069: bool = True,
        max_tracked_nonces: int = 4096,
    ) -> None:
        self.realm = realm
        self.nonce_ttl = nonce_ttl
        self.algorithms = tuple(algorithms)
        for algorithm in self.algorithms:
            _split_algorithm(algorithm)
        if not self.algorithms:
            raise ValueError("DigestServer needs at least one algorithm")
        self.allow_rfc2069 = allow_rfc2069
        self.max_tracked_nonces = max_tracked_nonces
        # Derived keys, so one secret can serve several realms without their nonces mixing.
        self._nonce_key = hmac.new(secret, b"qconnect nonce\0" + realm.encode(), "sha256").digest()
        opaque = hmac.new(secret, b"qconnect opaque\0" + realm.encode(), "sha256").digest()
        self.opaque = base64.urlsafe_b64encode(opaque[:18]).decode("ascii")
        # Unknown users are checked against this so they cost what a known user costs.
        self._dummy_password = secrets.token_urlsafe(24)
        self._uses: OrderedDict[str, _NonceUse] = OrderedDict()
        self._forgotten_up_to = float("-inf")

    # -- challenges --

    def new_nonce(self, now: float) -> str:
        stamp = _NONCE_STAMP.pack(now)
        salt = secrets.token_bytes(_NONCE_SALT)
        mac = hmac.new(self._nonce_key, stamp + salt, "sha256").digest()[:_NONCE_MAC]
        return base64.urlsafe_b64encode(stamp + salt + mac).decode("ascii")

    def challenge(
        self, now: float, stale: bool = False, *, algorithms: Iterable[str] | None = None
    ) -> list[str]:
        """One WWW-Authenticate (or Proxy-Authenticate) value per algorithm, preferred first.

        `algorithms` narrows the offer for one client (a subset of the server's, in the
        server's order); verification still accepts any of the server's algorithms.
        """
        chosen = self.algorithms
        if algorithms is not None:
            wanted = {a.upper() for a in algorithms}
            chosen = tuple(a for a in self.algorithms if a.upper() in wanted)
            if not chosen:
                raise ValueError(f"none of {sorted(wanted)} is offered by this server")
        values = []
        for algorithm in chosen:
            params: list[tuple[str, str]] = [
                ("realm", self.realm),
                ("nonce", self.new_nonce(now)),
                ("opaque", self.opaque),
                ("algorithm", algorithm),
                ("qop", "auth"),
            ]
            if stale:
                params.append(("stale", "true"))
            values.append(format_challenge(Challenge(scheme="Digest", params=tuple(params))))
        return values

    def _nonce_issued(self, nonce: str) -> float | None:
        """The timestamp inside a nonce we issued, or None if it is not one of ours."""
        try:
            raw = base64.urlsafe_b64decode(nonce.encode("ascii"))
        except (ValueError, UnicodeEncodeError):
            return None
        if len(raw) != _NONCE_BYTES:
            return None
        body, mac = raw[:-_NONCE_MAC], raw[-_NONCE_MAC:]
        expected = hmac.new(self._nonce_key, body, "sha256").digest()[:_NONCE_MAC]
        if not hmac.compare_digest(mac, expected):
            return None
        (issued,) = _NONCE_STAMP.unpack(body[: _NONCE_STAMP.size])
        return float(issued)

    # -- verification --

    def verify(
        self,
        authorization_value: str | Challenge,
        *,
        method: str,
        uri: str,
        password_lookup: Callable[[str], str | None],
        now: float,
        body: bytes = b"",
    ) -> AuthResult:
        """Check one Authorization value for a request with this method and Request-URI."""
        try:
            creds = (
                parse_challenge(authorization_value)
                if isinstance(authorization_value, str)
                else authorization_value
            )
        except SipParseError as exc:
            return AuthResult(AuthOutcome.MALFORMED, reason=exc.reason)
        if creds.scheme.lower() != "digest":
            return AuthResult(AuthOutcome.MALFORMED, reason=f"scheme {creds.scheme!r}")
        username = creds.param("username")
        realm = creds.param("realm")
        nonce = creds.param("nonce")
        digest_uri = creds.param("uri")
        response = creds.param("response")
        if username is None or realm is None or nonce is None or digest_uri is None:
            return AuthResult(AuthOutcome.MALFORMED, reason="missing digest parameter")
        if response is None:
            return AuthResult(AuthOutcome.MALFORMED, reason="missing digest parameter")
        if realm != self.realm:
            return AuthResult(AuthOutcome.FAILED, reason=f"realm {realm!r} is not ours")
        algorithm = creds.param("algorithm") or "MD5"
        base = algorithm.upper().removesuffix("-SESS")
        if base not in (a.upper() for a in self.algorithms):
            return AuthResult(AuthOutcome.FAILED, reason=f"algorithm {algorithm!r} not offered")
        if not _same_uri(digest_uri, uri):
            # RFC 3261 22.4: the digest covers the Request-URI; another one is a replay elsewhere.
            return AuthResult(AuthOutcome.FAILED, reason="digest uri is not the Request-URI")

        qop = creds.param("qop")
        cnonce = creds.param("cnonce")
        nc_text = creds.param("nc")
        nc = 0
        if qop is not None:
            if qop.lower() not in ("auth", "auth-int"):
                return AuthResult(AuthOutcome.FAILED, reason=f"qop {qop!r} not offered")
            if cnonce is None or nc_text is None:
                return AuthResult(AuthOutcome.MALFORMED, reason="qop without cnonce or nc")
            if len(nc_text) != 8 or any(c not in "0123456789abcdefABCDEF" for c in nc_text):
                return AuthResult(AuthOutcome.MALFORMED, reason="nc is not 8 hex digits")
            nc = int(nc_text, 16)
            if nc == 0:
                return AuthResult(AuthOutcome.MALFORMED, reason="nc of zero")
        elif not self.allow_rfc2069:
            return AuthResult(AuthOutcome.FAILED, reason="qop required")
        elif algorithm.upper().endswith("-SESS") and cnonce is None:
            return AuthResult(AuthOutcome.MALFORMED, reason="-sess without cnonce")

        # Always do the full computation, with a throwaway password for unknown users, so
        # the answer and its cost do not reveal whether the user exists (RFC 7616 5.1).
        password = password_lookup(username)
        known = password is not None
        expected = digest_response(
            algorithm=algorithm,
            username=username,
            realm=realm,
            password=password if password is not None else self._dummy_password,
            method=method,
            uri=digest_uri,
            nonce=nonce,
            qop=qop,
            nc=nc_text,
            cnonce=cnonce,
            body=body,
        )
        matches = hmac.compare_digest(
            expected.encode(), response.lower().encode("utf-8", "replace")
        )
        if not (matches and known):
            return AuthResult(AuthOutcome.FAILED, reason="digest response does not match")

        issued = self._nonce_issued(nonce)
        opaque = creds.param("opaque")
        if issued is None or (opaque is not None and opaque != self.opaque):
            return AuthResult(AuthOutcome.STALE, username, reason="nonce not issued by us")
        if now - issued > self.nonce_ttl or issued > now + _CLOCK_SKEW:
            return AuthResult(AuthOutcome.STALE, username, reason="nonce expired")
        if qop is None:
            return AuthResult(AuthOutcome.OK, username)
        replay = self._record_use(nonce, issued, nc, now)
        if replay is AuthOutcome.STALE:
            return AuthResult(AuthOutcome.STALE, username, reason="nonce forgotten")
        if replay is AuthOutcome.FAILED:
            return AuthResult(AuthOutcome.FAILED, reason=f"nonce count {nc} replayed")
        return AuthResult(AuthOutcome.OK, username)

    def _record_use(self, nonce: str, issued: float, nc: int, now: float) -> AuthOutcome:
        # Expired nonces are refused before they get here, so their memory can go.
        while self._uses:
            oldest = next(iter(self._uses.values()))
            if now - oldest.issued <= self.nonce_ttl:
                break
            self._uses.popitem(last=False)
        use = self._uses.get(nonce)
        if use is None:
            if issued <= self._forgotten_up_to:
                return AuthOutcome.STALE
            use = _NonceUse(issued)
            self._uses[nonce] = use
            while len(self._uses) > self.max_tracked_nonces:
                _, evicted = self._uses.popitem(last=False)
                self._forgotten_up_to = max(self._forgotten_up_to, evicted.issued)
        return AuthOutcome.OK if use.accept(nc) else AuthOutcome.FAILED


def _same_uri(a: str, b: str) -> bool:
    """RFC 3261 19.1.4 comparison, enough for digest-uri vs Request-URI: the client writes the
    URI it put on the request line, but our parser may re-serialise it slightly differently."""
    if a == b:
        return True
    try:
        ua, ub = parse_uri(a), parse_uri(b)
    except SipParseError:
        return False
    if isinstance(ua, SipUri) and isinstance(ub, SipUri):
        return _uri_key(ua) == _uri_key(ub) and _same_uri_params(ua, ub)
    return a.strip().lower() == b.strip().lower()


def _uri_key(uri: SipUri) -> tuple[object, ...]:
    headers = sorted((k.lower(), v) for k, v in uri.headers)
    return (uri.scheme.lower(), uri.user, uri.password, uri.host.lower(), uri.port, headers)


# RFC 3261 19.1.4: these never match when only one URI has them; any other parameter present
# in only one URI is ignored. So `sip:host;transport=UDP` (pyVoIP 1.6.8's digest uri for a
# REGISTER sent to `sip:host`) is the same URI as `sip:host`.
_PARAMS_NEEDED_IN_BOTH = frozenset({"user", "ttl", "method", "maddr"})


def _same_uri_params(a: SipUri, b: SipUri) -> bool:
    pa = {k.lower(): (v or "").lower() for k, v in a.params}
    pb = {k.lower(): (v or "").lower() for k, v in b.params}
    if any(pa[name] != pb[name] for name in pa.keys() & pb.keys()):
        return False
    return not (pa.keys() ^ pb.keys()) & _PARAMS_NEEDED_IN_BOTH


__all__ = [
    "HASH_ALGORITHMS",
    "AuthOutcome",
    "AuthResult",
    "DigestError",
    "DigestServer",
    "authorization_header",
    "digest_response",
    "format_challenge",
    "format_credentials",
    "parse_challenge",
    "pick_challenge",
    "supports",
]
