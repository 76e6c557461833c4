"""SDP parse/serialize and the RFC 3264 offer/answer the switch relies on."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from media.sdp import (
    PCMA,
    PCMU,
    Attribute,
    Codec,
    Connection,
    Direction,
    MediaDescription,
    Origin,
    SdpError,
    SessionDescription,
    Timing,
    make_answer,
    make_offer,
    negotiate_answer,
)

LINPHONE_OFFER = (
    "v=0\r\n"
    "o=alice 3724 2135 IN IP4 192.0.2.10\r\n"
    "s=Talk\r\n"
    "c=IN IP4 192.0.2.10\r\n"
    "t=0 0\r\n"
    "a=rtcp-xr:rcvr-rtt=all:10000 stat-summary=loss,dup,jitt,TTL voip-metrics\r\n"
    "m=audio 7078 RTP/AVP 96 97 98 0 8 101 99 100\r\n"
    "a=rtpmap:96 opus/48000/2\r\n"
    "a=fmtp:96 useinbandfec=1\r\n"
    "a=rtpmap:97 speex/16000\r\n"
    "a=rtpmap:98 speex/8000\r\n"
    "a=rtpmap:101 telephone-event/48000\r\n"
    "a=rtpmap:99 telephone-event/16000\r\n"
    "a=rtpmap:100 telephone-event/8000\r\n"
    "a=fmtp:100 0-15\r\n"
)

BARESIP_OFFER = (
    "v=0\r\n"
    "o=- 1718295221 1718295222 IN IP4 127.0.0.1\r\n"
    "s=-\r\n"
    "c=IN IP4 127.0.0.1\r\n"
    "t=0 0\r\n"
    "m=audio 10000 RTP/AVP 8 0 101\r\n"
    "b=AS:64\r\n"
    "a=rtpmap:8 PCMA/8000\r\n"
    "a=rtpmap:0 PCMU/8000\r\n"
    "a=rtpmap:101 telephone-event/8000\r\n"
    "a=fmtp:101 0-15\r\n"
    "a=ptime:30\r\n"
    "a=sendrecv\r\n"
    "a=label:1\r\n"
)


def _offer(body: str) -> SessionDescription:
    return SessionDescription.parse(body.encode())


# -- parsing --------------------------------------------------------------------------------


def test_parse_linphone_offer() -> None:
    sdp = _offer(LINPHONE_OFFER)
    assert sdp.origin == Origin("alice", "3724", 2135, "192.0.2.10")
    assert sdp.connection == Connection("192.0.2.10")
    (audio,) = sdp.media
    assert audio.port == 7078 and audio.proto == "RTP/AVP"
    assert audio.formats == ("96", "97", "98", "0", "8", "101", "99", "100")
    maps = audio.rtpmaps
    assert maps[0].encoding == "PCMU" and maps[96].channels == 2
    assert maps[100].encoding == "telephone-event" and maps[100].clock_rate == 8000
    assert audio.fmtps == {96: "useinbandfec=1", 100: "0-15"}
    assert sdp.direction_of(audio) is Direction.SENDRECV and audio.direction is None


def test_serialize_round_trips_through_parse() -> None:
    sdp = _offer(BARESIP_OFFER)
    again = SessionDescription.parse(sdp.serialize())
    assert again == sdp
    assert sdp.serialize().endswith(b"a=label:1\r\n")
    assert sdp.media[0].bandwidths == ("AS:64",) and sdp.media[0].ptime == 30


def test_parse_accepts_bare_lf_and_all_session_lines() -> None:
    body = (
        "v=0\no=- 1 1 IN IP6 ::1\ns=x\ni=info\nu=http://x\ne=a@b\np=+1 555\n"
        "c=IN IP6 ::1\nb=CT:128\nt=1 2\nr=7d 1h 0 25h\nz=2882844526 -1h\nk=prompt\n"
        "a=recvonly\nm=audio 5004/2 RTP/AVP 0\ni=voice\nc=IN IP4 10.0.0.1/127\nk=clear:x\n"
        "m=video 0 RTP/AVP 31\n"
    )
    sdp = SessionDescription.parse(body)
    assert sdp.timing == (Timing(1, 2, ("7d 1h 0 25h",)),)
    assert sdp.emails == ("a@b",) and sdp.phones == ("+1 555",) and sdp.zone and sdp.key
    assert sdp.media[0].port_count == 2 and sdp.media[0].information == "voice"
    assert sdp.connection_of(sdp.media[0]) == Connection("10.0.0.1/127")
    assert sdp.direction_of(sdp.media[0]) is Direction.RECVONLY
    assert SessionDescription.parse(sdp.serialize()) == sdp


@pytest.mark.parametrize(
    "body",
    [
        "",
        "o=- 1 1 IN IP4 1.2.3.4\r\n",
        "v=1\r\no=- 1 1 IN IP4 1.2.3.4\r\n",
        "v=0\r\ns=-\r\n",
        "v=0\r\no=- 1 x IN IP4 1.2.3.4\r\n",
        "v=0\r\no=- 1 1 IN IP4\r\n",
        "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nc=IN IP4\r\n",
        "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nt=now\r\n",
        "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nm=audio x RTP/AVP 0\r\n",
        "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nm=audio 70000 RTP/AVP 0\r\n",
        "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nm=audio 5000 RTP/AVP\r\n",
        "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nx=unknown\r\n",
        "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nm=audio 5000 RTP/AVP 0\r\ns=late\r\n",
        "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nnot a line\r\n",
        "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\na=\r\n",
    ],
)
def test_malformed_descriptions_raise_400(body: str) -> None:
    with pytest.raises(SdpError) as info:
        SessionDescription.parse(body)
    assert info.value.status == 400


@given(st.text(max_size=300))
def test_garbage_never_crashes(text: str) -> None:
    try:
        SessionDescription.parse(text)
    except SdpError:
        pass


@given(st.binary(max_size=300))
def test_garbage_bytes_after_v0_never_crash(data: bytes) -> None:
    try:
        SessionDescription.parse(b"v=0\r\no=- 1 1 IN IP4 1.1.1.1\r\n" + data)
    except SdpError:
        pass


# -- offers ---------------------------------------------------------------------------------


def test_make_offer_layout() -> None:
    offer = make_offer(address="203.0.113.5", port=20000)
    text = offer.serialize().decode()
    assert "c=IN IP4 203.0.113.5\r\n" in text
    assert "m=audio 20000 RTP/AVP 0 8 101\r\n" in text
    for line in (
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:8 PCMA/8000",
        "a=rtpmap:101 telephone-event/8000",
        "a=fmtp:101 0-16",
        "a=ptime:20",
        "a=sendrecv",
    ):
        assert line + "\r\n" in text
    assert text.startswith("v=0\r\no=qconnect ")


def test_reoffer_keeps_session_id_and_bumps_version_only_on_change() -> None:
    first = make_offer(address="203.0.113.5", port=20000)
    same = make_offer(address="203.0.113.5", port=20000, previous=first)
    assert same.origin == first.origin
    hold = make_offer(
        address="203.0.113.5", port=20000, direction=Direction.SENDONLY, previous=same
    )
    assert hold.origin.session_id == first.origin.session_id
    assert hold.origin.version == first.origin.version + 1
    resume = make_offer(address="203.0.113.5", port=20000, previous=hold)
    assert resume.origin.version == first.origin.version + 2


def test_ipv6_offer() -> None:
    offer = make_offer(address="2001:db8::1", port=4000)
    assert offer.connection == Connection("2001:db8::1", addr_type="IP6")
    assert offer.origin.addr_type == "IP6"


# -- answers --------------------------------------------------------------------------------


def test_answer_linphone_picks_pcmu_and_its_8k_telephone_event() -> None:
    answer, negotiated = make_answer(_offer(LINPHONE_OFFER), address="198.51.100.1", port=30000)
    assert negotiated.codec == PCMU and negotiated.payload_type == 0
    assert negotiated.dtmf_payload_type == 100
    assert negotiated.remote == ("192.0.2.10", 7078)
    assert negotiated.direction is Direction.SENDRECV and not negotiated.is_hold
    assert negotiated.ptime == 20
    (audio,) = answer.media
    assert audio.formats == ("0", "100") and audio.port == 30000
    assert audio.fmtps == {100: "0-15"}
    assert audio.direction is Direction.SENDRECV


def test_answer_follows_offer_order_and_ptime() -> None:
    answer, negotiated = make_answer(_offer(BARESIP_OFFER), address="198.51.100.1", port=30000)
    assert negotiated.codec == PCMA and negotiated.payload_type == 8
    assert negotiated.ptime == 30 and negotiated.dtmf_payload_type == 101
    assert negotiated.law.encoding_name == "PCMA"
    assert answer.media[0].formats == ("8", "101")


def test_answer_respects_local_codec_list() -> None:
    _, negotiated = make_answer(
        _offer(BARESIP_OFFER), address="198.51.100.1", port=30000, codecs=(PCMU,)
    )
    assert negotiated.codec == PCMU


def test_dynamic_payload_type_for_g711_is_kept() -> None:
    body = BARESIP_OFFER.replace("RTP/AVP 8 0 101", "RTP/AVP 96 101").replace(
        "a=rtpmap:8 PCMA/8000", "a=rtpmap:96 pcmu/8000"
    )
    answer, negotiated = make_answer(_offer(body), address="198.51.100.1", port=1)
    assert negotiated.payload_type == 96 and negotiated.codec == PCMU
    assert "a=rtpmap:96 PCMU/8000" in answer.serialize().decode()


def test_no_common_codec_is_488() -> None:
    body = BARESIP_OFFER.replace("RTP/AVP 8 0 101", "RTP/AVP 9 101")
    with pytest.raises(SdpError) as info:
        make_answer(_offer(body), address="198.51.100.1", port=1)
    assert info.value.status == 488


def test_g711_at_wrong_rate_is_not_common() -> None:
    body = (
        "v=0\r\no=- 1 1 IN IP4 1.1.1.1\r\ns=-\r\nc=IN IP4 1.1.1.1\r\nt=0 0\r\n"
        "m=audio 4000 RTP/AVP 96\r\na=rtpmap:96 PCMU/16000\r\n"
    )
    with pytest.raises(SdpError):
        make_answer(_offer(body), address="1.2.3.4", port=1)


def test_srtp_and_video_streams_are_rejected_with_port_zero() -> None:
    body = (
        "v=0\r\no=- 1 1 IN IP4 1.1.1.1\r\ns=-\r\nc=IN IP4 1.1.1.1\r\nt=0 0\r\n"
        "m=audio 4000 RTP/SAVP 0\r\n"
        "m=video 4002 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"
        "m=audio 4004 RTP/AVP 8\r\n"
    )
    answer, negotiated = make_answer(_offer(body), address="1.2.3.4", port=9000)
    assert [m.port for m in answer.media] == [0, 0, 9000]
    assert [m.proto for m in answer.media] == ["RTP/SAVP", "RTP/AVP", "RTP/AVP"]
    assert answer.media[1].formats == ("96",)
    assert negotiated.remote == ("1.1.1.1", 4004) and negotiated.codec == PCMA
    assert negotiated.dtmf_payload_type is None
    assert "telephone-event" not in answer.serialize().decode()


def test_offer_without_connection_is_rejected() -> None:
    body = "v=0\r\no=- 1 1 IN IP4 1.1.1.1\r\ns=-\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"
    with pytest.raises(SdpError):
        make_answer(_offer(body), address="1.2.3.4", port=1)


@pytest.mark.parametrize(
    "offered, local, answered, is_hold",
    [
        (Direction.SENDRECV, Direction.SENDRECV, Direction.SENDRECV, False),
        (Direction.SENDONLY, Direction.SENDRECV, Direction.RECVONLY, True),
        (Direction.RECVONLY, Direction.SENDRECV, Direction.SENDONLY, False),
        (Direction.INACTIVE, Direction.SENDRECV, Direction.INACTIVE, True),
        (Direction.SENDRECV, Direction.SENDONLY, Direction.SENDONLY, False),
        (Direction.SENDRECV, Direction.INACTIVE, Direction.INACTIVE, False),
        (Direction.SENDONLY, Direction.SENDONLY, Direction.INACTIVE, True),
        (Direction.RECVONLY, Direction.RECVONLY, Direction.INACTIVE, False),
    ],
)
def test_answer_direction_mapping(
    offered: Direction, local: Direction, answered: Direction, is_hold: bool
) -> None:
    offer = make_offer(address="192.0.2.1", port=4000, direction=offered)
    answer, negotiated = make_answer(offer, address="192.0.2.2", port=5000, direction=local)
    assert answer.media[0].direction is answered
    assert negotiated.direction is answered and negotiated.remote_direction is offered
    assert negotiated.is_hold is is_hold


def test_session_level_direction_applies_to_media() -> None:
    body = BARESIP_OFFER.replace("a=sendrecv\r\n", "").replace(
        "t=0 0\r\n", "t=0 0\r\na=sendonly\r\n"
    )
    _, negotiated = make_answer(_offer(body), address="1.2.3.4", port=1)
    assert negotiated.remote_direction is Direction.SENDONLY and negotiated.is_hold


def test_old_style_hold_with_null_connection() -> None:
    body = BARESIP_OFFER.replace("c=IN IP4 127.0.0.1", "c=IN IP4 0.0.0.0")
    answer, negotiated = make_answer(_offer(body), address="1.2.3.4", port=1)
    assert negotiated.is_hold and negotiated.remote is None and negotiated.remote_address is None
    assert negotiated.direction is Direction.RECVONLY
    assert answer.media[0].direction is Direction.RECVONLY


def test_reanswer_bumps_version_when_hold_changes_it() -> None:
    offer = _offer(BARESIP_OFFER)
    first, _ = make_answer(offer, address="1.2.3.4", port=1)
    again, _ = make_answer(offer, address="1.2.3.4", port=1, previous=first)
    assert again.origin == first.origin
    held = _offer(BARESIP_OFFER.replace("a=sendrecv", "a=sendonly"))
    on_hold, negotiated = make_answer(held, address="1.2.3.4", port=1, previous=again)
    assert negotiated.is_hold and on_hold.origin.version == first.origin.version + 1


# -- offerer side ---------------------------------------------------------------------------


def test_negotiate_answer_from_phone() -> None:
    offer = make_offer(address="198.51.100.1", port=30000)
    phone_answer = _offer(
        "v=0\r\no=bob 1 1 IN IP4 192.0.2.20\r\ns=-\r\nc=IN IP4 192.0.2.20\r\nt=0 0\r\n"
        "m=audio 8000 RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\n"
        "a=rtpmap:101 telephone-event/8000\r\na=ptime:20\r\n"
    )
    negotiated = negotiate_answer(offer, phone_answer)
    assert negotiated.codec == PCMA and negotiated.dtmf_payload_type == 101
    assert negotiated.remote == ("192.0.2.20", 8000)
    assert negotiated.direction is Direction.SENDRECV and not negotiated.is_hold


def test_negotiate_answer_round_trip_with_our_own_answerer() -> None:
    offer = make_offer(address="10.0.0.1", port=4000, codecs=(PCMA, PCMU), ptime=20)
    answer, theirs = make_answer(offer, address="10.0.0.2", port=5000)
    ours = negotiate_answer(offer, SessionDescription.parse(answer.serialize()))
    assert ours.codec == theirs.codec == PCMA
    assert ours.remote == ("10.0.0.2", 5000) and theirs.remote == ("10.0.0.1", 4000)
    assert ours.dtmf_payload_type == theirs.dtmf_payload_type == 101


def test_our_hold_offer_is_not_reported_as_being_held() -> None:
    offer = make_offer(address="10.0.0.1", port=4000, direction=Direction.SENDONLY)
    answer, theirs = make_answer(offer, address="10.0.0.2", port=5000)
    ours = negotiate_answer(offer, answer)
    assert theirs.is_hold and not ours.is_hold
    assert ours.direction is Direction.SENDONLY


def test_negotiate_rejected_answer_raises_488() -> None:
    offer = make_offer(address="10.0.0.1", port=4000)
    rejected = SessionDescription(
        origin=Origin("-", "1", 1, "10.0.0.2"),
        connection=Connection("10.0.0.2"),
        media=(MediaDescription("audio", 0, "RTP/AVP", ("0",)),),
    )
    with pytest.raises(SdpError) as info:
        negotiate_answer(offer, rejected)
    assert info.value.status == 488
    with pytest.raises(SdpError):
        negotiate_answer(offer, SessionDescription(origin=Origin("-", "1", 1, "x")))


def test_custom_codec_objects_and_attributes() -> None:
    offer = make_offer(
        address="10.0.0.1", port=4000, codecs=(Codec("PCMA", 8),), dtmf_payload_type=None
    )
    assert offer.media[0].formats == ("8",)
    assert Attribute("ptime", "20") in offer.media[0].attributes
    with pytest.raises(SdpError):
        make_offer(address="10.0.0.1", port=4000, codecs=())


def test_direction_algebra() -> None:
    assert Direction.SENDONLY.reversed() is Direction.RECVONLY
    assert Direction.INACTIVE.reversed() is Direction.INACTIVE
    assert Direction.SENDRECV.restrict(Direction.RECVONLY) is Direction.RECVONLY
