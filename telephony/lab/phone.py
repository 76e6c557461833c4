"""Scripted phones: SIP user agents on qconnect's own stack, many per process.

A `Phone` registers (digest), calls, answers, hangs up, holds, sends DTMF, plays audio into a
call and records what it hears. Recordings are aligned to the RTP timeline: a 20 ms packet
that never came is written as 20 ms of silence, so "heard X at t" means wall-clock t.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from telephony.sip.dialog import Dialog
from telephony.sip.digest import authorization_header, pick_challenge
from telephony.sip.headers import NameAddr
from telephony.sip.message import Headers, Request, Response, make_response
from telephony.sip.transaction import ClientTransaction, ServerTransaction, new_call_id
from telephony.sip.uri import SipUri
from telephony.switch.endpoint import Incoming, SipEndpoint
from telephony.transport.base import Address

from .media import CallMedia

log = logging.getLogger("qconnect.lab.phone")

ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE"


class CallFailed(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason


class CallState(enum.Enum):
    RINGING = "ringing"
    ESTABLISHED = "established"
    ENDED = "ended"


@dataclass(eq=False)
class PhoneCall:
    phone: Phone
    invite: Request
    outgoing: bool
    media: CallMedia
    state: CallState = CallState.RINGING
    dialog: Dialog | None = None
    tx: ServerTransaction | ClientTransaction | None = None  # the INVITE's transaction
    local_tag: str = ""
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    established: asyncio.Event = field(default_factory=asyncio.Event)
    end_reason: str = ""
    remote_identity: NameAddr | None = None
    dtmf_received: list[str] = field(default_factory=list)

    @property
    def call_id(self) -> str:
        return self.invite.call_id

    # --- answering an incoming call ---

    def ring(self) -> None:
        assert not self.outgoing
        response = make_response(self.invite, 180, to_tag=self.local_tag)
        self.phone.endpoint.respond(
            self._server_tx(), response.with_header("Contact", str(self.phone.contact))
        )

    async def answer(self) -> None:
        assert not self.outgoing and self.state is CallState.RINGING
        await self.media.start()
        answer = self.media.answer(self.invite.body)
        response = make_response(
            self.invite,
            200,
            to_tag=self.local_tag,
            headers=(("Contact", str(self.phone.contact)), ("Allow", ALLOW)),
            body=answer,
            content_type="application/sdp",
        )
        self.phone.endpoint.respond(self._server_tx(), response)
        self.dialog = Dialog.from_uas(self.invite, response)
        self._established()

    def reject(self, status: int = 486) -> None:
        assert not self.outgoing
        self.phone.endpoint.respond(
            self._server_tx(), make_response(self.invite, status, to_tag=self.local_tag)
        )
        self._end(f"rejected {status}")

    def _server_tx(self) -> ServerTransaction:
        assert isinstance(self.tx, ServerTransaction)
        return self.tx

    # --- in-call actions ---

    async def hangup(self) -> None:
        if self.state is CallState.ENDED:
            return
        if self.dialog is None:
            self._end("hangup before answer")
            return
        self._end("hangup")
        await self.phone._send_in_dialog(self, "BYE")

    async def hold(self) -> Response:
        """The phone's own hold button: re-INVITE with a=sendonly (RFC 3264 8.4)."""
        self.media.direction = "sendonly"
        return await self.phone._send_in_dialog(self, "INVITE", self.media.offer())

    async def resume(self) -> Response:
        self.media.direction = "sendrecv"
        return await self.phone._send_in_dialog(self, "INVITE", self.media.offer())

    def send_dtmf(self, digits: str) -> None:
        """RFC 4733 telephone-events in the RTP stream."""
        self.media.send_dtmf(digits)

    async def send_info_dtmf(self, digit: str, duration_ms: int = 160) -> Response:
        """The SIP INFO way (application/dtmf-relay), as some phones and gateways do."""
        body = f"Signal={digit}\r\nDuration={duration_ms}\r\n".encode()
        return await self.phone._send_in_dialog(self, "INFO", body, "application/dtmf-relay")

    async def wait_ended(self, timeout: float = 30.0) -> str:
        await asyncio.wait_for(self.ended.wait(), timeout)
        return self.end_reason

    def heard(self) -> npt.NDArray[np.int16]:
        """What this phone heard so far, 8 kHz mono, aligned to the call's start."""
        return self.media.heard()

    def _established(self) -> None:
        self.state = CallState.ESTABLISHED
        self.established.set()

    def _end(self, reason: str) -> None:
        if self.state is CallState.ENDED:
            return
        self.state = CallState.ENDED
        self.end_reason = reason
        self.media.stop()
        self.ended.set()
        log.info("%s: call %s ended (%s)", self.phone.user, self.call_id, reason)


