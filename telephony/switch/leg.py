"""A leg: one dialog between the switch and one phone, and that leg's RTP socket.

The switch is a B2BUA: every party of a call has its own leg (its own Call-ID, tags, CSeq
space and media port), and the layer above decides who hears whom. A leg speaks SIP for its
party: rings, answers, re-INVITEs, hangs up; it reports what the phone did through callbacks.
"""

from __future__ import annotations

import asyncio
import enum
import itertools
import logging
from collections.abc import Callable

from media.dtmf import DtmfError, parse_info_body
from media.sdp import SdpError
from telephony.sip.dialog import Dialog
from telephony.sip.headers import NameAddr
from telephony.sip.message import Headers, Request, Response, make_response
from telephony.sip.transaction import ClientTransaction, ServerTransaction, new_call_id
from telephony.sip.uri import Uri
from telephony.switch.endpoint import Incoming, SipEndpoint
from telephony.switch.media_engine import EngineLeg, MediaEngine
from telephony.switch.rtp_ports import PortsExhausted
from telephony.transport.base import Address

log = logging.getLogger("qconnect.leg")

_leg_numbers = itertools.count(1)


class LegState(enum.Enum):
    CALLING = "calling"  # INVITE sent / received, no answer yet
    EARLY = "early"  # ringing
    CONFIRMED = "confirmed"  # answered
    ENDED = "ended"


class Leg:
    """Common to incoming (UAS) and outgoing (UAC) legs."""

    direction = "?"

    def __init__(self, endpoint: SipEndpoint, media: EngineLeg, party: str, peer: Address) -> None:
        self.endpoint = endpoint
        self.media = media
        self.party = party
        self.peer = peer
        self.number = next(_leg_numbers)
        self.state = LegState.CALLING
        self.dialog: Dialog | None = None
        self.end_reason = ""
        self.ended = asyncio.Event()
        # What the phone did, for the layer above.
        self.on_bye: Callable[[Leg], None] = lambda leg: None
        self.on_reinvite: Callable[[Leg, Request], Response] | None = None
        self.on_info: Callable[[Leg, Request], None] = lambda leg, request: None

    @property
    def name(self) -> str:
        return f"leg{self.number}({self.direction} {self.party})"

    @property
    def call_id(self) -> str:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{self.name} {self.call_id} {self.state.value}>"

    # --- in-dialog requests from the phone ---

    def handle(self, incoming: Incoming) -> None:
        request = incoming.request
        tx = incoming.transaction
        if request.method == "ACK":
            self._acked(request)
            return
        assert tx is not None and self.dialog is not None
        error = self.dialog.receive_request(request)
        if error is not None:
            self.endpoint.respond(tx, make_response(request, error))
            return
        match request.method:
            case "BYE":
                self.endpoint.respond(tx, make_response(request, 200))
                log.info("%s %s: BYE from phone", self.name, self.call_id)
                self._finish("bye from phone")
                self.on_bye(self)
            case "INVITE" | "UPDATE" if request.body or request.method == "INVITE":
                response = self._answer_offer(request)
                self.endpoint.respond(tx, response)
                self.dialog.update_from_local_response(response)
            case "INFO" if request.content_type in ("application/dtmf-relay", "application/dtmf"):
                # SIP INFO DTMF: the same digit event as RFC 4733 in the media.
                try:
                    digit = parse_info_body(request.headers.get("Content-Type") or "", request.body)
                except DtmfError as exc:
                    self.endpoint.respond(tx, make_response(request, 400, str(exc)))
                    return
                self.endpoint.respond(tx, make_response(request, 200))
                log.info("%s %s: DTMF %s (INFO)", self.name, self.call_id, digit.digit)
                self.media.on_digit(digit)
            case "INFO":
                self.endpoint.respond(tx, make_response(request, 200))
                self.on_info(self, request)
            case "OPTIONS" | "UPDATE":
                self.endpoint.respond(tx, self._ok(request))
            case _:
                self.endpoint.respond(tx, make_response(request, 405, headers=(("Allow", _ALLOW),)))

    def answer_offer(self, request: Request) -> Response:
        """Answer a re-INVITE/UPDATE for our end of this leg's media (RFC 3264 8): a new
        address, codec or direction (the phone's hold button); no SDP -> we offer."""
        if not request.body:
            return make_response(
                request, 200, body=self.media.offer(), content_type="application/sdp"
            )
        try:
            answer = self.media.answer(request.body)
        except SdpError as exc:
            return make_response(request, exc.status, str(exc))
        return make_response(request, 200, body=answer, content_type="application/sdp")

    def _answer_offer(self, request: Request) -> Response:
        if self.on_reinvite is None:
            response = self.answer_offer(request)
        else:
            response = self.on_reinvite(self, request)
        if response.is_success:
            response = response.with_header(
                "Contact", str(self.endpoint.contact(self.peer.transport))
            )
        return response

    def _ok(self, request: Request) -> Response:
        return make_response(
            request,
            200,
            headers=(
                ("Contact", str(self.endpoint.contact(self.peer.transport))),
                ("Allow", _ALLOW),
            ),
        )

    def _acked(self, request: Request) -> None:
        pass

    # --- ending ---

    async def hangup(self, reason: str = "hangup") -> None:
        """BYE an answered leg (CANCEL/4xx for unanswered ones is the subclasses' job)."""
        if self.state is LegState.ENDED:
            return
        if self.state is not LegState.CONFIRMED or self.dialog is None:
            await self._abandon(reason)
            return
        self._finish(reason)
        bye = self.dialog.create_request("BYE", via=self.endpoint.via(self.peer.transport))
        log.info("%s %s: sending BYE (%s)", self.name, self.call_id, reason)
        _, future = self.endpoint.request(bye, self._target())
        try:
            await asyncio.wait_for(future, 40)
        except (TimeoutError, asyncio.CancelledError):
            pass

    async def _abandon(self, reason: str) -> None:
        self._finish(reason)

    def _target(self) -> Address:
        # Requests go to where the phone's messages come from (RFC 3581 spirit, and the
        # registrar stored the REGISTER's source), not to a Contact a NATed phone cannot reach.
        return self.peer

    def _finish(self, reason: str) -> None:
        if self.state is LegState.ENDED:
            return
        self.state = LegState.ENDED
        self.end_reason = reason
        self.media.close()
        self.ended.set()


_ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE"


class IncomingLeg(Leg):
    """The switch as UAS: a phone called us."""

    direction = "in"

    def __init__(
        self,
        endpoint: SipEndpoint,
        media: EngineLeg,
        party: str,
        incoming: Incoming,
    ) -> None:
        super().__init__(endpoint, media, party, incoming.source)
        assert incoming.transaction is not None
        self.invite = incoming.request
        self.transaction: ServerTransaction = incoming.transaction
        self.local_tag = endpoint.new_tag()
        self._acked_event = asyncio.Event()
        # A late offer (INVITE without SDP): our 200 offered, the phone answers in the ACK.
        self.on_ack_sdp: Callable[[bytes], None] = lambda body: None

    @property
    def call_id(self) -> str:
        return self.invite.call_id

    def ringing(self, status: int = 180) -> None:
        if self.state is not LegState.CALLING and self.state is not LegState.EARLY:
            return
        self.state = LegState.EARLY
        response = make_response(self.invite, status, to_tag=self.local_tag).with_header(
            "Contact", str(self.endpoint.contact(self.peer.transport))
        )
        self.endpoint.respond(self.transaction, response)

    def answer(self, sdp: bytes) -> None:
        response = make_response(
            self.invite,
            200,
            to_tag=self.local_tag,
            headers=(
                ("Contact", str(self.endpoint.contact(self.peer.transport))),
                ("Allow", _ALLOW),
            ),
            body=sdp,
            content_type="application/sdp",
        )
        self.dialog = Dialog.from_uas(self.invite, response)
        self.state = LegState.CONFIRMED
        self.endpoint.respond(self.transaction, response, on_no_ack=self._no_ack)
        log.info("%s %s: answered", self.name, self.call_id)

    def _no_ack(self) -> None:
        # RFC 3261 13.3.1.4: no ACK within 64*T1 (the layer re-sent the 2xx meanwhile) means
        # the phone is gone; end the call.
        log.warning("%s %s: no ACK for 200 OK; hanging up", self.name, self.call_id)
        asyncio.get_running_loop().create_task(self.hangup("no ACK"))
        self.on_bye(self)

    def _acked(self, request: Request) -> None:
        if not self._acked_event.is_set() and request.body and not self.invite.body:
            self.on_ack_sdp(request.body)
        self._acked_event.set()

    def reject(self, status: int, reason: str | None = None) -> None:
        if self.state is LegState.ENDED or self.state is LegState.CONFIRMED:
            return
        self.endpoint.respond(
            self.transaction, make_response(self.invite, status, reason, to_tag=self.local_tag)
        )
        log.info("%s %s: rejected %d %s", self.name, self.call_id, status, reason or "")
        self._finish(f"rejected {status}")

    def cancelled(self) -> None:
        """The phone sent CANCEL: answer its INVITE 487 (RFC 3261 9.2)."""
        self.reject(487, "Request Terminated")
        self.end_reason = "cancelled by caller"

    async def _abandon(self, reason: str) -> None:
        self.reject(480 if reason != "busy" else 486)


