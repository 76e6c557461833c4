"""Registrar: REGISTER bytes in (through the real parser), responses and bindings out."""

from __future__ import annotations

import hashlib
import itertools
from typing import Any

import pytest

from telephony.sip.digest import DigestServer, authorization_header, parse_challenge
from telephony.sip.message import Request, Response
from telephony.sip.parser import parse_message
from telephony.switch.registrar import Binding, Registered, Registrar, Unregistered

REALM = "qconnect.test"
PASSWORDS = {"john": "john-pw", "maria": "maria-pw"}
SOURCE = ("udp", "203.0.113.7", 40312)  # the NAT's public side, unlike the Contact
_branches = itertools.count()


def make_registrar(**kwargs: Any) -> Registrar:
    digest = DigestServer(REALM, b"registrar test secret", nonce_ttl=300.0)
    return Registrar(REALM, PASSWORDS.get, digest, **kwargs)


def register_request(
    user: str = "john",
    *,
    call_id: str = "call-1@phone",
    cseq: int = 1,
    contacts: tuple[str, ...] = ("<sip:john@192.168.1.20:5062;transport=udp>",),
    expires: str | None = None,
    to_user: str | None = None,
    extra: tuple[str, ...] = (),
    method: str = "REGISTER",
) -> Request:
    lines = [
        f"{method} sip:{REALM} SIP/2.0",
        f"Via: SIP/2.0/UDP 192.168.1.20:5062;branch=z9hG4bK{next(_branches)};rport",
        "Max-Forwards: 70",
        f"From: <sip:{user}@{REALM}>;tag=from{cseq}",
        f"To: <sip:{to_user or user}@{REALM}>",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} {method}",
        *(f"Contact: {c}" for c in contacts),
        *extra,
        "Content-Length: 0",
    ]
    message = parse_message(("\r\n".join(lines) + "\r\n\r\n").encode())
    assert isinstance(message, Request)
    # Added after parsing: the parser refuses a malformed Expires itself, and the registrar
    # must hold its own line for requests built in code.
    return message if expires is None else message.with_added("Expires", expires)


def with_auth(
    request: Request, challenge: str, password: str, *, nc: int = 1, user: str | None = None
) -> Request:
    value = authorization_header(
        challenge,
        method=request.method,
        uri=str(request.uri),
        username=user or request.from_.uri.user or "",  # type: ignore[union-attr]
        password=password,
        nc=nc,
    )
    return request.with_added("Authorization", value)


def register(
    registrar: Registrar,
    now: float,
    user: str = "john",
    password: str | None = None,
    *,
    cseq: int = 1,
    source: tuple[str, str, int] = SOURCE,
    **kwargs: object,
) -> Response:
    """The phone's two steps: unauthenticated REGISTER -> 401, then the answer -> final."""
    first = registrar.handle(register_request(user, cseq=cseq, **kwargs), source, now)  # type: ignore[arg-type]
    assert first.status == 401, first
    challenge = first.headers.lines("WWW-Authenticate")[0]
    second = register_request(user, cseq=cseq + 1, **kwargs)  # type: ignore[arg-type]
    second = with_auth(second, challenge, password or PASSWORDS[user])
    return registrar.handle(second, source, now)


def events(registrar: Registrar) -> list[object]:
    out: list[object] = []
    while (event := registrar.next_event()) is not None:
        out.append(event)
    return out


def contact_expires(response: Response) -> dict[str, int]:
    out = {}
    for contact in response.contacts:
        out[str(contact.uri)] = int(contact.param("expires") or "-1")
    return out


# --- the digest exchange -------------------------------------------------------------------


