"""The registrar: REGISTER handling and the location service, sans-I/O (RFC 3261 section 10).

`Registrar.handle(request, source, now)` answers one REGISTER; `lookup(user, now)` says where
a user can be reached. Nothing here touches a socket or a clock: the switch passes the
address the REGISTER came from and the time, and drains `next_event()` to log and publish
who registered and who went away.

Bindings are filed by user name. The switch is reached under many host names (127.0.0.1, a
LAN address, the advertised one), so the host part of an address-of-record is not checked
(RFC 3261 10.3 step 1 lets a registrar decide which domains it is responsible for).
"""

from __future__ import annotations

import re
import secrets
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Literal

from telephony.sip.digest import AuthOutcome, DigestServer, parse_challenge
from telephony.sip.errors import SipParseError
from telephony.sip.headers import NameAddr
from telephony.sip.message import Request, Response, make_response
from telephony.sip.parser import parse_name_addr
from telephony.sip.uri import SipUri, Uri
from telephony.transport.base import Address

# RFC 3261 20.19: delta-seconds beyond 2**32-1 mean 2**32-1; we clamp to max_expires anyway.
_MAX_DELTA = 2**32 - 1


# Clients that abort on a challenge whose algorithm they do not know, instead of ignoring it
# as RFC 2617 3.2.1 / RFC 8760 2.4 ask: libre before 2.x (baresip 1.x, Debian 12's) fails the
# whole registration with ENOSYS when any WWW-Authenticate says SHA-256. pyVoIP 1.x reads only
# the first WWW-Authenticate (SIPMessage.parse_raw_header keeps one value per header name) and
# always answers with MD5 (SIPClient.gen_authorization), so with SHA-256 offered first it
# answers the SHA-256 challenge's nonce with an MD5 digest. They get MD5 alone.
_MD5_ONLY_USER_AGENTS = (
    re.compile(r"^\s*baresip v?[01]\.", re.IGNORECASE),
    re.compile(r"^\s*pyVoIP 1\.", re.IGNORECASE),
)


def legacy_md5_only(request: Request) -> Sequence[str] | None:
    """Default `challenge_algorithms` policy: MD5 alone for known pre-RFC 8760 clients,
    every configured algorithm (None) for the rest."""
    agent = request.headers.get("User-Agent") or ""
    if any(pattern.search(agent) for pattern in _MD5_ONLY_USER_AGENTS):
        return ("MD5",)
    return None


@dataclass(frozen=True, slots=True)
class Binding:
    """One contact of one user (RFC 3261 10.3): where to send, until when, and which
    REGISTER (Call-ID, CSeq) last touched it, for the ordering rule of step 7.

    `source` is where that REGISTER came from: the switch sends requests there, because a
    phone behind NAT listens on that mapping, not on the private address in its Contact
    (RFC 3581's symmetric response routing applied to requests).
    """

    aor: str
    user: str
    contact: NameAddr  # as registered, minus its `expires` parameter
    source: Address
    expires_at: float
    call_id: str
    cseq: int
    q: float = 1.0
    registered_at: float = 0.0  # last (re)registration, for "newest first" among equal q

    def expires_in(self, now: float) -> int:
        """Whole seconds left, as the 200's `expires` parameter states it."""
        return max(0, int(self.expires_at - now + 0.5))


@dataclass(frozen=True, slots=True)
class Registered:
    binding: Binding
    refreshed: bool  # an existing binding renewed, not a new contact


@dataclass(frozen=True, slots=True)
class Unregistered:
    binding: Binding
    reason: Literal["unregistered", "expired"]


RegistrarEvent = Registered | Unregistered


@dataclass(frozen=True, slots=True)
class _Change:
    contact: NameAddr
    expires: int
    q: float


