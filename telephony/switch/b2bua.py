"""Phone-to-phone calls through the switch (issue 2 item 7): two legs, bridged media.

A registered phone calls another registered user by name (`sip:maria@switch`). The switch
answers as two legs with their own dialogs, propagates ringing, answer, CANCEL and BYE, and
cleans up both legs when either ends or its media goes silent.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from dataclasses import dataclass
from pathlib import Path

from media.player import Clip
from media.sdp import SdpError
from telephony.sip.headers import NameAddr
from telephony.sip.message import Request, Response
from telephony.sip.uri import SipUri
from telephony.switch.endpoint import Incoming, SipEndpoint
from telephony.switch.leg import (
    IncomingLeg,
    Leg,
    LegState,
    OutgoingLeg,
    build_invite,
    prepare_incoming,
)
from telephony.switch.media_engine import MediaEngine, Playback
from telephony.switch.registrar import Binding
from telephony.switch.rtp_ports import PortsExhausted
from telephony.transport.base import Address

log = logging.getLogger("qconnect.b2bua")


@dataclass(eq=False)
class Call:
    """Two legs of one phone-to-phone call, bridged in the media engine."""

    caller: IncomingLeg
    callee: OutgoingLeg
    hold_music: Playback | None = None  # while one phone holds, the other hears music

    @property
    def legs(self) -> tuple[Leg, Leg]:
        return (self.caller, self.callee)

    def other(self, leg: Leg) -> Leg:
        return self.callee if leg is self.caller else self.caller


class B2bua:
    """Routes INVITEs between registered users and owns the calls it set up."""

    def __init__(
        self, endpoint: SipEndpoint, engine: MediaEngine, *, domain: str, hold_music: Path
    ) -> None:
        self.endpoint = endpoint
        self.engine = engine
        self.domain = domain
        self.hold_music = hold_music
        self.calls: set[Call] = set()
        self.legs_by_dialog: dict[tuple[str, str], Leg] = {}  # (Call-ID, our tag)
        self.pending: dict[str, IncomingLeg] = {}  # INVITE branch of unanswered callers

    # --- routing ---

    async def place_call(
        self, incoming: Incoming, caller_user: str, bindings: list[Binding]
    ) -> None:
        request = incoming.request
        assert incoming.transaction is not None
        target = bindings[0]
        prepared = await prepare_incoming(
            self.endpoint,
            self.engine,
            self.legs_by_dialog,
            incoming,
            caller_user,
            f"{caller_user}-in",
        )
        if prepared is None:
            return
        caller, answer = prepared
        a_media = caller.media
        try:
            b_media = await self.engine.open_leg(f"{target.user}-out")
        except PortsExhausted:
            caller.reject(503, "No RTP ports free")
            return
        self.pending[request.top_via.branch or request.call_id] = caller
        callee = OutgoingLeg(self.endpoint, b_media, target.user, Address(*target.source))
        call = Call(caller, callee)
        self.calls.add(call)
        for leg in call.legs:
            leg.on_bye = functools.partial(self._leg_hung_up, call)
            leg.on_reinvite = functools.partial(self._reinvite, call)
            leg.media.on_timeout = functools.partial(self._silent, call, leg)
        callee.on_ringing = lambda response: caller.ringing(180 if response.status == 180 else 183)
        log.info(
            "call %s: %s -> %s at %s (%s)",
            request.call_id,
            caller_user,
            target.user,
            target.contact.uri,
            target.source,
        )
        invite = self._outgoing_invite(request, caller_user, target, b_media.offer())
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
        try:
            b_media.apply_answer(response.body)
        except (SdpError, ValueError) as exc:
            log.warning("call %s: callee's answer unusable (%s)", request.call_id, exc)
            caller.reject(488, "Not Acceptable Here")
            await self._end(call, "callee SDP unusable")
            return
        self.engine.connect(a_media, b_media)
        caller.answer(answer)

    def _outgoing_invite(
        self, request: Request, caller_user: str, target: Binding, sdp: bytes
    ) -> Request:
        from_ = NameAddr(
            uri=SipUri(user=caller_user, host=self.domain),
            display_name=request.from_.display_name or caller_user,
            params=(("tag", self.endpoint.new_tag()),),
        )
        to = NameAddr(uri=SipUri(user=target.user, host=self.domain))
        return build_invite(
            self.endpoint, target.contact.uri, target.source[0], from_=from_, to=to, sdp=sdp
        )

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
        """A phone re-offered: its hold button (sendonly/inactive), a resume, a new address.
        We answer for our end of its leg; while it holds, the other party hears music."""
        response = leg.answer_offer(request)
        if not response.is_success:
            return response
        other = call.other(leg)
        if leg.media.on_hold_by_phone and call.hold_music is None:
            log.info(
                "call %s: %s holds; %s hears hold music",
                call.caller.call_id,
                leg.party,
                other.party,
            )
            self.engine.disconnect(leg.media, other.media)
            call.hold_music = self.engine.play(other.media, Clip(self.hold_music), loop=True)
        elif not leg.media.on_hold_by_phone and call.hold_music is not None:
            log.info("call %s: %s resumes", call.caller.call_id, leg.party)
            call.hold_music.stop()
            call.hold_music = None
            self.engine.connect(leg.media, other.media)
        return response

    def _silent(self, call: Call, leg: Leg) -> None:
        if leg.media.on_hold_by_phone or leg.state is not LegState.CONFIRMED:
            return  # a holding phone may legitimately send nothing
        asyncio.get_running_loop().create_task(
            self._end(call, f"no RTP from {leg.party} for {self.engine.rtp_timeout:.0f} s")
        )

    def _leg_hung_up(self, call: Call, leg: Leg) -> None:
        asyncio.get_running_loop().create_task(self._end(call, f"{leg.party} hung up"))

    async def _end(self, call: Call, reason: str) -> None:
        if call not in self.calls:
            return
        self.calls.discard(call)
        log.info("call %s ended: %s", call.caller.call_id, reason)
        if call.hold_music is not None:
            call.hold_music.stop()
        await asyncio.gather(*(leg.hangup(reason) for leg in call.legs), return_exceptions=True)
        for key, leg in list(self.legs_by_dialog.items()):
            if leg in call.legs:
                del self.legs_by_dialog[key]

    async def close(self) -> None:
        await asyncio.gather(*(self._end(call, "switch stopping") for call in list(self.calls)))