@pytest.mark.parametrize(("algorithm", "hash_name"), [("SHA-256", "sha256"), ("MD5", "md5")])
def test_full_401_then_200_exchange_computed_independently(algorithm: str, hash_name: str) -> None:
    registrar = make_registrar()
    first = registrar.handle(register_request(cseq=1), SOURCE, 10.0)
    assert first.status == 401 and first.reason == "Unauthorized"
    assert first.to.tag, "RFC 3261 8.2.6.2: the UAS tags To"
    assert first.call_id == "call-1@phone" and first.cseq.seq == 1
    challenges = [parse_challenge(v) for v in first.headers.lines("WWW-Authenticate")]
    assert [c.param("algorithm") for c in challenges] == ["SHA-256", "MD5"]
    challenge = next(c for c in challenges if c.param("algorithm") == algorithm)
    assert challenge.param("realm") == REALM and challenge.param("qop") == "auth"

    def h(text: str) -> str:
        return hashlib.new(hash_name, text.encode()).hexdigest()

    nonce = challenge.param("nonce")
    ha1 = h(f"john:{REALM}:john-pw")
    ha2 = h(f"REGISTER:sip:{REALM}")
    response = h(f"{ha1}:{nonce}:00000001:0a4f113b:auth:{ha2}")
    authorization = (
        f'Digest username="john", realm="{REALM}", nonce="{nonce}", uri="sip:{REALM}", '
        f'response="{response}", algorithm={algorithm}, cnonce="0a4f113b", '
        f'opaque="{challenge.param("opaque")}", qop=auth, nc=00000001'
    )
    second = register_request(cseq=2, extra=(f"Authorization: {authorization}",))
    ok = registrar.handle(second, SOURCE, 11.0)
    assert ok.status == 200, ok
    assert ok.to.tag
    assert contact_expires(ok) == {"sip:john@192.168.1.20:5062;transport=udp": 3600}

    [binding] = registrar.lookup("john", 11.0)
    assert binding.aor == f"sip:john@{REALM}"
    assert binding.source == SOURCE and binding.source.host == "203.0.113.7"
    assert binding.expires_at == 11.0 + 3600
    assert (binding.call_id, binding.cseq) == ("call-1@phone", 2)
    assert events(registrar) == [Registered(binding, refreshed=False)]


def test_wrong_password_and_unknown_user_get_the_same_answer() -> None:
    registrar = make_registrar()
    wrong = register(registrar, 0.0, "john", "not-johns")
    unknown = register(registrar, 0.0, "mallory", "whatever")

    def shape(response: Response) -> tuple[object, ...]:
        names = tuple(name for name, _ in response.headers.items)
        params = tuple(
            tuple(k for k, _ in parse_challenge(v).params)
            for v in response.headers.lines("WWW-Authenticate")
        )
        stale = tuple(
            parse_challenge(v).param("stale") for v in response.headers.lines("WWW-Authenticate")
        )
        return (response.status, response.reason, names, params, stale)

    assert wrong.status == 401
    assert shape(wrong) == shape(unknown)
    assert registrar.lookup("john", 0.0) == [] and registrar.lookup("mallory", 0.0) == []
    assert events(registrar) == []


def test_stale_nonce_gets_stale_true_then_succeeds() -> None:
    registrar = make_registrar()
    first = registrar.handle(register_request(cseq=1), SOURCE, 0.0)
    challenge = first.headers.lines("WWW-Authenticate")[0]
    late = with_auth(register_request(cseq=2), challenge, "john-pw")
    stale = registrar.handle(late, SOURCE, 400.0)  # nonce_ttl is 300
    assert stale.status == 401
    values = stale.headers.lines("WWW-Authenticate")
    assert values and all(parse_challenge(v).param("stale") == "true" for v in values)
    retry = with_auth(register_request(cseq=3), values[0], "john-pw")
    assert registrar.handle(retry, SOURCE, 400.5).status == 200
    # A wrong password with an old nonce is plainly refused, not "stale".
    wrong = with_auth(register_request(cseq=4), challenge, "bad")
    refused = registrar.handle(wrong, SOURCE, 400.0)
    assert refused.status == 401
    assert all(
        parse_challenge(v).param("stale") is None for v in refused.headers.lines("WWW-Authenticate")
    )