class Phone:
    """A SIP phone registered with the switch."""

    def __init__(
        self,
        user: str,
        password: str,
        registrar: Address,
        *,
        bind: str = "127.0.0.1",
        domain: str | None = None,
        auto_answer: bool = False,
        answer_delay: float = 0.0,
    ) -> None:
        self.user = user
        self.password = password
        self.registrar = registrar
        self.bind = bind
        self.domain = domain or registrar.host
        self.auto_answer = auto_answer
        self.answer_delay = answer_delay
        self.endpoint = SipEndpoint(advertise=bind, on_request=self._on_request)
        self.endpoint.on_cancel = self._on_cancel
        self.incoming: asyncio.Queue[PhoneCall] = asyncio.Queue()
        self.calls: dict[str, PhoneCall] = {}
        self.on_call: Callable[[PhoneCall], None] | None = None
        self._cseq = 0
        self._register_call_id = new_call_id(bind)
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def aor(self) -> SipUri:
        return SipUri(user=self.user, host=self.domain)

    @property
    def contact(self) -> NameAddr:
        return self.endpoint.contact(self.registrar.transport, user=self.user)

    async def start(self) -> None:
        await self.endpoint.start(self.bind, 0, (self.registrar.transport,))

    async def stop(self) -> None:
        for call in list(self.calls.values()):
            if call.state is CallState.ESTABLISHED:
                await call.hangup()
            call.media.stop()
        self.endpoint.close()

    # --- registration ---

    async def register(self, expires: int = 300, password: str | None = None) -> Response:
        """REGISTER, answering one digest challenge. Returns the final response."""
        self._cseq += 1
        request = self._register_request(expires, self._cseq)
        response = await self._send(request)
        if response.status in (401, 407):
            challenge = pick_challenge(
                response.headers.lines(
                    "WWW-Authenticate" if response.status == 401 else "Proxy-Authenticate"
                )
            )
            if challenge is None:
                return response
            self._cseq += 1
            auth = authorization_header(
                challenge,
                method="REGISTER",
                uri=str(request.uri),
                username=self.user,
                password=password if password is not None else self.password,
            )
            header = "Authorization" if response.status == 401 else "Proxy-Authorization"
            request = self._register_request(expires, self._cseq).with_header(header, auth)
            response = await self._send(request)
        return response

    def _register_request(self, expires: int, cseq: int) -> Request:
        headers = Headers.of(
            ("Via", str(self.endpoint.via(self.registrar.transport))),
            ("Max-Forwards", "70"),
            ("From", str(NameAddr(uri=self.aor, params=(("tag", self.endpoint.new_tag()),)))),
            ("To", str(NameAddr(uri=self.aor))),
            ("Call-ID", self._register_call_id),
            ("CSeq", f"{cseq} REGISTER"),
            ("Contact", str(self.contact)),
            ("Expires", str(expires)),
        )
        return Request(method="REGISTER", uri=SipUri(host=self.domain), headers=headers)

    async def _send(self, request: Request) -> Response:
        _, future = self.endpoint.request(request, self.registrar)
        return await future

    # --- calling ---

    async def call(self, target: str, *, timeout: float = 30.0) -> PhoneCall:
        """INVITE `target` (a user name or a number) and wait for the answer.

        Raises CallFailed with the final status when the call is not answered."""
        media = CallMedia(self.bind, name=f"{self.user}")
        await media.start()
        uri = SipUri(user=target, host=self.domain)
        invite = self._invite(uri, media.offer(), 1)
        call = PhoneCall(self, invite, outgoing=True, media=media, local_tag=invite.from_.tag or "")
        self.calls[invite.call_id] = call
        response = await self._invite_transaction(call, invite, timeout)
        if response.status in (401, 407):
            challenge = pick_challenge(
                response.headers.lines(
                    "WWW-Authenticate" if response.status == 401 else "Proxy-Authenticate"
                )
            )
            if challenge is None:
                raise CallFailed(response.status, response.reason)
            auth = authorization_header(
                challenge, method="INVITE", uri=str(uri), username=self.user, password=self.password
            )
            header = "Authorization" if response.status == 401 else "Proxy-Authorization"
            invite = self._invite(
                uri, media.offer(), 2, call_id=invite.call_id, from_tag=call.local_tag
            )
            invite = invite.with_header(header, auth)
            call.invite = invite
            response = await self._invite_transaction(call, invite, timeout)
        if not response.is_success:
            call._end(f"{response.status} {response.reason}")
            raise CallFailed(response.status, response.reason)
        call.dialog = Dialog.from_uac(invite, response)
        ack = call.dialog.create_ack(
            invite, response, via=self.endpoint.via(self.registrar.transport)
        )
        assert isinstance(call.tx, ClientTransaction)
        self.endpoint.send_ack(call.tx, ack, self.registrar)
        call.media.apply_answer(response.body)
        call.remote_identity = response.to
        call._established()
        return call

    async def _invite_transaction(
        self, call: PhoneCall, invite: Request, timeout: float
    ) -> Response:
        tx, future = self.endpoint.request(invite, self.registrar)
        call.tx = tx
        try:
            return await asyncio.wait_for(asyncio.shield(future), timeout)
        except TimeoutError:
            self.endpoint.cancel(tx)
            return await asyncio.wait_for(future, 40)

    async def cancel(self, call: PhoneCall) -> None:
        """CANCEL an outgoing call that is still ringing (RFC 3261 9.1)."""
        assert isinstance(call.tx, ClientTransaction)
        self.endpoint.cancel(call.tx)

    def _invite(
        self,
        uri: SipUri,
        sdp: bytes,
        cseq: int,
        *,
        call_id: str | None = None,
        from_tag: str | None = None,
    ) -> Request:
        headers = Headers.of(
            ("Via", str(self.endpoint.via(self.registrar.transport))),
            ("Max-Forwards", "70"),
            (
                "From",
                str(
                    NameAddr(
                        uri=self.aor,
                        display_name=self.user.title(),
                        params=(("tag", from_tag or self.endpoint.new_tag()),),
                    )
                ),
            ),
            ("To", str(NameAddr(uri=uri))),
            ("Call-ID", call_id or new_call_id(self.bind)),
            ("CSeq", f"{cseq} INVITE"),
            ("Contact", str(self.contact)),
            ("Allow", ALLOW),
        )
        return Request(method="INVITE", uri=uri, headers=headers).with_body(sdp, "application/sdp")

    async def _send_in_dialog(
        self,
        call: PhoneCall,
        method: str,
        body: bytes = b"",
        content_type: str = "application/sdp",
    ) -> Response:
        assert call.dialog is not None
        request = call.dialog.create_request(
            method,
            via=self.endpoint.via(self.registrar.transport),
            body=body,
            content_type=content_type if body else None,
        )
        if method == "INVITE":
            request = request.with_header("Contact", str(self.contact))
        tx, future = self.endpoint.request(request, self.registrar)
        response = await future
        if call.dialog.terminated:
            return response
        call.dialog.update_from_response(response)
        if method == "INVITE" and response.is_success:
            ack = call.dialog.create_ack(
                request, response, via=self.endpoint.via(self.registrar.transport)
            )
            self.endpoint.send_ack(tx, ack, self.registrar)
            call.media.apply_answer(response.body)
        return response

    # --- requests from the switch ---

    def _on_request(self, incoming: Incoming) -> None:
        request = incoming.request
        tx = incoming.transaction
        call = self.calls.get(request.call_id)
        if request.method == "ACK":
            return
        assert tx is not None
        if request.method == "INVITE" and call is None:
            self._incoming_call(incoming)
            return
        if call is None:
            self.endpoint.respond(tx, make_response(request, 481))
            return
        if call.dialog is not None and (error := call.dialog.receive_request(request)) is not None:
            self.endpoint.respond(tx, make_response(request, error))
            return
        match request.method:
            case "BYE":
                self.endpoint.respond(tx, make_response(request, 200))
                call._end("remote hangup")
            case "INVITE":
                answer = call.media.answer(request.body) if request.body else call.media.offer()
                response = make_response(
                    request,
                    200,
                    headers=(("Contact", str(self.contact)),),
                    body=answer,
                    content_type="application/sdp",
                )
                self.endpoint.respond(tx, response)
                if call.dialog is not None:
                    call.dialog.update_from_local_response(response)
            case "INFO":
                self.endpoint.respond(tx, make_response(request, 200))
            case _:
                self.endpoint.respond(tx, make_response(request, 200))

    def _incoming_call(self, incoming: Incoming) -> None:
        request = incoming.request
        media = CallMedia(self.bind, name=self.user)
        call = PhoneCall(
            self,
            request,
            outgoing=False,
            media=media,
            tx=incoming.transaction,
            local_tag=self.endpoint.new_tag(),
            remote_identity=request.from_,
        )
        self.calls[request.call_id] = call
        call.ring()
        self.incoming.put_nowait(call)
        if self.on_call is not None:
            self.on_call(call)
        if self.auto_answer:
            task = asyncio.get_running_loop().create_task(self._auto_answer(call))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _auto_answer(self, call: PhoneCall) -> None:
        await asyncio.sleep(self.answer_delay)
        if call.state is CallState.RINGING:
            await call.answer()

    def _on_cancel(self, tx: ServerTransaction, cancel: Request) -> None:
        call = self.calls.get(cancel.call_id)
        if call is not None and call.state is CallState.RINGING:
            self.endpoint.respond(tx, make_response(call.invite, 487, to_tag=call.local_tag))
            call._end("cancelled")