class _Reject(Exception):
    """Internal: abort this REGISTER with a response (never escapes `handle`)."""

    def __init__(self, status: int, reason: str | None = None, **headers: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.headers = tuple((k.replace("_", "-"), v) for k, v in headers.items())


class Registrar:
    """Digest-authenticated registrar and location service for one domain/realm.

    `users(name)` returns the user's SIP password or None; `digest` issues and checks the
    challenges (its realm is the one phones are asked for). Expiry requests below
    `min_expires` get 423, above `max_expires` are shortened, absent ones get
    `default_expires`; a user holds at most `max_contacts` bindings.
    `challenge_algorithms(request)` may narrow the algorithms offered to one client (None:
    all of the digest server's); the default only narrows for known legacy clients.
    """

    def __init__(
        self,
        domain: str,
        users: Callable[[str], str | None],
        digest: DigestServer,
        *,
        min_expires: int = 60,
        max_expires: int = 3600,
        default_expires: int = 3600,
        max_contacts: int = 16,
        challenge_algorithms: Callable[[Request], Sequence[str] | None] = legacy_md5_only,
    ) -> None:
        if not 0 < min_expires <= max_expires:
            raise ValueError("need 0 < min_expires <= max_expires")
        self.domain = domain
        self.users = users
        self.digest = digest
        self.min_expires = min_expires
        self.max_expires = max_expires
        self.default_expires = min(max(default_expires, min_expires), max_expires)
        self.max_contacts = max_contacts
        self.challenge_algorithms = challenge_algorithms
        self._bindings: dict[str, list[Binding]] = {}
        self._events: deque[RegistrarEvent] = deque()

    # --- events and time ---

    def next_event(self) -> RegistrarEvent | None:
        return self._events.popleft() if self._events else None

    def get_timer(self) -> float | None:
        """When the next binding expires (call `handle_timer` then), or None."""
        times = [b.expires_at for bindings in self._bindings.values() for b in bindings]
        return min(times) if times else None

    def handle_timer(self, now: float) -> None:
        self.expire(now)

    def expire(self, now: float) -> None:
        """Drop every binding whose time is up, announcing each as Unregistered(expired)."""
        for user in list(self._bindings):
            kept = []
            for binding in self._bindings[user]:
                if binding.expires_at <= now:
                    self._events.append(Unregistered(binding, "expired"))
                else:
                    kept.append(binding)
            if kept:
                self._bindings[user] = kept
            else:
                del self._bindings[user]

    # --- location service ---

    def lookup(self, user: str, now: float) -> list[Binding]:
        """The user's live bindings, highest q first, then most recently registered."""
        self.expire(now)
        bindings = self._bindings.get(user, [])
        return sorted(bindings, key=lambda b: (-b.q, -b.registered_at))

    def users_registered(self, now: float) -> list[str]:
        self.expire(now)
        return sorted(self._bindings)

    # --- authentication, shared with INVITE handling ---

    def authenticate(self, request: Request, now: float, *, proxy: bool = False) -> str | Response:
        """The authenticated user name, or the response to send instead: 401 (or 407 with
        `proxy=True`) carrying fresh challenges, stale=true when only the nonce was old, or 400
        for credentials that do not parse (RFC 3261 22.1-22.3)."""
        header = "Proxy-Authorization" if proxy else "Authorization"
        credentials = None
        for value in request.headers.lines(header):
            try:
                parsed = parse_challenge(value)
            except SipParseError as exc:
                return self._reply(request, 400, f"Malformed {header}: {exc.reason}")
            # Credentials for other realms belong to other servers on the path (RFC 3261 22.3).
            if parsed.scheme.lower() == "digest" and parsed.param("realm") == self.digest.realm:
                credentials = parsed
                break
        if credentials is None:
            return self._challenge(request, now, proxy=proxy, stale=False)
        result = self.digest.verify(
            credentials,
            method=request.method,
            uri=str(request.uri),
            password_lookup=self.users,
            now=now,
            body=request.body,
        )
        if result.outcome is AuthOutcome.OK and result.username is not None:
            return result.username
        if result.outcome is AuthOutcome.MALFORMED:
            return self._reply(request, 400, f"Malformed {header}")
        return self._challenge(request, now, proxy=proxy, stale=result.stale)

    def _challenge(self, request: Request, now: float, *, proxy: bool, stale: bool) -> Response:
        name = "Proxy-Authenticate" if proxy else "WWW-Authenticate"
        values = self.digest.challenge(
            now, stale=stale, algorithms=self.challenge_algorithms(request)
        )
        return self._reply(request, 407 if proxy else 401, headers=tuple((name, v) for v in values))

    # --- REGISTER ---

    def handle(self, request: Request, source: tuple[str, str, int], now: float) -> Response:
        """Answer one REGISTER (RFC 3261 10.3); bindings change only when the answer is 200."""
        if request.method != "REGISTER":
            return self._reply(request, 405, headers=(("Allow", "REGISTER"),))
        self.expire(now)
        try:
            return self._register(request, Address(*source), now)
        except _Reject as rejection:
            return self._reply(request, rejection.status, rejection.reason, rejection.headers)
        except SipParseError as exc:
            return self._reply(request, exc.status, exc.reason)

    def _register(self, request: Request, source: Address, now: float) -> Response:
        # Step 2: we support no extension a REGISTER could require.
        required = request.headers.values("Require")
        if required:
            raise _Reject(420, None, Unsupported=", ".join(required))
        # Step 5's syntax part first: an address-of-record must be a SIP or SIPS URI, and a
        # malformed request gets its 400 without a challenge round first (RFC 4475 3.3.3).
        to_uri = request.to.uri
        if not isinstance(to_uri, SipUri):
            raise _Reject(400, "To must hold a SIP or SIPS address-of-record")
        # Step 3: authenticate.
        auth = self.authenticate(request, now)
        if isinstance(auth, Response):
            return auth
        user = auth
        # Steps 4-5: the address-of-record is the To URI; one may only register oneself.
        if not to_uri.user:
            raise _Reject(404, "Not Found")
        if to_uri.user != user:
            raise _Reject(403, "Forbidden")
        call_id = request.call_id
        cseq = request.cseq.seq
        header_expires = _parse_expires(request.headers.get("Expires"))

        contact_values = request.headers.values("Contact")
        current = {_contact_key(b.contact.uri): b for b in self._bindings.get(user, [])}
        updated = dict(current)
        events: list[RegistrarEvent] = []

        if any(v.strip() == "*" for v in contact_values):
            # Step 6: `*` only alone and only with Expires: 0.
            if len(contact_values) != 1 or header_expires != 0:
                raise _Reject(400, "Wildcard Contact needs Expires: 0 and no other Contact")
            for key, existing in current.items():
                self._check_order(existing, call_id, cseq)
                del updated[key]
                events.append(Unregistered(existing, "unregistered"))
        else:
            changes = [self._change(v, header_expires) for v in contact_values]
            # Step 7: refuse the whole request if any interval is too brief (423).
            if any(0 < c.expires < self.min_expires for c in changes):
                raise _Reject(423, None, Min_Expires=str(self.min_expires))
            aor = f"sip:{user}@{self.domain}"
            for change in changes:
                key = _contact_key(change.contact.uri)
                old = current.get(key)
                if old is not None:
                    self._check_order(old, call_id, cseq)
                if change.expires == 0:
                    if key in updated:
                        events.append(Unregistered(updated.pop(key), "unregistered"))
                    continue
                binding = Binding(
                    aor=aor,
                    user=user,
                    contact=change.contact,
                    source=source,
                    expires_at=now + min(change.expires, self.max_expires),
                    call_id=call_id,
                    cseq=cseq,
                    q=change.q,
                    registered_at=now,
                )
                updated[key] = binding
                events.append(Registered(binding, refreshed=old is not None))
            if len(updated) > self.max_contacts:
                raise _Reject(403, "Too Many Contacts")

        # Commit only now: all updates succeed or none does (RFC 3261 10.3 step 7).
        if updated:
            self._bindings[user] = list(updated.values())
        else:
            self._bindings.pop(user, None)
        self._events.extend(events)
        # Step 8: 200 listing every current binding with the time it has left.
        contacts = tuple(
            ("Contact", str(b.contact.with_params(expires=str(b.expires_in(now)))))
            for b in self.lookup(user, now)
        )
        return self._reply(request, 200, headers=contacts)

    def _change(self, value: str, header_expires: int | None) -> _Change:
        contact = parse_name_addr(value)
        param = contact.param("expires")
        if param is not None:
            expires = _parse_expires(param)
        elif header_expires is not None:
            expires = header_expires
        else:
            expires = self.default_expires
        assert expires is not None
        q = 1.0
        q_text = contact.param("q")
        if q_text is not None:
            try:
                q = float(q_text)
            except ValueError:
                q = -1.0
            if not 0.0 <= q <= 1.0:
                raise _Reject(400, f"Bad q value {q_text!r}")
        kept = tuple((k, v) for k, v in contact.params if k.lower() != "expires")
        return _Change(replace(contact, params=kept), expires, q)

    @staticmethod
    def _check_order(old: Binding, call_id: str, cseq: int) -> None:
        # Step 7: a REGISTER from the same Call-ID must move CSeq forward, or it is a
        # reordered or replayed old one and must not undo a newer registration.
        if old.call_id == call_id and cseq <= old.cseq:
            raise _Reject(400, "Out-of-order CSeq")

    def _reply(
        self,
        request: Request,
        status: int,
        reason: str | None = None,
        headers: tuple[tuple[str, str], ...] = (),
    ) -> Response:
        return make_response(request, status, reason, to_tag=secrets.token_hex(6), headers=headers)


def _parse_expires(text: str | None) -> int | None:
    if text is None:
        return None
    text = text.strip()
    if not text.isdigit():
        raise _Reject(400, f"Malformed expires value {text!r}")
    return min(int(text), _MAX_DELTA)


def _contact_key(uri: Uri) -> tuple[object, ...]:
    """Contacts are the same binding when their URIs are equal (RFC 3261 10.3 step 7 with the
    19.1.4 comparison rules: case-insensitive scheme, host and parameter names)."""
    if isinstance(uri, SipUri):
        params = tuple(sorted((k.lower(), (v or "").lower()) for k, v in uri.params))
        headers = tuple(sorted((k.lower(), v) for k, v in uri.headers))
        return (uri.scheme, uri.user, uri.password, uri.host.lower(), uri.port, params, headers)
    return (uri.scheme.lower(), uri.opaque)


__all__ = [
    "Binding",
    "Registered",
    "Registrar",
    "RegistrarEvent",
    "Unregistered",
    "legacy_md5_only",
]