def test_nonce_count_replay_is_challenged_again() -> None:
    registrar = make_registrar()
    challenge = registrar.handle(register_request(cseq=1), SOURCE, 0.0).headers.lines(
        "WWW-Authenticate"
    )[0]
    assert (
        registrar.handle(
            with_auth(register_request(cseq=2), challenge, "john-pw", nc=1), SOURCE, 1.0
        ).status
        == 200
    )
    replay = with_auth(register_request(cseq=3), challenge, "john-pw", nc=1)
    assert registrar.handle(replay, SOURCE, 2.0).status == 401
    refresh = with_auth(register_request(cseq=4), challenge, "john-pw", nc=2)
    assert registrar.handle(refresh, SOURCE, 3.0).status == 200


def test_cannot_register_someone_else() -> None:
    registrar = make_registrar()
    response = register(registrar, 0.0, "john", to_user="maria")
    assert response.status == 403
    assert registrar.lookup("maria", 0.0) == [] and registrar.lookup("john", 0.0) == []


def test_malformed_authorization_is_400() -> None:
    registrar = make_registrar()
    request = register_request(
        extra=('Authorization: Digest username="john", realm="unterminated',)
    )
    assert registrar.handle(request, SOURCE, 0.0).status == 400


def test_credentials_for_another_realm_are_ignored() -> None:
    registrar = make_registrar()
    other = 'Digest username="john", realm="elsewhere", nonce="x", uri="sip:x", response="0"'
    response = registrar.handle(register_request(extra=(f"Authorization: {other}",)), SOURCE, 0.0)
    assert response.status == 401


# --- bindings --------------------------------------------------------------------------------


def test_several_contacts_ordered_by_q_then_newest() -> None:
    registrar = make_registrar()
    ok = register(
        registrar,
        0.0,
        contacts=("<sip:john@10.0.0.1:5060>;q=0.5", "<sip:john@10.0.0.2:5060>;expires=120"),
        call_id="desk",
    )
    assert ok.status == 200
    assert contact_expires(ok) == {"sip:john@10.0.0.2:5060": 120, "sip:john@10.0.0.1:5060": 3600}
    ok = register(
        registrar,
        5.0,
        contacts=("<sip:john@10.0.0.3:5060>",),
        call_id="mobile",
        source=("tcp", "198.51.100.9", 5070),
        expires="600",
    )
    # The 200 lists every binding of the user, not only this request's.
    assert contact_expires(ok) == {
        "sip:john@10.0.0.3:5060": 600,
        "sip:john@10.0.0.2:5060": 115,
        "sip:john@10.0.0.1:5060": 3595,
    }
    found = registrar.lookup("john", 6.0)
    assert [str(b.contact.uri) for b in found] == [
        "sip:john@10.0.0.3:5060",
        "sip:john@10.0.0.2:5060",
        "sip:john@10.0.0.1:5060",
    ]
    assert found[0].source == ("tcp", "198.51.100.9", 5070)
    assert found[2].q == 0.5
    assert all(b.contact.param("expires") is None for b in found)
    assert registrar.lookup("maria", 6.0) == []


def test_expires_zero_unregisters_one_contact() -> None:
    registrar = make_registrar()
    register(registrar, 0.0, contacts=("<sip:john@10.0.0.1>", "<sip:john@10.0.0.2>"))
    events(registrar)
    # Contact parameter and Expires header both work; the parameter wins over the header.
    ok = register(
        registrar, 10.0, cseq=10, contacts=("<sip:john@10.0.0.1>;expires=0",), expires="3600"
    )
    assert ok.status == 200
    assert contact_expires(ok) == {"sip:john@10.0.0.2": 3590}
    [gone] = [e for e in events(registrar) if isinstance(e, Unregistered)]
    assert str(gone.binding.contact.uri) == "sip:john@10.0.0.1" and gone.reason == "unregistered"
    ok = register(registrar, 11.0, cseq=20, contacts=("<sip:john@10.0.0.2>",), expires="0")
    assert ok.status == 200 and ok.contacts == []
    assert registrar.lookup("john", 11.0) == []
    assert registrar.get_timer() is None


