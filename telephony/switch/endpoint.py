"""The switch's SIP endpoint: transports + the sans-I/O transaction layer on one asyncio loop.

This is the thin asyncio shell around `telephony.sip.transaction.TransactionLayer` (the aioquic
pattern): feed it what the sockets receive, transmit what it wants sent, re-arm one timer.
Everything above (registrar, B2BUA legs) talks to it with requests, responses and futures.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from telephony.sip.errors import SipParseError, SipProtocolError
from telephony.sip.headers import NameAddr, Via
from telephony.sip.message import Message, Request, Response, make_response
from telephony.sip.parser import error_response_for, parse_message
from telephony.sip.transaction import (
    AckReceived,
    CancelReceived,
    ClientTransaction,
    InviteClientTransaction,
    RequestReceived,
    ResponseReceived,
    ServerTransaction,
    StrayResponse,
    TransactionLayer,
    TransactionTerminated,
    TransactionTimeout,
    new_branch,
)
from telephony.sip.uri import SipUri
from telephony.transport.base import Address, Transport
from telephony.transport.tcp import TcpTransport
from telephony.transport.udp import UdpTransport

log = logging.getLogger("qconnect.sip")

SERVER_NAME = "qconnect/0.1"
ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, REGISTER"


@dataclass(frozen=True, slots=True)
class Incoming:
    """A new request for the layer above, with the server transaction to answer it on.

    `transaction` is None for an ACK to a 2xx, which RFC 3261 17 keeps out of transactions.
    """

    request: Request
    source: Address
    transaction: ServerTransaction | None


class SipEndpoint:
    """Owns the sockets, the transaction layer and its timer."""

    def __init__(self, *, advertise: str, on_request: Callable[[Incoming], None]) -> None:
        self.advertise = advertise
        self.on_request = on_request
        self.on_cancel: Callable[[ServerTransaction, Request], None] = lambda tx, r: None
        self.layer = TransactionLayer()
        self.transports: dict[str, Transport] = {}
        # INVITE server transactions whose 2xx awaits an ACK: what to do if none comes.
        self._no_ack: dict[int, Callable[[], None]] = {}
        self._pending: dict[
            int, tuple[asyncio.Future[Response], Callable[[Response], None] | None]
        ] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.port = 0

    # --- life cycle ---

    async def start(
        self, bind: str, port: int, transports: tuple[str, ...] = ("udp", "tcp")
    ) -> None:
        self._loop = asyncio.get_running_loop()
        # Port 0: any free port, the same number for every transport; the UDP number the
        # kernel picks may be taken for TCP, so try a few.
        for attempt in range(1 if port else 20):
            try:
                self.port = await self._listen(bind, port, transports)
                break
            except OSError:
                for transport in self.transports.values():
                    transport.close()
                self.transports.clear()
                if port or attempt == 19:
                    raise
        log.info(
            "SIP listening on %s:%d (%s), advertising %s",
            bind,
            port,
            "+".join(transports),
            self.advertise,
        )

    async def _listen(self, bind: str, port: int, transports: tuple[str, ...]) -> int:
        if "udp" in transports:
            udp = UdpTransport(self._datagram)
            self.transports["udp"] = udp
            port = (await udp.start(bind, port)).port
        if "tcp" in transports:
            tcp = TcpTransport(self._datagram)
            self.transports["tcp"] = tcp
            port = (await tcp.start(bind, port)).port
        return port

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        for transport in self.transports.values():
            transport.close()
        for future, _ in self._pending.values():
            if not future.done():
                future.cancel()

    def now(self) -> float:
        assert self._loop is not None
        return self._loop.time()

    # --- addresses the switch puts in its own messages ---

    def via(self, transport: str) -> Via:
        return Via(
            transport=transport.upper(),
            host=self.advertise,
            port=self.port,
            params=(("branch", new_branch()), ("rport", None)),
        )

    def contact(self, transport: str, user: str = "qconnect") -> NameAddr:
        params: tuple[tuple[str, str | None], ...] = ()
        if transport != "udp":
            params = (("transport", transport),)
        return NameAddr(uri=SipUri(host=self.advertise, port=self.port, user=user, params=params))

    @staticmethod
    def new_tag() -> str:
        return secrets.token_hex(6)

    # --- receiving ---

    def _datagram(self, data: bytes, source: Address, transport: Transport) -> None:
        if not data.strip(b"\r\n"):
            # RFC 5626 keep-alive: a double CRLF is answered with a single one.
            if data == b"\r\n\r\n":
                transport.send(b"\r\n", source)
            return
        try:
            message = parse_message(data)
            if isinstance(message, Request):
                message = self._stamp_received(message, source)
        except SipParseError as exc:
            # Answer what can be answered (RFC 3261 8.2 / 16.3), drop the rest; never crash.
            answer = error_response_for(data, exc)
            log.warning("bad SIP from %s: %s%s", source, exc.reason, "" if answer else " (dropped)")
            if answer is not None:
                transport.send(answer, source)
            return
        try:
            self.layer.receive(message, source, self.now())
        except (SipParseError, SipProtocolError) as exc:
            log.warning("SIP from %s rejected by the transaction layer: %s", source, exc)
            if isinstance(message, Request) and message.method != "ACK":
                status = exc.status if isinstance(exc, SipParseError) else 400
                reason = exc.reason if isinstance(exc, SipParseError) else str(exc)
                transport.send(make_response(message, status, reason).to_bytes(), source)
            return
        self._pump()

    @staticmethod
    def _stamp_received(request: Request, source: Address) -> Request:
        """RFC 3261 18.2.1 `received` and RFC 3581 `rport`, so responses find NATed phones."""
        via = request.top_via
        params: dict[str, str | None] = {}
        if via.host != source.host:
            params["received"] = source.host
        if via.param("rport") is not None:
            params["received"] = source.host
            params["rport"] = str(source.port)
        if not params:
            return request
        stamped = via.with_params(**params)
        headers = request.headers.remove_first("Via").prepend("Via", str(stamped))
        return Request(
            method=request.method,
            uri=request.uri,
            headers=headers,
            body=request.body,
            version=request.version,
        )

    # --- sending ---

    def request(
        self,
        request: Request,
        destination: Address,
        on_provisional: Callable[[Response], None] | None = None,
    ) -> tuple[ClientTransaction, asyncio.Future[Response]]:
        """Send a request in a new client transaction; the future gets the final response
        (a locally made 408 when the transaction times out, 503 when it cannot be sent)."""
        assert self._loop is not None
        future: asyncio.Future[Response] = self._loop.create_future()
        tx = self.layer.send_request(request, destination, self.now())
        self._pending[id(tx)] = (future, on_provisional)
        self._pump()
        return tx, future

    def cancel(self, tx: ClientTransaction) -> None:
        assert isinstance(tx, InviteClientTransaction)
        self.layer.cancel(tx, self.now())
        self._pump()

    def respond(
        self,
        tx: ServerTransaction,
        response: Response,
        on_no_ack: Callable[[], None] | None = None,
    ) -> None:
        """Answer on a server transaction. For a 2xx to an INVITE the layer re-sends it until
        the ACK comes (RFC 3261 13.3.1.4); `on_no_ack` runs if it never does (64*T1)."""
        if "Server" not in response.headers:
            response = response.with_added("Server", SERVER_NAME)
        if on_no_ack is not None:
            self._no_ack[id(tx)] = on_no_ack
        self.layer.send_response(tx, response, self.now())
        self._pump()

    def send_ack(self, tx: ClientTransaction, ack: Request, destination: Address) -> None:
        """The ACK to a 2xx (RFC 3261 13.2.2.4): the layer keeps it to re-ACK retransmissions."""
        assert isinstance(tx, InviteClientTransaction)
        self.layer.send_ack(tx, ack, destination, self.now())
        self._pump()

    def send_stateless(self, message: Message, destination: Address) -> None:
        """Outside any transaction: a 2xx retransmitted by the UAS core (RFC 3261 13.3.1.4)."""
        self.layer.send_stateless(message, destination)
        self._pump()

    # --- the sans-I/O pump ---

    def _pump(self) -> None:
        now = self.now()
        while (event := self.layer.next_event()) is not None:
            self._dispatch(event)
        for message, destination in self.layer.datagrams_to_send(now):
            transport = self.transports.get(Address(*destination).transport)
            if transport is None:
                log.warning("no %s transport to send to %s", destination[0], destination)
                continue
            transport.send(message.to_bytes(), Address(*destination))
        self._arm_timer()

    def _arm_timer(self) -> None:
        assert self._loop is not None
        deadline = self.layer.get_timer()
        if self._timer is not None:
            if deadline is not None and abs(self._timer.when() - deadline) < 1e-6:
                return
            self._timer.cancel()
            self._timer = None
        if deadline is not None:
            self._timer = self._loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self.layer.handle_timer(self.now())
        self._pump()

    def _dispatch(self, event: object) -> None:
        match event:
            case RequestReceived(transaction=tx, request=request, source=source):
                self._deliver(Incoming(request, Address(*source), tx))
            case AckReceived(request=request, source=source):
                self._deliver(Incoming(request, Address(*source), None))
            case CancelReceived(invite_transaction=tx, cancel_request=cancel):
                self.on_cancel(tx, cancel)
            case ResponseReceived(transaction=tx, response=response):
                pending = self._pending.get(id(tx))
                if pending is None:
                    return
                future, on_provisional = pending
                if response.is_provisional:
                    if on_provisional is not None:
                        on_provisional(response)
                elif not future.done():
                    future.set_result(response)
            case StrayResponse(response=response, source=source):
                # The layer re-ACKs 2xx retransmissions itself; anything else is noise.
                log.debug("stray %d %s from %s", response.status, response.call_id, source)
            case TransactionTimeout(transaction=tx) if id(tx) in self._no_ack:
                self._no_ack.pop(id(tx))()
            case TransactionTimeout(transaction=tx):
                pending = self._pending.get(id(tx))
                if (
                    pending is not None
                    and not pending[0].done()
                    and isinstance(tx, ClientTransaction)
                ):
                    pending[0].set_result(make_response(tx.request, 408, "Request Timeout"))
            case TransactionTerminated(transaction=tx):
                self._no_ack.pop(id(tx), None)
                pending = self._pending.pop(id(tx), None)
                if (
                    pending is not None
                    and not pending[0].done()
                    and isinstance(tx, ClientTransaction)
                ):
                    pending[0].set_result(make_response(tx.request, 503, "Service Unavailable"))

    def _deliver(self, incoming: Incoming) -> None:
        try:
            self.on_request(incoming)
        except Exception:
            # One broken call must not take the switch down with it.
            log.exception("error handling %s %s", incoming.request.method, incoming.request.call_id)
            if incoming.transaction is not None and incoming.request.method != "ACK":
                try:
                    self.respond(incoming.transaction, make_response(incoming.request, 500))
                except SipProtocolError:
                    pass
