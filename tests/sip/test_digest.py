"""Digest authentication: RFC test vectors, the client/server exchange, and the server's
refusals (stale nonces, nc replays, wrong URI/realm/algorithm, no user enumeration)."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from telephony.sip.digest import (
    AuthOutcome,
    AuthResult,
    DigestError,
    DigestServer,
    authorization_header,
    digest_response,
    format_challenge,
    format_credentials,
    parse_challenge,
    pick_challenge,
)
from telephony.sip.errors import SipParseError
from telephony.sip.headers import Challenge

REALM = "qconnect.test"
URI = "sip:qconnect.test"
PASSWORDS = {"john": "s3cret-john", "maria": "maria's pass"}


def lookup(user: str) -> str | None:
    return PASSWORDS.get(user)


def server(**kwargs: object) -> DigestServer:
    return DigestServer(REALM, b"k" * 32, **kwargs)  # type: ignore[arg-type]


def challenge_for(srv: DigestServer, algorithm: str, now: float = 0.0) -> Challenge:
    for value in srv.challenge(now):
        parsed = parse_challenge(value)
        if parsed.param("algorithm") == algorithm:
            return parsed
    raise AssertionError(f"no {algorithm} challenge")


def answer(
    srv: DigestServer,
    *,
    algorithm: str = "SHA-256",
    user: str = "john",
    password: str = "s3cret-john",
    nc: int = 1,
    now: float = 0.0,
    challenge: Challenge | None = None,
    uri: str = URI,
) -> str:
    return authorization_header(
        challenge or challenge_for(srv, algorithm, now),
        method="REGISTER",
        uri=uri,
        username=user,
        password=password,
        nc=nc,
    )


def verify(srv: DigestServer, value: str, now: float = 1.0, uri: str = URI) -> AuthResult:
    return srv.verify(value, method="REGISTER", uri=uri, password_lookup=lookup, now=now)


# --- published test vectors ------------------------------------------------------------

RFC7616_EXAMPLE: dict[str, Any] = dict(
    username="Mufasa",
    realm="http-auth@example.org",
    password="Circle of Life",
    method="GET",
    uri="/dir/index.html",
    nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
    qop="auth",
    nc="00000001",
    cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
)


@pytest.mark.parametrize(
    ("algorithm", "expected"),
    [
        # RFC 7616 3.9.1, the two Authorization headers of the example.
        ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
        ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
    ],
)
def test_rfc7616_example(algorithm: str, expected: str) -> None:
    assert digest_response(algorithm=algorithm, **RFC7616_EXAMPLE) == expected


def test_rfc2617_example() -> None:
    # RFC 2617 3.5.
    assert (
        digest_response(
            algorithm="MD5",
            username="Mufasa",
            realm="testrealm@host.com",
            password="Circle Of Life",
            method="GET",
            uri="/dir/index.html",
            nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093",
            qop="auth",
            nc="00000001",
            cnonce="0a4f113b",
        )
        == "6629fae49393a05397450978507c4ef1"
    )


def test_rfc7616_example_through_the_client() -> None:
    challenge = (
        'Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm=SHA-256, '
        'nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", '
        'opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"'
    )
    value = authorization_header(
        challenge,
        method="GET",
        uri="/dir/index.html",
        username="Mufasa",
        password="Circle of Life",
        cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
    )
    creds = parse_challenge(value)
    assert creds.param("response") == (
        "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
    )
    assert creds.param("qop") == "auth" and creds.param("nc") == "00000001"
    assert creds.param("opaque") == "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"
    # RFC 3261 25.1: qop and nc are tokens in credentials, the rest quoted strings.
    assert "qop=auth," in value and "nc=00000001" in value and 'uri="/dir/index.html"' in value


def _independent(hash_name: str, creds: Challenge, password: str, method: str) -> str:
    def h(text: str) -> str:
        return hashlib.new(hash_name, text.encode()).hexdigest()

    ha1 = h(f"{creds.param('username')}:{creds.param('realm')}:{password}")
    ha2 = h(f"{method}:{creds.param('uri')}")
    return h(
        f"{ha1}:{creds.param('nonce')}:{creds.param('nc')}:{creds.param('cnonce')}:"
        f"{creds.param('qop')}:{ha2}"
    )


@pytest.mark.parametrize(("algorithm", "hash_name"), [("MD5", "md5"), ("SHA-256", "sha256")])
def test_client_answer_matches_independent_hashlib(algorithm: str, hash_name: str) -> None:
    srv = server()
    creds = parse_challenge(answer(srv, algorithm=algorithm))
    assert creds.param("algorithm") == algorithm
    assert creds.param("response") == _independent(hash_name, creds, "s3cret-john", "REGISTER")


# --- syntax ------------------------------------------------------------------------------


def test_parse_challenge_quoting_and_tokens() -> None:
    parsed = parse_challenge(
        'Digest  realm="a \\"quoted\\" realm, with comma" ,nonce=abc/def==,'
        '  qop="auth,auth-int",stale=TRUE , algorithm = MD5'
    )
    assert parsed.scheme == "Digest"
    assert parsed.param("realm") == 'a "quoted" realm, with comma'
    assert parsed.param("nonce") == "abc/def=="
    assert parsed.param("QOP") == "auth,auth-int"
    assert parsed.param("stale") == "TRUE"
    assert parsed.param("algorithm") == "MD5"


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "Digest realm",
        'Digest realm="unterminated',
        'Digest realm="a", realm="b"',
        'Digest realm="a" nonce="b"',
        "Digest realm=",
        '"Digest" realm="a"',
    ],
)
def test_parse_challenge_rejects_malformed(bad: str) -> None:
    with pytest.raises(SipParseError):
        parse_challenge(bad)


def test_format_round_trip() -> None:
    challenge = Challenge("Digest", (("realm", 'r "1"\\'), ("nonce", "n"), ("stale", "true")))
    text = format_challenge(challenge)
    assert "stale=true" in text and 'realm="r \\"1\\"\\\\"' in text
    assert parse_challenge(text) == challenge
    creds = Challenge("Digest", (("username", "a,b"), ("qop", "auth"), ("nc", "00000002")))
    assert parse_challenge(format_credentials(creds)) == creds


_param_names = st.sampled_from(["realm", "nonce", "opaque", "username", "uri", "cnonce", "x-y"])


@given(
    st.lists(
        st.tuples(_param_names, st.text(min_size=0, max_size=20)),
        max_size=6,
        unique_by=lambda p: p[0],
    )
)
def test_format_parse_round_trip_property(params: list[tuple[str, str]]) -> None:
    # Quoted-string cannot carry CR/LF (they would fold the header); other text round-trips.
    params = [(k, v.replace("\r", "").replace("\n", "")) for k, v in params]
    challenge = Challenge("Digest", tuple(params))
    assert parse_challenge(format_challenge(challenge)) == challenge


@given(st.text(max_size=200))
def test_parse_challenge_only_raises_its_own_error(text: str) -> None:
    try:
        parse_challenge(text)
    except SipParseError:
        pass


def test_pick_challenge_takes_topmost_supported() -> None:
    values = [
        'Digest realm="r", nonce="1", algorithm=SHA-999, qop="auth"',
        'Basic realm="r"',
        'Digest realm="r", nonce="2", algorithm=SHA-256, qop="auth"',
        'Digest realm="r", nonce="3", algorithm=MD5, qop="auth"',
    ]
    picked = pick_challenge(values)
    assert picked is not None and picked.param("nonce") == "2"
    assert pick_challenge(values[:2]) is None


def test_client_refuses_what_it_cannot_answer() -> None:
    with pytest.raises(DigestError):
        authorization_header(
            'Digest realm="r", nonce="n", algorithm=SHA-999',
            method="REGISTER",
            uri=URI,
            username="u",
            password="p",
        )
    with pytest.raises(DigestError):
        authorization_header(
            'Digest realm="r", nonce="n", qop="auth-conf"',
            method="REGISTER",
            uri=URI,
            username="u",
            password="p",
        )


# --- server: challenges --------------------------------------------------------------------


def test_challenges_list_sha256_first_with_qop_opaque_algorithm() -> None:
    srv = server()
    values = srv.challenge(0.0)
    parsed = [parse_challenge(v) for v in values]
    assert [p.param("algorithm") for p in parsed] == ["SHA-256", "MD5"]
    for p in parsed:
        assert p.scheme == "Digest"
        assert p.param("realm") == REALM
        assert p.param("qop") == "auth"
        assert p.param("opaque") == srv.opaque
        assert p.param("stale") is None
        assert len(p.param("nonce") or "") == 44
    assert parsed[0].param("nonce") != parsed[1].param("nonce")
    assert 'qop="auth"' in values[0] and "algorithm=SHA-256" in values[0]
    stale = [parse_challenge(v) for v in srv.challenge(0.0, stale=True)]
    assert all(p.param("stale") == "true" for p in stale)


def test_server_rejects_unknown_algorithm_configuration() -> None:
    with pytest.raises(DigestError):
        DigestServer(REALM, b"k", algorithms=("SHA-1",))


# --- server: verification ------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["SHA-256", "MD5"])
def test_right_password_is_accepted(algorithm: str) -> None:
    srv = server()
    result = verify(srv, answer(srv, algorithm=algorithm))
    assert result.ok and result.username == "john"


def test_independently_built_credentials_are_accepted() -> None:
    srv = server()
    challenge = challenge_for(srv, "SHA-256")
    nonce = challenge.param("nonce")
    ha1 = hashlib.sha256(f"maria:{REALM}:maria's pass".encode()).hexdigest()
    ha2 = hashlib.sha256(f"REGISTER:{URI}".encode()).hexdigest()
    response = hashlib.sha256(f"{ha1}:{nonce}:0000000a:xyz:auth:{ha2}".encode()).hexdigest()
    value = (
        f'Digest username="maria", realm="{REALM}", nonce="{nonce}", uri="{URI}", '
        f'response="{response.upper()}", algorithm=SHA-256, cnonce="xyz", qop=auth, nc=0000000a'
    )
    result = verify(srv, value)
    assert result.ok and result.username == "maria"


def test_wrong_password_and_unknown_user_are_indistinguishable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    srv = server()
    calls: list[str] = []
    real_new = hashlib.new

    def counting_new(name: str, data: bytes = b"") -> object:
        calls.append(name)
        return real_new(name, data)

    wrong = answer(srv, password="nope")
    unknown = answer(srv, user="mallory", password="nope")
    monkeypatch.setattr(hashlib, "new", counting_new)
    wrong_result = verify(srv, wrong)
    wrong_cost = len(calls)
    calls.clear()
    unknown_result = verify(srv, unknown)
    assert wrong_result == unknown_result
    assert wrong_result.outcome is AuthOutcome.FAILED and wrong_result.username is None
    assert len(calls) == wrong_cost > 0  # the same hashing work in both cases


def test_stale_nonce_with_right_digest_is_stale_with_wrong_one_failed() -> None:
    srv = server(nonce_ttl=300.0)
    good = answer(srv, now=0.0)
    bad = answer(srv, now=0.0, password="nope")
    assert verify(srv, good, now=299.0).ok
    stale = verify(srv, answer(srv, now=0.0), now=301.0)
    assert stale.outcome is AuthOutcome.STALE and stale.username == "john"
    assert verify(srv, bad, now=301.0).outcome is AuthOutcome.FAILED
    unknown = answer(srv, now=0.0, user="mallory")
    assert verify(srv, unknown, now=301.0).outcome is AuthOutcome.FAILED


def test_nonce_from_another_secret_or_tampered_is_stale_not_accepted() -> None:
    other = DigestServer(REALM, b"other secret")
    srv = server()
    result = verify(srv, answer(other))
    assert result.outcome is AuthOutcome.STALE
    nonce = challenge_for(srv, "MD5").param("nonce") or ""
    tampered = ("A" if nonce[0] != "A" else "B") + nonce[1:]
    forged = Challenge(
        "Digest", (("realm", REALM), ("nonce", tampered), ("qop", "auth"), ("algorithm", "MD5"))
    )
    assert verify(srv, answer(srv, challenge=forged)).outcome is AuthOutcome.STALE


def test_nonce_from_the_future_is_stale() -> None:
    srv = server()
    assert verify(srv, answer(srv, now=100.0), now=10.0).outcome is AuthOutcome.STALE


def test_nonce_count_replay_is_refused() -> None:
    srv = server()
    challenge = challenge_for(srv, "SHA-256")
    first = answer(srv, challenge=challenge, nc=1)
    assert verify(srv, first).ok
    replay = verify(srv, first)
    assert replay.outcome is AuthOutcome.FAILED and replay.username is None
    assert verify(srv, answer(srv, challenge=challenge, nc=3)).ok
    assert verify(srv, answer(srv, challenge=challenge, nc=2)).ok  # late but unused: fine
    assert not verify(srv, answer(srv, challenge=challenge, nc=2)).ok
    assert verify(srv, answer(srv, challenge=challenge, nc=100)).ok
    # Far behind the highest count: outside the window, refused.
    assert not verify(srv, answer(srv, challenge=challenge, nc=4)).ok


def test_forgotten_nonces_are_stale_never_replayable() -> None:
    srv = server(max_tracked_nonces=2)
    challenges = [challenge_for(srv, "MD5", now=float(t)) for t in range(3)]
    firsts = [answer(srv, challenge=c, algorithm="MD5") for c in challenges]
    for value in firsts:
        assert verify(srv, value, now=3.0).ok
    # The first nonce fell out of memory: its replay must not be taken as new.
    assert verify(srv, firsts[0], now=3.0).outcome is AuthOutcome.STALE
    assert verify(srv, firsts[2], now=3.0).outcome is AuthOutcome.FAILED
    # A fresh nonce still works.
    assert verify(srv, answer(srv, now=3.0), now=3.0).ok


def test_uri_must_be_the_request_uri() -> None:
    srv = server()
    value = answer(srv, uri="sip:other.test")
    assert verify(srv, value).outcome is AuthOutcome.FAILED
    # Equivalent spellings per RFC 3261 19.1.4 are the same URI.
    value = answer(srv, uri="SIP:QConnect.TEST;Transport=UDP")
    assert verify(srv, value, uri="sip:qconnect.test;transport=udp").ok


def test_wrong_realm_and_unoffered_algorithm_fail() -> None:
    srv = server(algorithms=("SHA-256",))
    challenge = challenge_for(srv, "SHA-256")
    elsewhere = Challenge(
        "Digest", tuple((k, "other" if k == "realm" else v) for k, v in challenge.params)
    )
    assert verify(srv, answer(srv, challenge=elsewhere)).outcome is AuthOutcome.FAILED
    md5 = Challenge(
        "Digest", tuple((k, "MD5" if k == "algorithm" else v) for k, v in challenge.params)
    )
    assert verify(srv, answer(srv, challenge=md5)).outcome is AuthOutcome.FAILED


def test_rfc2069_answer_without_qop() -> None:
    srv = server()
    challenge = challenge_for(srv, "MD5")
    legacy = Challenge("Digest", tuple((k, v) for k, v in challenge.params if k != "qop"))
    value = answer(srv, challenge=legacy)
    assert "cnonce" not in value and "nc=" not in value
    assert verify(srv, value).ok
    strict = DigestServer(REALM, b"k" * 32, allow_rfc2069=False)
    assert verify(strict, value).outcome is AuthOutcome.FAILED


@pytest.mark.parametrize("algorithm", ["MD5-sess", "SHA-256-sess"])
def test_sess_variants_are_accepted(algorithm: str) -> None:
    srv = server()
    base = challenge_for(srv, algorithm.removesuffix("-sess"))
    sess = Challenge(
        "Digest", tuple((k, algorithm if k == "algorithm" else v) for k, v in base.params)
    )
    assert verify(srv, answer(srv, challenge=sess)).ok


def test_auth_int_covers_the_body() -> None:
    srv = server()
    challenge = challenge_for(srv, "SHA-256")
    int_only = Challenge(
        "Digest", tuple((k, "auth-int" if k == "qop" else v) for k, v in challenge.params)
    )
    value = authorization_header(
        int_only, method="INVITE", uri=URI, username="john", password="s3cret-john", body=b"v=0"
    )
    ok = srv.verify(value, method="INVITE", uri=URI, password_lookup=lookup, now=1.0, body=b"v=0")
    assert ok.ok
    changed = srv.verify(
        value, method="INVITE", uri=URI, password_lookup=lookup, now=1.0, body=b"v=1"
    )
    assert changed.outcome is AuthOutcome.FAILED


def test_method_is_covered() -> None:
    srv = server()
    value = answer(srv)
    result = srv.verify(value, method="INVITE", uri=URI, password_lookup=lookup, now=1.0)
    assert result.outcome is AuthOutcome.FAILED


@pytest.mark.parametrize(
    "value",
    [
        'Digest username="john", realm="qconnect.test", nonce="n", uri="sip:qconnect.test"',
        'Digest username="john", realm="qconnect.test", nonce="n", uri="sip:qconnect.test", '
        'response="00", qop=auth, nc=1, cnonce="c"',
        'Digest username="john", realm="qconnect.test", nonce="n", uri="sip:qconnect.test", '
        'response="00", qop=auth, nc=00000001',
        "Basic am9objpzM2NyZXQ=",
        'Digest username="john", realm=',
    ],
)
def test_malformed_credentials(value: str) -> None:
    assert verify(server(), value).outcome is AuthOutcome.MALFORMED


def test_opaque_mismatch_is_stale() -> None:
    srv = server()
    challenge = challenge_for(srv, "SHA-256")
    other = Challenge(
        "Digest", tuple((k, "xx" if k == "opaque" else v) for k, v in challenge.params)
    )
    assert verify(srv, answer(srv, challenge=other)).outcome is AuthOutcome.STALE


# RFC 3261 19.1.4 for the digest uri vs the Request-URI (pyVoIP 1.6.8 signs REGISTERs to
# sip:host with uri="sip:host;transport=UDP").
@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("sip:127.0.0.1", "sip:127.0.0.1;transport=UDP", True),
        ("sip:127.0.0.1;transport=udp", "sip:127.0.0.1;transport=UDP", True),
        ("sip:127.0.0.1;transport=tcp", "sip:127.0.0.1;transport=udp", False),
        ("sip:127.0.0.1", "sip:127.0.0.1;user=phone", False),
        ("sip:127.0.0.1;maddr=10.0.0.1", "sip:127.0.0.1", False),
        ("sip:john@127.0.0.1", "sip:JOHN@127.0.0.1", False),
        ("sip:john@EXAMPLE.com", "sip:john@example.com", True),
    ],
)
def test_digest_uri_matches_request_uri_as_rfc3261_compares_them(
    a: str, b: str, same: bool
) -> None:
    from telephony.sip.digest import _same_uri

    assert _same_uri(a, b) is same
    assert _same_uri(b, a) is same
