"""SDP (RFC 4566) and the offer/answer model (RFC 3264) for G.711 audio legs.

`SessionDescription.parse` / `serialize` cover the whole grammar a phone sends; `make_offer`,
`make_answer` and `negotiate_answer` implement the narrow offer/answer the switch needs: one
audio stream, PCMU or PCMA (the first the offer lists that we support), RFC 4733
telephone-event with the offerer's payload type, ptime, the four direction attributes and the
old-style ``c=0.0.0.0`` hold of RFC 2543 (RFC 3264 8.4). The negotiated outcome is one
`Negotiated` value the leg applies to its RTP session.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum

from media.g711 import Law
from media.rtp import MediaError


class SdpError(MediaError):
    """A malformed description, or an offer/answer we cannot accept.

    `status` is the SIP response to answer an offer with: 400 for a body we cannot parse, 488
    (Not Acceptable Here, RFC 3261 21.4.26) when nothing in the offer is usable.
    """

    def __init__(self, reason: str, status: int = 400) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


class Direction(StrEnum):
    """Direction attributes (RFC 3264 5.1, 6.1), from this description's author's view."""

    SENDRECV = "sendrecv"
    SENDONLY = "sendonly"
    RECVONLY = "recvonly"
    INACTIVE = "inactive"

    @property
    def sends(self) -> bool:
        return self in (Direction.SENDRECV, Direction.SENDONLY)

    @property
    def receives(self) -> bool:
        return self in (Direction.SENDRECV, Direction.RECVONLY)

    @classmethod
    def from_flags(cls, *, send: bool, receive: bool) -> Direction:
        if send and receive:
            return cls.SENDRECV
        if send:
            return cls.SENDONLY
        if receive:
            return cls.RECVONLY
        return cls.INACTIVE

    def reversed(self) -> Direction:
        """The same stream seen from the other end: sendonly <-> recvonly."""
        return Direction.from_flags(send=self.receives, receive=self.sends)

    def restrict(self, other: Direction) -> Direction:
        """Both ends' wishes from this end's view (`other` already in this end's view)."""
        return Direction.from_flags(
            send=self.sends and other.sends, receive=self.receives and other.receives
        )


_DIRECTIONS = frozenset(d.value for d in Direction)


@dataclass(frozen=True, slots=True)
class Origin:
    """o= (RFC 4566 5.2). `session_id` stays a string: phones send ids beyond 64 bits."""

    username: str
    session_id: str
    version: int
    address: str
    net_type: str = "IN"
    addr_type: str = "IP4"

    def line(self) -> str:
        return (
            f"{self.username} {self.session_id} {self.version} "
            f"{self.net_type} {self.addr_type} {self.address}"
        )


@dataclass(frozen=True, slots=True)
class Connection:
    """c= (RFC 4566 5.7); `address` keeps any /ttl/count suffix as written."""

    address: str
    net_type: str = "IN"
    addr_type: str = "IP4"

    @property
    def is_null(self) -> bool:
        """``c=IN IP4 0.0.0.0``: RFC 2543 hold, "do not send me media" (RFC 3264 8.4)."""
        return self.address.split("/")[0] in ("0.0.0.0", "::")

    def line(self) -> str:
        return f"{self.net_type} {self.addr_type} {self.address}"


@dataclass(frozen=True, slots=True)
class Attribute:
    """a=name or a=name:value (RFC 4566 5.13)."""

    name: str
    value: str | None = None

    def line(self) -> str:
        return self.name if self.value is None else f"{self.name}:{self.value}"


@dataclass(frozen=True, slots=True)
class Timing:
    """t= and the r= lines that belong to it (RFC 4566 5.9, 5.10)."""

    start: int = 0
    stop: int = 0
    repeats: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RtpMap:
    """a=rtpmap:<pt> <encoding>/<clock rate>[/<channels>] (RFC 4566 6)."""

    payload_type: int
    encoding: str
    clock_rate: int
    channels: int | None = None


# RFC 3551 table 4: the static payload types an offer may list without an rtpmap.
_STATIC_PAYLOADS = {0: RtpMap(0, "PCMU", 8000), 8: RtpMap(8, "PCMA", 8000)}


def _attr_values(attributes: Iterable[Attribute], name: str) -> list[str]:
    return [a.value for a in attributes if a.name == name and a.value is not None]


def _direction_of(attributes: Iterable[Attribute]) -> Direction | None:
    for attribute in attributes:
        if attribute.name in _DIRECTIONS and attribute.value is None:
            return Direction(attribute.name)
    return None


@dataclass(frozen=True, slots=True)
class MediaDescription:
    """One m= section (RFC 4566 5.14) with its own i=, c=, b=, k= and a= lines."""

    media: str
    port: int
    proto: str
    formats: tuple[str, ...]
    port_count: int | None = None
    information: str | None = None
    connection: Connection | None = None
    bandwidths: tuple[str, ...] = ()
    key: str | None = None
    attributes: tuple[Attribute, ...] = ()

    def attribute(self, name: str) -> str | None:
        values = _attr_values(self.attributes, name)
        return values[0] if values else None

    @property
    def rtpmaps(self) -> dict[int, RtpMap]:
        """Every payload type's mapping, static ones filled in from RFC 3551."""
        maps: dict[int, RtpMap] = {}
        for fmt in self.formats:
            if fmt.isdigit() and int(fmt) in _STATIC_PAYLOADS:
                maps[int(fmt)] = _STATIC_PAYLOADS[int(fmt)]
        for value in _attr_values(self.attributes, "rtpmap"):
            parsed = _parse_rtpmap(value)
            if parsed is not None:
                maps[parsed.payload_type] = parsed
        return maps

    @property
    def fmtps(self) -> dict[int, str]:
        params: dict[int, str] = {}
        for value in _attr_values(self.attributes, "fmtp"):
            pt, _, rest = value.partition(" ")
            if pt.isdigit():
                params[int(pt)] = rest.strip()
        return params

    @property
    def direction(self) -> Direction | None:
        """The media-level direction attribute, if any (see `SessionDescription.direction_of`)."""
        return _direction_of(self.attributes)

    @property
    def ptime(self) -> int | None:
        value = self.attribute("ptime")
        if value is None:
            return None
        try:
            return max(1, round(float(value)))
        except ValueError:
            return None


def _parse_rtpmap(value: str) -> RtpMap | None:
    pt, _, spec = value.strip().partition(" ")
    parts = spec.strip().split("/")
    if not pt.isdigit() or len(parts) < 2 or not parts[1].isdigit():
        return None
    channels = int(parts[2]) if len(parts) > 2 and parts[2].isdigit() else None
    return RtpMap(int(pt), parts[0], int(parts[1]), channels)


_SESSION_ORDER = "vosiuepcbtrzkam"
_MEDIA_ORDER = "micbka"


@dataclass(frozen=True, slots=True)
class SessionDescription:
    """A whole session description (RFC 4566 5)."""

    origin: Origin
    session_name: str = "-"
    media: tuple[MediaDescription, ...] = ()
    connection: Connection | None = None
    attributes: tuple[Attribute, ...] = ()
    timing: tuple[Timing, ...] = (Timing(),)
    information: str | None = None
    uri: str | None = None
    emails: tuple[str, ...] = ()
    phones: tuple[str, ...] = ()
    bandwidths: tuple[str, ...] = ()
    zone: str | None = None
    key: str | None = None

    def connection_of(self, media: MediaDescription) -> Connection | None:
        """Media-level c= overrides the session-level one (RFC 4566 5.7)."""
        return media.connection or self.connection

    def direction_of(self, media: MediaDescription) -> Direction:
        """Media-level, else session-level, else sendrecv (RFC 3264 5.1)."""
        return media.direction or _direction_of(self.attributes) or Direction.SENDRECV

    # -- parsing ---------------------------------------------------------------------------

    @classmethod
    def parse(cls, data: bytes | str) -> SessionDescription:
        text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
        lines = [line for line in text.replace("\r\n", "\n").split("\n") if line.strip()]
        if not lines or lines[0].strip() != "v=0":
            raise SdpError("SDP must start with v=0")
        session: dict[str, list[str]] = {}
        sections: list[tuple[str, list[tuple[str, str]]]] = []
        for number, raw in enumerate(lines[1:], start=2):
            line = raw.rstrip("\r")
            if len(line) < 2 or line[1] != "=":
                raise SdpError(f"line {number} is not <type>=<value>: {line[:40]!r}")
            kind, value = line[0], line[2:]
            if kind == "m":
                sections.append((value, []))
            elif sections:
                if kind not in _MEDIA_ORDER:
                    raise SdpError(f"line {number}: {kind}= is not allowed in a media section")
                sections[-1][1].append((kind, value))
            else:
                if kind not in _SESSION_ORDER or kind == "v":
                    # RFC 4566 5: a description with a type letter we do not know is ignored.
                    raise SdpError(f"line {number}: unknown SDP line type {kind!r}")
                session.setdefault(kind, []).append(value)
        if "o" not in session:
            raise SdpError("SDP without an o= line")
        return cls(
            origin=_parse_origin(session["o"][0]),
            session_name=session.get("s", ["-"])[0],
            media=tuple(_parse_media(m, body) for m, body in sections),
            connection=_parse_connection(session["c"][0]) if "c" in session else None,
            attributes=tuple(_parse_attribute(a) for a in session.get("a", [])),
            timing=_parse_timing(session.get("t", []), session.get("r", [])),
            information=session.get("i", [None])[0],
            uri=session.get("u", [None])[0],
            emails=tuple(session.get("e", [])),
            phones=tuple(session.get("p", [])),
            bandwidths=tuple(session.get("b", [])),
            zone=session.get("z", [None])[0],
            key=session.get("k", [None])[0],
        )

    def serialize(self) -> bytes:
        lines = ["v=0", f"o={self.origin.line()}", f"s={self.session_name or '-'}"]
        if self.information is not None:
            lines.append(f"i={self.information}")
        if self.uri is not None:
            lines.append(f"u={self.uri}")
        lines += [f"e={e}" for e in self.emails] + [f"p={p}" for p in self.phones]
        if self.connection is not None:
            lines.append(f"c={self.connection.line()}")
        lines += [f"b={b}" for b in self.bandwidths]
        for timing in self.timing or (Timing(),):
            lines.append(f"t={timing.start} {timing.stop}")
            lines += [f"r={r}" for r in timing.repeats]
        if self.zone is not None:
            lines.append(f"z={self.zone}")
        if self.key is not None:
            lines.append(f"k={self.key}")
        lines += [f"a={a.line()}" for a in self.attributes]
        for media in self.media:
            port = f"{media.port}/{media.port_count}" if media.port_count else str(media.port)
            lines.append(f"m={media.media} {port} {media.proto} {' '.join(media.formats)}")
            if media.information is not None:
                lines.append(f"i={media.information}")
            if media.connection is not None:
                lines.append(f"c={media.connection.line()}")
            lines += [f"b={b}" for b in media.bandwidths]
            if media.key is not None:
                lines.append(f"k={media.key}")
            lines += [f"a={a.line()}" for a in media.attributes]
        return ("\r\n".join(lines) + "\r\n").encode("utf-8")


def _parse_origin(value: str) -> Origin:
    fields = value.split()
    if len(fields) != 6 or not fields[2].isdigit():
        raise SdpError(f"malformed o= line: {value[:60]!r}")
    return Origin(fields[0], fields[1], int(fields[2]), fields[5], fields[3], fields[4])


def _parse_connection(value: str) -> Connection:
    fields = value.split()
    if len(fields) != 3:
        raise SdpError(f"malformed c= line: {value[:60]!r}")
    return Connection(fields[2], fields[0], fields[1])


def _parse_attribute(value: str) -> Attribute:
    name, colon, rest = value.partition(":")
    if not name:
        raise SdpError("empty a= line")
    return Attribute(name, rest if colon else None)


def _parse_timing(times: list[str], repeats: list[str]) -> tuple[Timing, ...]:
    parsed = []
    for value in times:
        fields = value.split()
        if len(fields) != 2 or not all(f.isdigit() for f in fields):
            raise SdpError(f"malformed t= line: {value[:60]!r}")
        parsed.append(Timing(int(fields[0]), int(fields[1])))
    if not parsed:
        return (Timing(),)
    # r= lines follow the t= they repeat; the grammar only lets us keep them on the last one.
    return (*parsed[:-1], replace(parsed[-1], repeats=tuple(repeats)))


def _parse_media(value: str, body: list[tuple[str, str]]) -> MediaDescription:
    fields = value.split()
    if len(fields) < 4:
        raise SdpError(f"malformed m= line: {value[:60]!r}")
    port_text, _, count_text = fields[1].partition("/")
    if (
        not port_text.isdigit()
        or int(port_text) > 65535
        or (count_text and not count_text.isdigit())
    ):
        raise SdpError(f"malformed m= port: {fields[1]!r}")
    grouped: dict[str, list[str]] = {}
    for kind, line in body:
        grouped.setdefault(kind, []).append(line)
    return MediaDescription(
        media=fields[0],
        port=int(port_text),
        proto=fields[2],
        formats=tuple(fields[3:]),
        port_count=int(count_text) if count_text else None,
        information=grouped.get("i", [None])[0],
        connection=_parse_connection(grouped["c"][0]) if "c" in grouped else None,
        bandwidths=tuple(grouped.get("b", [])),
        key=grouped.get("k", [None])[0],
        attributes=tuple(_parse_attribute(a) for a in grouped.get("a", [])),
    )


# -- offer / answer -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Codec:
    """An audio codec we can carry: its rtpmap name, preferred payload type and clock rate."""

    name: str
    payload_type: int
    clock_rate: int = 8000


PCMU = Codec("PCMU", 0)
PCMA = Codec("PCMA", 8)
TELEPHONE_EVENT = "telephone-event"
DEFAULT_DTMF_PAYLOAD_TYPE = 101
_AUDIO_PROTOS = ("RTP/AVP", "RTP/AVPF")


@dataclass(frozen=True, slots=True)
class Negotiated:
    """What one audio stream settled on, from our side."""

    remote_address: str | None
    remote_port: int
    payload_type: int
    codec: Codec
    dtmf_payload_type: int | None
    ptime: int
    direction: Direction
    remote_direction: Direction
    is_hold: bool

    @property
    def law(self) -> Law:
        """The G.711 law of the chosen codec."""
        return Law.from_encoding_name(self.codec.name)

    @property
    def remote(self) -> tuple[str, int] | None:
        """Where to send RTP, or None while the far end asked for none (c=0.0.0.0 / port 0)."""
        if self.remote_address is None or self.remote_port == 0:
            return None
        return (self.remote_address, self.remote_port)


def _version_for(new: SessionDescription, previous: SessionDescription | None) -> int:
    # RFC 3264 8: a changed description carries a higher o= version; an unchanged one the same.
    if previous is None:
        return new.origin.version
    same = replace(new, origin=replace(new.origin, version=previous.origin.version))
    return previous.origin.version if same == previous else previous.origin.version + 1


def _finish(draft: SessionDescription, previous: SessionDescription | None) -> SessionDescription:
    if previous is not None:
        draft = replace(draft, origin=replace(draft.origin, session_id=previous.origin.session_id))
    return replace(draft, origin=replace(draft.origin, version=_version_for(draft, previous)))


def _audio_section(
    port: int,
    formats: Sequence[tuple[int, str, str | None]],
    ptime: int,
    direction: Direction,
) -> MediaDescription:
    attributes: list[Attribute] = []
    for pt, rtpmap, fmtp in formats:
        attributes.append(Attribute("rtpmap", f"{pt} {rtpmap}"))
        if fmtp is not None:
            attributes.append(Attribute("fmtp", f"{pt} {fmtp}"))
    attributes += [Attribute("ptime", str(ptime)), Attribute(direction.value)]
    return MediaDescription(
        media="audio",
        port=port,
        proto="RTP/AVP",
        formats=tuple(str(pt) for pt, _, _ in formats),
        attributes=tuple(attributes),
    )


def _new_session_id() -> str:
    return str(random.SystemRandom().getrandbits(62))


def make_offer(
    *,
    address: str,
    port: int,
    codecs: Sequence[Codec] = (PCMU, PCMA),
    dtmf_payload_type: int | None = DEFAULT_DTMF_PAYLOAD_TYPE,
    ptime: int = 20,
    direction: Direction = Direction.SENDRECV,
    previous: SessionDescription | None = None,
    username: str = "qconnect",
    session_name: str = "qconnect",
) -> SessionDescription:
    """An offer for one audio stream; pass the last description we sent as `previous` for a
    re-offer so the session id is kept and the version goes up (RFC 3264 8).

    Hold the modern way with ``direction=Direction.SENDONLY`` (RFC 3264 8.4).
    """
    if not codecs:
        raise SdpError("an offer needs at least one codec", status=500)
    formats: list[tuple[int, str, str | None]] = [
        (c.payload_type, f"{c.name}/{c.clock_rate}", None) for c in codecs
    ]
    if dtmf_payload_type is not None:
        formats.append((dtmf_payload_type, f"{TELEPHONE_EVENT}/8000", "0-16"))
    draft = SessionDescription(
        origin=Origin(username, _new_session_id(), 0, address, addr_type=_addr_type(address)),
        session_name=session_name,
        connection=Connection(address, addr_type=_addr_type(address)),
        media=(_audio_section(port, formats, ptime, direction),),
    )
    return _finish(draft, previous)


def _addr_type(address: str) -> str:
    return "IP6" if ":" in address else "IP4"


def _matching_codec(rtpmap: RtpMap, codecs: Sequence[Codec]) -> Codec | None:
    for codec in codecs:
        if rtpmap.encoding.upper() == codec.name.upper() and rtpmap.clock_rate == codec.clock_rate:
            return codec
    return None


@dataclass(frozen=True, slots=True)
class _Choice:
    index: int
    payload_type: int
    codec: Codec
    dtmf_payload_type: int | None
    dtmf_fmtp: str | None


def _choose(media: MediaDescription, index: int, codecs: Sequence[Codec]) -> _Choice | None:
    if media.media != "audio" or media.port == 0 or media.proto.upper() not in _AUDIO_PROTOS:
        return None
    maps = media.rtpmaps
    chosen: tuple[int, Codec] | None = None
    dtmf: int | None = None
    for fmt in media.formats:
        if not fmt.isdigit() or int(fmt) not in maps:
            continue
        rtpmap = maps[int(fmt)]
        codec = _matching_codec(rtpmap, codecs)
        if chosen is None and codec is not None:
            chosen = (rtpmap.payload_type, codec)
        if (
            dtmf is None
            and rtpmap.encoding.lower() == TELEPHONE_EVENT
            and rtpmap.clock_rate == 8000
        ):
            dtmf = rtpmap.payload_type
    if chosen is None:
        return None
    fmtp = media.fmtps.get(dtmf) if dtmf is not None else None
    return _Choice(index, chosen[0], chosen[1], dtmf, fmtp)


def make_answer(
    offer: SessionDescription,
    *,
    address: str,
    port: int,
    codecs: Sequence[Codec] = (PCMU, PCMA),
    direction: Direction = Direction.SENDRECV,
    ptime: int = 20,
    dtmf: bool = True,
    previous: SessionDescription | None = None,
    username: str = "qconnect",
    session_name: str = "qconnect",
) -> tuple[SessionDescription, Negotiated]:
    """Answer `offer` (RFC 3264 6): the first audio stream with a codec in common is accepted,
    every other m= line is rejected with port 0. Raises `SdpError` (status 488) when no
    stream is acceptable. `direction` is what we want locally (e.g. SENDONLY to hold)."""
    choice = None
    for index, media in enumerate(offer.media):
        choice = _choose(media, index, codecs)
        if choice is not None:
            break
    if choice is None:
        raise SdpError("no audio stream with a codec in common", status=488)
    offered = offer.media[choice.index]
    connection = offer.connection_of(offered)
    if connection is None:
        raise SdpError("offer has no c= line for its audio stream")
    remote_direction = offer.direction_of(offered)
    held_by_address = connection.is_null
    # c=0.0.0.0 means "do not send to me" whatever the attribute says (RFC 3264 8.4).
    effective = remote_direction.restrict(
        Direction.from_flags(send=True, receive=not held_by_address)
    )
    ours = direction.restrict(effective.reversed())
    dtmf_pt = choice.dtmf_payload_type if dtmf else None
    formats: list[tuple[int, str, str | None]] = [
        (choice.payload_type, f"{choice.codec.name}/{choice.codec.clock_rate}", None)
    ]
    if dtmf_pt is not None:
        formats.append((dtmf_pt, f"{TELEPHONE_EVENT}/8000", choice.dtmf_fmtp or "0-15"))
    sections = []
    for index, media in enumerate(offer.media):
        if index == choice.index:
            sections.append(_audio_section(port, formats, ptime, ours))
        else:
            # RFC 3264 6: a rejected stream keeps its place with port 0.
            sections.append(MediaDescription(media.media, 0, media.proto, media.formats))
    draft = SessionDescription(
        origin=Origin(username, _new_session_id(), 0, address, addr_type=_addr_type(address)),
        session_name=session_name,
        connection=Connection(address, addr_type=_addr_type(address)),
        media=tuple(sections),
    )
    negotiated = Negotiated(
        remote_address=None if held_by_address else connection.address.split("/")[0],
        remote_port=offered.port,
        payload_type=choice.payload_type,
        codec=choice.codec,
        dtmf_payload_type=dtmf_pt,
        ptime=offered.ptime or 20,
        direction=ours,
        remote_direction=remote_direction,
        is_hold=not effective.receives,
    )
    return _finish(draft, previous), negotiated


def negotiate_answer(
    offer: SessionDescription,
    answer: SessionDescription,
    *,
    codecs: Sequence[Codec] = (PCMU, PCMA),
) -> Negotiated:
    """The offerer's side: what the answer to our `offer` settled on (RFC 3264 7)."""
    if len(answer.media) != len(offer.media):
        raise SdpError("answer does not have one m= line per offered stream", status=488)
    for index, media in enumerate(answer.media):
        ours = offer.media[index]
        if media.port == 0 or ours.port == 0:
            continue
        choice = _choose(media, index, codecs)
        if choice is None:
            continue
        connection = answer.connection_of(media)
        if connection is None:
            raise SdpError("answer has no c= line for its audio stream")
        offered_direction = offer.direction_of(ours)
        remote_direction = answer.direction_of(media)
        held_by_address = connection.is_null
        effective = remote_direction.restrict(
            Direction.from_flags(send=True, receive=not held_by_address)
        )
        return Negotiated(
            remote_address=None if held_by_address else connection.address.split("/")[0],
            remote_port=media.port,
            payload_type=choice.payload_type,
            codec=choice.codec,
            dtmf_payload_type=choice.dtmf_payload_type,
            ptime=media.ptime or 20,
            direction=offered_direction.restrict(effective.reversed()),
            remote_direction=remote_direction,
            # Only a refusal we did not ask for is the far end holding us.
            is_hold=offered_direction.sends and not effective.receives,
        )
    raise SdpError("answer accepted no audio stream with a codec we offered", status=488)


__all__ = [
    "DEFAULT_DTMF_PAYLOAD_TYPE",
    "PCMA",
    "PCMU",
    "TELEPHONE_EVENT",
    "Attribute",
    "Codec",
    "Connection",
    "Direction",
    "MediaDescription",
    "Negotiated",
    "Origin",
    "RtpMap",
    "SdpError",
    "SessionDescription",
    "Timing",
    "make_answer",
    "make_offer",
    "negotiate_answer",
]
