"""Phone-to-phone calls through the switch (issue 2 item 7): two legs, bridged media.

A registered phone calls another registered user by name (`sip:maria@switch`). The switch
answers as two legs with their own dialogs, propagates ringing, answer, CANCEL and BYE, and
cleans up both legs when either ends or its media goes silent.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass, field

from telephony.sip.headers import NameAddr
from telephony.sip.message import Headers, Request, Response, make_response
from telephony.sip.transaction import new_call_id
from telephony.sip.uri import SipUri
from telephony.switch.endpoint import Incoming, SipEndpoint
from telephony.switch.leg import IncomingLeg, Leg, LegState, OutgoingLeg
from telephony.switch.registrar import Binding
from telephony.switch.rtp_ports import MediaSocket, PortRange
from telephony.transport.base import Address

log = logging.getLogger("qconnect.b2bua")


def rewrite_sdp(body: bytes, host: str, port: int) -> bytes:
    """Point an SDP's connection and audio port at the switch, keeping codecs and
    direction, so both phones send their RTP to us. `c=0.0.0.0` (old-style hold) is kept."""
    text = body.decode("utf-8", "replace")
    text = re.sub(r"^c=IN IP4 (?!0\.0\.0\.0)\S+", f"c=IN IP4 {host}", text, flags=re.M)
    text = re.sub(r"^o=(\S+ \S+ \S+) IN IP4 \S+", rf"o=\1 IN IP4 {host}", text, flags=re.M)
    text = re.sub(r"^m=audio \d+", f"m=audio {port}", text, flags=re.M)
    text = re.sub(r"^a=rtcp:.*\r?\n", "", text, flags=re.M)
    return text.encode()


def sdp_audio_address(body: bytes) -> tuple[str, int] | None:
    text = body.decode("utf-8", "replace")
    conn = re.search(r"^c=IN IP4 (\S+)", text, flags=re.M)
    media = re.search(r"^m=audio (\d+)", text, flags=re.M)
    if conn is None or media is None:
        return None
    return conn.group(1), int(media.group(1))


@dataclass(eq=False)
class Call:
    """Two legs of one phone-to-phone call, with their RTP relayed between them."""

    caller: IncomingLeg
    callee: OutgoingLeg
    started: float = 0.0
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @property
    def legs(self) -> tuple[Leg, Leg]:
        return (self.caller, self.callee)

    def other(self, leg: Leg) -> Leg:
        return self.callee if leg is self.caller else self.caller


class B2bua:
    """Routes INVITEs between registered users and owns the calls it set up."""

    def __init__(
        self,
        endpoint: SipEndpoint,
        ports: PortRange,
        *,
        bind: str,
        domain: str,
        rtp_timeout: float = 30.0,
    ) -> None:
        self.endpoint = endpoint
        self.ports = ports
        self.bind = bind
        self.domain = domain
        self.rtp_timeout = rtp_timeout
        self.calls: set[Call] = set()
        self.legs_by_dialog: dict[tuple[str, str], Leg] = {}  # (Call-ID, our tag)
        self.pending: dict[str, IncomingLeg] = {}  # INVITE branch of unanswered callers

    # --- routing ---

    async def place_call(self, incoming: Incoming, caller_user: str, bindings: list[Binding]) -> None:
        request = incoming.request
        target = bindings[0]
        a_media = MediaSocket(self.ports, self.bind, f"{caller_user}-in")
        b_media = MediaSocket(self.ports, self.bind, f"{target.user}-out")
        try:
            await a_media.open()
            await b_media.open()
        except RuntimeError:
            a_media.close()
            b_media.close()
            assert incoming.transaction is not None
            self.endpoint.respond(incoming.transaction, make_response(request, 503, "No RTP ports free"))
            return
        caller = IncomingLeg(self.endpoint, a_media, caller_user, incoming)
        self.legs_by_dialog[(caller.call_id, caller.local_tag)] = caller
        self.pending[request.top_via.branch or request.call_id] = caller
        callee = OutgoingLeg(self.endpoint, b_media, target.user, Address(*target.source))
        call = Call(caller, callee, started=self.endpoint.now())
        self.calls.add(call)
        remote = sdp_audio_address(request.body) if request.body else None
        if remote is not None:
            a_media.set_remote(*remote)
        # The plain relay: what one phone sends, the other gets, untouched (bit-exact).
        a_media.on_packet = b_media.send
        b_media.on_packet = a_media.send
        for leg in call.legs:
            leg.on_bye = lambda leg, call=call: self._leg_hung_up(call, leg)
            leg.on_reinvite = lambda leg, req, call=call: self._reinvite(call, leg, req)
        callee.on_ringing = lambda response: caller.ringing(180 if response.status == 180 else 183)
        log.info(
            "call %s: %s -> %s at %s (%s)",
            request.call_id, caller_user, target.user, target.contact.uri, target.source,
        )
        invite = self._outgoing_invite(request, caller_user, target, b_media.port)
        response = await callee.call(invite)
        self.pending.pop(request.top_via.branch or request.call_id, None)
        if callee.dialog is not None:
            self.legs_by_dialog[(callee.call_id, callee.dialog.local_tag)] = callee
        if caller.state is LegState.ENDED:
            # The caller cancelled while we were waiting; callee's late 2xx was BYEd.
            await self._end(call, "caller cancelled")
            return
        if not response.is_success:
            status = response.status if response.status not in (401, 407) else 480
            caller.reject(status, response.reason)
            await self._end(call, f"callee {response.status}")
            return
        remote = sdp_audio_address(response.body)
        if remote is not None:
            b_media.set_remote(*remote)
        caller.answer(rewrite_sdp(response.body, self.endpoint.advertise, a_media.port))
        call.tasks.append(asyncio.get_running_loop().create_task(self._watch_media(call)))

    def _outgoing_invite(self, request: Request, caller_user: str, target: Binding, port: int) -> Request:
        caller_from = request.from_
        uri = target.contact.uri
        from_ = NameAddr(
            uri=SipUri(user=caller_user, host=self.domain),
            display_name=caller_from.display_name or caller_user,
            params=(("tag", self.endpoint.new_tag()),),
        )
        to = NameAddr(uri=SipUri(user=target.user, host=self.domain))
        transport = target.source[0]
        headers = Headers.of(
            ("Via", str(self.endpoint.via(transport))),
            ("Max-Forwards", "70"),
            ("From", str(from_)),
            ("To", str(to)),
            ("Call-ID", new_call_id(self.endpoint.advertise)),
            ("CSeq", "1 INVITE"),
            ("Contact", str(self.endpoint.contact(transport))),
            ("Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE"),
        )
        body = rewrite_sdp(request.body, self.endpoint.advertise, port) if request.body else b""
        invite = Request(method="INVITE", uri=uri, headers=headers)
        return invite.with_body(body, "application/sdp") if body else invite

    # --- in-dialog and cancel ---

    def leg_for(self, request: Request) -> Leg | None:
        tag = request.to.tag
        if tag is None:
            return None
        return self.legs_by_dialog.get((request.call_id, tag))

    def cancel(self, branch: str) -> bool:
        caller = self.pending.pop(branch, None)
        if caller is None:
            return False
        caller.cancelled()
        for call in self.calls:
            if call.caller is caller:
                asyncio.get_running_loop().create_task(call.callee.hangup("caller cancelled"))
        return True

    def _reinvite(self, call: Call, leg: Leg, request: Request) -> Response:
        """A phone re-offered (its hold button, a codec change): answer it ourselves with our
        address, and tell the other phone nothing — the relay keeps the other leg untouched."""
        remote = sdp_audio_address(request.body) if request.body else None
        if remote is not None:
            leg.media.set_remote(*remote)
        body = request.body or b""
        answer = rewrite_sdp(_mirror_direction(body), self.endpoint.advertise, leg.media.port)
        return make_response(request, 200, body=answer, content_type="application/sdp")

    def _leg_hung_up(self, call: Call, leg: Leg) -> None:
        asyncio.get_running_loop().create_task(self._end(call, f"{leg.party} hung up"))

    async def _end(self, call: Call, reason: str) -> None:
        if call not in self.calls:
            return
        self.calls.discard(call)
        log.info("call %s ended: %s", call.caller.call_id, reason)
        for task in call.tasks:
            if task is not asyncio.current_task():
                task.cancel()
        await asyncio.gather(*(leg.hangup(reason) for leg in call.legs), return_exceptions=True)
        for key, leg in list(self.legs_by_dialog.items()):
            if leg in call.legs:
                del self.legs_by_dialog[key]

    async def _watch_media(self, call: Call) -> None:
        # Both legs silent for rtp_timeout: the phones are gone (crashed, unplugged).
        while True:
            await asyncio.sleep(min(1.0, self.rtp_timeout / 4))
            now = self.endpoint.now()
            last = max(
                (leg.media.last_received or call.started) for leg in call.legs
            )
            if now - last > self.rtp_timeout:
                await self._end(call, f"no RTP for {self.rtp_timeout:.0f} s")
                return

    async def close(self) -> None:
        await asyncio.gather(*(self._end(call, "switch stopping") for call in list(self.calls)))


_MIRROR = {"sendonly": "recvonly", "recvonly": "sendonly", "inactive": "inactive", "sendrecv": "sendrecv"}


def _mirror_direction(body: bytes) -> bytes:
    """RFC 3264 6.1: answer sendonly with recvonly and so on."""
    return re.sub(
        rb"^a=(sendonly|recvonly|inactive|sendrecv)",
        lambda m: b"a=" + _MIRROR[m.group(1).decode()].encode(),
        body,
        flags=re.M,
    )