def test_wildcard_unregisters_everything() -> None:
    registrar = make_registrar()
    register(registrar, 0.0, contacts=("<sip:john@10.0.0.1>", "<sip:john@10.0.0.2>"), call_id="a")
    register(registrar, 0.0, contacts=("<sip:john@10.0.0.3>",), call_id="b")
    events(registrar)
    ok = register(registrar, 1.0, contacts=("*",), expires="0", call_id="c")
    assert ok.status == 200 and ok.contacts == []
    assert registrar.lookup("john", 1.0) == []
    gone = events(registrar)
    assert len(gone) == 3 and all(isinstance(e, Unregistered) for e in gone)


@pytest.mark.parametrize(
    ("contacts", "expires"),
    [
        (("*",), "60"),
        (("*",), None),
        (("*", "<sip:john@10.0.0.1>"), "0"),
    ],
)
def test_wildcard_misuse_is_400(contacts: tuple[str, ...], expires: str | None) -> None:
    registrar = make_registrar()
    register(registrar, 0.0, contacts=("<sip:john@10.0.0.9>",), call_id="keep")
    response = register(registrar, 1.0, contacts=contacts, expires=expires, call_id="x")
    assert response.status == 400
    assert len(registrar.lookup("john", 1.0)) == 1


def test_interval_too_brief_is_423_with_min_expires() -> None:
    registrar = make_registrar()
    response = register(registrar, 0.0, expires="30")
    assert response.status == 423 and response.reason == "Interval Too Brief"
    assert response.headers.get("Min-Expires") == "60"
    assert registrar.lookup("john", 0.0) == []
    # One brief contact spoils the whole request (nothing is committed).
    response = register(registrar, 0.0, contacts=("<sip:john@a>", "<sip:john@b>;expires=5"))
    assert response.status == 423 and registrar.lookup("john", 0.0) == []
    # A lower configured minimum lets tests use short registrations.
    quick = make_registrar(min_expires=2)
    assert register(quick, 0.0, expires="3").status == 200


def test_long_expiry_is_shortened_to_max() -> None:
    registrar = make_registrar(max_expires=1800)
    ok = register(registrar, 0.0, expires="99999999999")
    assert contact_expires(ok) == {"sip:john@192.168.1.20:5062;transport=udp": 1800}


def test_no_expires_gets_default() -> None:
    registrar = make_registrar(default_expires=900)
    assert set(contact_expires(register(registrar, 0.0)).values()) == {900}


def test_malformed_expires_is_400() -> None:
    registrar = make_registrar()
    assert register(registrar, 0.0, expires="soon").status == 400
    assert register(registrar, 0.0, contacts=("<sip:john@a>;expires=-1",)).status == 400
    assert register(registrar, 0.0, contacts=("<sip:john@a>;q=2",)).status == 400


def test_bindings_expire_over_time() -> None:
    registrar = make_registrar(min_expires=10)
    register(registrar, 100.0, contacts=("<sip:john@a>",), expires="60", call_id="a")
    register(registrar, 100.0, contacts=("<sip:john@b>",), expires="120", call_id="b")
    events(registrar)
    assert registrar.get_timer() == 160.0
    assert len(registrar.lookup("john", 159.9)) == 2
    registrar.handle_timer(160.0)
    assert [str(b.contact.uri) for b in registrar.lookup("john", 160.0)] == ["sip:john@b"]
    [expired] = events(registrar)
    assert isinstance(expired, Unregistered) and expired.reason == "expired"
    assert registrar.get_timer() == 220.0
    # Lazy expiry: lookup alone drops what is due.
    assert registrar.lookup("john", 220.0) == []
    assert [type(e) for e in events(registrar)] == [Unregistered]
    assert registrar.users_registered(220.0) == []


def test_refresh_keeps_one_binding_and_follows_the_source() -> None:
    registrar = make_registrar()
    register(registrar, 0.0, cseq=1)
    [first] = events(registrar)
    assert isinstance(first, Registered) and not first.refreshed
    register(registrar, 1000.0, cseq=3, source=("udp", "203.0.113.7", 40999))
    [again] = events(registrar)
    assert isinstance(again, Registered) and again.refreshed
    [binding] = registrar.lookup("john", 1000.0)
    assert binding.source.port == 40999 and binding.expires_at == 4600.0 and binding.cseq == 4