class OutgoingLeg(Leg):
    """The switch as UAC: we call a phone."""

    direction = "out"

    def __init__(
        self,
        endpoint: SipEndpoint,
        media: EngineLeg,
        party: str,
        destination: Address,
    ) -> None:
        super().__init__(endpoint, media, party, destination)
        self.invite: Request | None = None
        self.transaction: ClientTransaction | None = None
        self._final: asyncio.Future[Response] | None = None
        self.on_ringing: Callable[[Response], None] = lambda response: None

    @property
    def call_id(self) -> str:
        return self.invite.call_id if self.invite is not None else "-"

    async def call(self, invite: Request) -> Response:
        """Send the INVITE; returns the final response (2xx already ACKed, dialog set up)."""
        self.invite = invite
        self.transaction, self._final = self.endpoint.request(invite, self.peer, self._provisional)
        log.info("%s %s: INVITE %s via %s", self.name, self.call_id, invite.uri, self.peer)
        response = await self._final
        if self.state is LegState.ENDED:
            # Cancelled meanwhile; a 2xx that raced the CANCEL must still be ACKed and BYEd.
            if response.is_success:
                self.dialog = Dialog.from_uac(invite, response)
                self._send_ack(response)
                self.state = LegState.CONFIRMED
                await self._bye_after_race()
            return response
        if response.is_success:
            self.dialog = Dialog.from_uac(invite, response)
            self._send_ack(response)
            self.state = LegState.CONFIRMED
            log.info("%s %s: answered", self.name, self.call_id)
        else:
            log.info(
                "%s %s: failed %d %s", self.name, self.call_id, response.status, response.reason
            )
            self._finish(f"{response.status} {response.reason}")
        return response

    async def _bye_after_race(self) -> None:
        assert self.dialog is not None
        bye = self.dialog.create_request("BYE", via=self.endpoint.via(self.peer.transport))
        _, future = self.endpoint.request(bye, self._target())
        await future

    def _provisional(self, response: Response) -> None:
        if response.status > 100 and self.state is LegState.CALLING:
            self.state = LegState.EARLY
        if response.status > 100:
            self.on_ringing(response)

    def _send_ack(self, response: Response) -> None:
        assert self.dialog is not None and self.invite is not None
        assert self.transaction is not None
        ack = self.dialog.create_ack(
            self.invite, response, via=self.endpoint.via(self.peer.transport)
        )
        self.endpoint.send_ack(self.transaction, ack, self._target())

    async def _abandon(self, reason: str) -> None:
        if self.transaction is not None and self.state in (LegState.CALLING, LegState.EARLY):
            self.endpoint.cancel(self.transaction)
        self._finish(reason)


async def prepare_incoming(
    endpoint: SipEndpoint,
    engine: MediaEngine,
    legs: dict[tuple[str, str], Leg],
    incoming: Incoming,
    party: str,
    media_name: str,
) -> tuple[IncomingLeg, bytes] | None:
    """Take a phone's INVITE for the switch itself: an RTP port, the leg, and our SDP answer
    (or offer, for an INVITE without SDP, answered in the ACK). The caller answers with
    `leg.answer(sdp)` when it wants to. None when it was refused: 503 without RTP ports,
    488 when no codec fits (before anything rings)."""
    request = incoming.request
    assert incoming.transaction is not None
    try:
        media = await engine.open_leg(media_name)
    except PortsExhausted:
        endpoint.respond(incoming.transaction, make_response(request, 503, "No RTP ports free"))
        return None
    leg = IncomingLeg(endpoint, media, party, incoming)
    try:
        sdp = media.answer(request.body) if request.body else media.offer()
    except SdpError as exc:
        leg.reject(exc.status, str(exc))
        return None
    leg.on_ack_sdp = media.apply_answer
    legs[(leg.call_id, leg.local_tag)] = leg
    return leg, sdp


def build_invite(
    endpoint: SipEndpoint,
    uri: Uri,
    transport: str,
    *,
    from_: NameAddr,
    to: NameAddr,
    sdp: bytes,
    extra: tuple[tuple[str, str], ...] = (),
) -> Request:
    headers = Headers.of(
        ("Via", str(endpoint.via(transport))),
        ("Max-Forwards", "70"),
        ("From", str(from_)),
        ("To", str(to)),
        ("Call-ID", new_call_id(endpoint.advertise)),
        ("CSeq", "1 INVITE"),
        ("Contact", str(endpoint.contact(transport))),
        ("Allow", _ALLOW),
        *extra,
    )
    """A new INVITE from the switch (a new Call-ID: every leg is its own dialog)."""
    return Request(method="INVITE", uri=uri, headers=headers).with_body(sdp, "application/sdp")


def display_of(name_addr: NameAddr) -> str:
    return name_addr.display_name or (getattr(name_addr.uri, "user", None) or "")
