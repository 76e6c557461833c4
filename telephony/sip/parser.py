"""Bytes -> SIP messages (RFC 3261 sections 7, 19, 20, 25). First cut; hardened separately."""

from __future__ import annotations

import re

from telephony.sip.errors import SipParseError
from telephony.sip.headers import CSeq, NameAddr, Via, canonical_name
from telephony.sip.message import SIP_VERSION, Headers, Message, Request, Response
from telephony.sip.uri import AbsoluteUri, SipUri, Uri

MAX_MESSAGE_SIZE = 65_535

_TOKEN = re.compile(r"^[A-Za-z0-9\-.!%*_+`'~]+$")


def _split_params(text: str) -> tuple[tuple[str, str | None], ...]:
    out: list[tuple[str, str | None]] = []
    for part in text.split(";"):
        part = part.strip()
        if not part:
            continue
        if "=" in part:
            key, value = part.split("=", 1)
            out.append((key.strip(), value.strip()))
        else:
            out.append((part, None))
    return tuple(out)


def parse_uri(text: str) -> Uri:
    text = text.strip()
    scheme, sep, rest = text.partition(":")
    if not sep or not scheme:
        raise SipParseError(f"Malformed URI {text!r}")
    lscheme = scheme.lower()
    if lscheme not in ("sip", "sips"):
        return AbsoluteUri(scheme=scheme, opaque=rest)
    headers: tuple[tuple[str, str], ...] = ()
    if "?" in rest:
        rest, hpart = rest.split("?", 1)
        headers = tuple(
            (k, v) for k, _, v in (h.partition("=") for h in hpart.split("&") if h)
        )
    user = password = None
    if "@" in rest:
        userinfo, rest = rest.rsplit("@", 1)
        user, _, pw = userinfo.partition(":")
        password = pw if _ else None
    hostport, _, params = rest.partition(";")
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            raise SipParseError(f"Malformed IPv6 reference in {text!r}")
        host, portpart = hostport[1:end], hostport[end + 1 :]
        portpart = portpart[1:] if portpart.startswith(":") else portpart
    else:
        host, _, portpart = hostport.partition(":")
    if not host:
        raise SipParseError(f"URI without host {text!r}")
    port = None
    if portpart:
        if not portpart.isdigit() or int(portpart) > 65535:
            raise SipParseError(f"Bad port in URI {text!r}")
        port = int(portpart)
    return SipUri(
        scheme=lscheme, user=user, password=password, host=host, port=port,
        params=_split_params(params), headers=headers,
    )


def parse_via(text: str) -> Via:
    m = re.match(r"^\s*([^/\s]+)\s*/\s*([^/\s]+)\s*/\s*([^\s]+)\s+([^;]+)(.*)$", text)
    if not m:
        raise SipParseError(f"Malformed Via {text!r}")
    proto, version, transport, sent_by, params = m.groups()
    sent_by = sent_by.strip()
    if sent_by.startswith("["):
        end = sent_by.find("]")
        host, portpart = sent_by[1:end], sent_by[end + 2 :]
    else:
        host, _, portpart = sent_by.partition(":")
    port = int(portpart) if portpart.strip().isdigit() else None
    return Via(
        transport=transport.upper(), host=host.strip(), port=port,
        params=_split_params(params), protocol=f"{proto}/{version}",
    )


def parse_name_addr(text: str) -> NameAddr:
    text = text.strip()
    if "<" in text:
        lt = text.index("<")
        gt = text.find(">", lt)
        if gt < 0:
            raise SipParseError(f"Unclosed '<' in {text!r}")
        display = text[:lt].strip()
        if display.startswith('"') and display.endswith('"') and len(display) >= 2:
            display = display[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        return NameAddr(
            uri=parse_uri(text[lt + 1 : gt]),
            display_name=display or None,
            params=_split_params(text[gt + 1 :]),
        )
    uri, _, params = text.partition(";")
    return NameAddr(uri=parse_uri(uri), params=_split_params(params), bracketed=False)


def parse_cseq(text: str) -> CSeq:
    parts = text.split()
    if len(parts) != 2 or not parts[0].isdigit():
        raise SipParseError(f"Malformed CSeq {text!r}")
    return CSeq(int(parts[0]), parts[1])


def parse_message(data: bytes) -> Message:
    if len(data) > MAX_MESSAGE_SIZE:
        raise SipParseError("Message Too Large", 513)
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        head, sep, body = data.partition(b"\n\n")
    text = head.decode("utf-8", "surrogateescape")
    raw_lines = re.split(r"\r?\n", text.lstrip("\r\n"))
    if not raw_lines or not raw_lines[0]:
        raise SipParseError("Empty message")
    start, header_lines = raw_lines[0], raw_lines[1:]
    unfolded: list[str] = []
    for line in header_lines:
        if line[:1] in (" ", "\t") and unfolded:
            unfolded[-1] += " " + line.strip()
        else:
            unfolded.append(line)
    items: list[tuple[str, str]] = []
    for line in unfolded:
        name, colon, value = line.partition(":")
        if not colon or not _TOKEN.match(name.strip()):
            raise SipParseError(f"Malformed header line {line[:40]!r}")
        items.append((canonical_name(name), value.strip()))
    headers = Headers(tuple(items))
    length = headers.get("Content-Length")
    if length is not None:
        if not length.strip().isdigit():
            raise SipParseError("Bad Content-Length")
        n = int(length)
        if n > len(body):
            raise SipParseError("Content-Length larger than body")
        body = body[:n]
    if start.startswith("SIP/"):
        parts = start.split(" ", 2)
        if len(parts) < 2 or not parts[1].isdigit() or len(parts[1]) != 3:
            raise SipParseError("Malformed status line")
        return Response(
            status=int(parts[1]), reason=parts[2] if len(parts) > 2 else "",
            headers=headers, body=body, version=parts[0],
        )
    parts = start.split(" ")
    if len(parts) != 3:
        raise SipParseError("Malformed request line")
    method, uri, version = parts
    if version.upper() != SIP_VERSION:
        raise SipParseError("Version Not Supported", 505)
    return Request(method=method, uri=parse_uri(uri), headers=headers, body=body, version=version)


__all__ = ["MAX_MESSAGE_SIZE", "parse_cseq", "parse_message", "parse_name_addr", "parse_uri", "parse_via"]