def test_cseq_must_increase_within_a_call_id() -> None:
    registrar = make_registrar()
    assert register(registrar, 0.0, cseq=10, call_id="same").status == 200
    # Same Call-ID, older CSeq (a delayed REGISTER): refused, bindings untouched.
    stale_order = register(registrar, 1.0, cseq=3, call_id="same", expires="0")
    assert stale_order.status == 400
    assert len(registrar.lookup("john", 1.0)) == 1
    # Another Call-ID may do anything, whatever its CSeq (a rebooted phone).
    assert register(registrar, 2.0, cseq=1, call_id="rebooted", expires="0").status == 200
    assert registrar.lookup("john", 2.0) == []


def test_out_of_order_request_commits_nothing() -> None:
    registrar = make_registrar()
    register(registrar, 0.0, cseq=10, call_id="same", contacts=("<sip:john@a>",))
    response = register(
        registrar, 1.0, cseq=3, call_id="same", contacts=("<sip:john@new>", "<sip:john@a>")
    )
    assert response.status == 400
    assert [str(b.contact.uri) for b in registrar.lookup("john", 1.0)] == ["sip:john@a"]


def test_contact_uris_compare_by_rfc3261_rules() -> None:
    registrar = make_registrar()
    register(registrar, 0.0, contacts=("<sip:john@Phone.Example;Transport=UDP>",), call_id="x")
    register(registrar, 1.0, contacts=("<sip:john@phone.example;transport=udp>",), call_id="y")
    assert len(registrar.lookup("john", 1.0)) == 1


def test_query_without_contact_lists_bindings() -> None:
    registrar = make_registrar()
    register(registrar, 0.0, contacts=("<sip:john@a>",), call_id="a")
    response = register(registrar, 10.0, contacts=(), call_id="q")
    assert response.status == 200 and contact_expires(response) == {"sip:john@a": 3590}


def test_too_many_contacts() -> None:
    registrar = make_registrar(max_contacts=2)
    response = register(registrar, 0.0, contacts=("<sip:john@a>", "<sip:john@b>", "<sip:john@c>"))
    assert response.status == 403 and registrar.lookup("john", 0.0) == []


def test_required_extension_is_420_before_auth() -> None:
    registrar = make_registrar()
    response = registrar.handle(register_request(extra=("Require: gruu",)), SOURCE, 0.0)
    assert response.status == 420 and response.headers.get("Unsupported") == "gruu"


def test_other_methods_are_405() -> None:
    registrar = make_registrar()
    response = registrar.handle(register_request(method="OPTIONS"), SOURCE, 0.0)
    assert response.status == 405 and response.headers.get("Allow") == "REGISTER"


# --- authenticate() for INVITE -----------------------------------------------------------------


def test_authenticate_invite_with_proxy_challenge() -> None:
    registrar = make_registrar()
    invite = register_request(method="INVITE", contacts=("<sip:john@10.0.0.1>",))
    challenge = registrar.authenticate(invite, 0.0, proxy=True)
    assert isinstance(challenge, Response) and challenge.status == 407
    assert challenge.headers.lines("WWW-Authenticate") == []
    value = challenge.headers.lines("Proxy-Authenticate")[0]
    creds = authorization_header(
        value, method="INVITE", uri=str(invite.uri), username="john", password="john-pw"
    )
    assert (
        registrar.authenticate(invite.with_added("Proxy-Authorization", creds), 1.0, proxy=True)
        == "john"
    )
    # The WWW-Authenticate flavour for a UAS-style challenge.
    plain = registrar.authenticate(invite, 0.0)
    assert isinstance(plain, Response) and plain.status == 401
    # Credentials for one method do not authorise another (A2 covers the method).
    as_bye = invite.with_added("Proxy-Authorization", creds)
    bye = Request(method="BYE", uri=as_bye.uri, headers=as_bye.headers)
    assert isinstance(registrar.authenticate(bye, 1.0, proxy=True), Response)


def test_binding_is_frozen() -> None:
    registrar = make_registrar()
    register(registrar, 0.0)
    [binding] = registrar.lookup("john", 0.0)
    assert isinstance(binding, Binding)
    with pytest.raises(AttributeError):
        binding.cseq = 99  # type: ignore[misc]


# --- what real clients send ------------------------------------------------------------------


def test_legacy_baresip_is_offered_md5_only_others_both() -> None:
    # libre 1.x aborts the registration (ENOSYS) when any challenge names SHA-256.
    registrar = make_registrar()
    old = register_request(extra=("User-Agent: baresip v1.0.0 (x86_64/linux)",))
    values = registrar.handle(old, SOURCE, 0.0).headers.lines("WWW-Authenticate")
    assert [parse_challenge(v).param("algorithm") for v in values] == ["MD5"]
    new = register_request(extra=("User-Agent: baresip v3.10.1 (x86_64/linux)",))
    values = registrar.handle(new, SOURCE, 0.0).headers.lines("WWW-Authenticate")
    assert [parse_challenge(v).param("algorithm") for v in values] == ["SHA-256", "MD5"]
    linphone = register_request(extra=("User-Agent: Linphonec/5.1.65",))
    values = registrar.handle(linphone, SOURCE, 0.0).headers.lines("WWW-Authenticate")
    assert [parse_challenge(v).param("algorithm") for v in values] == ["SHA-256", "MD5"]


def test_challenge_policy_is_pluggable() -> None:
    digest = DigestServer(REALM, b"s", algorithms=("SHA-256", "MD5"))
    registrar = Registrar(REALM, PASSWORDS.get, digest, challenge_algorithms=lambda r: ("SHA-256",))
    values = registrar.handle(register_request(), SOURCE, 0.0).headers.lines("WWW-Authenticate")
    assert [parse_challenge(v).param("algorithm") for v in values] == ["SHA-256"]
    with pytest.raises(ValueError):
        digest.challenge(0.0, algorithms=("SHA-512-256",))


def test_linphone_shaped_authorization_is_accepted() -> None:
    # Parameter order and doubled spaces as liblinphone 5.1 writes them, algorithm SHA-256,
    # Request-URI without user part, a +sip.instance Contact parameter.
    registrar = make_registrar()
    request = register_request(
        contacts=(
            '<sip:john@127.0.0.1:35064;transport=udp>;+sip.instance="<urn:uuid:24497ebe-3110>"',
        ),
        extra=("User-Agent: Linphonec/5.1.65",),
    )
    first = registrar.handle(request, SOURCE, 0.0)
    challenge = parse_challenge(first.headers.lines("WWW-Authenticate")[0])
    nonce, opaque = challenge.param("nonce"), challenge.param("opaque")
    ha1 = hashlib.sha256(f"john:{REALM}:john-pw".encode()).hexdigest()
    ha2 = hashlib.sha256(f"REGISTER:sip:{REALM}".encode()).hexdigest()
    cnonce = "C3CZ1ayb8x1Cw~1A"
    response = hashlib.sha256(f"{ha1}:{nonce}:00000001:{cnonce}:auth:{ha2}".encode()).hexdigest()
    authorization = (
        f' Digest realm="{REALM}", nonce="{nonce}", algorithm=SHA-256, opaque="{opaque}", '
        f'username="john",  uri="sip:{REALM}", response="{response}", cnonce="{cnonce}", '
        "nc=00000001, qop=auth"
    )
    second = register_request(
        cseq=2,
        contacts=(
            '<sip:john@127.0.0.1:35064;transport=udp>;+sip.instance="<urn:uuid:24497ebe-3110>"',
        ),
        extra=("User-Agent: Linphonec/5.1.65", f"Authorization: {authorization}"),
    )
    ok = registrar.handle(second, SOURCE, 0.5)
    assert ok.status == 200
    [binding] = registrar.lookup("john", 0.5)
    assert binding.contact.param("+sip.instance") == '"<urn:uuid:24497ebe-3110>"'
