"""SIP transactions (RFC 3261 section 17, as updated by RFC 6026), sans-I/O.

Nothing here reads the clock or touches a socket. Every call takes `now` (seconds, any
monotonic origin); each object says when it next needs waking (`get_timer()`), is woken with
`handle_timer(now)`, hands out what to transmit (`datagrams_to_send(now)`) and what happened
(`next_event()`). This is the aioquic shape: the asyncio endpoint feeds, transmits and re-arms
one timer.

Four state machines, one per figure of section 17, with the RFC 6026 "Accepted" state for 2xx
responses to INVITE:

    InviteClientTransaction      Calling -> Proceeding -> Accepted | Completed -> Terminated
    NonInviteClientTransaction   Trying -> Proceeding -> Completed -> Terminated
    InviteServerTransaction      Proceeding -> Accepted | Completed -> Confirmed -> Terminated
    NonInviteServerTransaction   Trying -> Proceeding -> Completed -> Terminated

`TransactionLayer` owns many of them: it matches incoming messages to transactions
(17.1.3, 17.2.3 and the RFC 2543 fallback), answers CANCEL (9.2), routes responses back per
18.2.2 / RFC 3581, and merges everything into one event queue and one timer.

Timers (17.1.1.2, 17.1.2.2, 17.2.1, 17.2.2, RFC 6026 section 8), with T1/T2/T4 from
`TimerConfig`; retransmission timers (A, E, G) run only on unreliable transports, and the
wait-for-retransmissions timers (D, I, J, K) are zero on reliable ones:

    A  INVITE request retransmit     T1, doubling (no cap)       UDP only
    B  INVITE client timeout         64*T1                       Calling only
    D  wait for 3xx-6xx retransmits  32 s (UDP) / 0 (TCP)
    E  non-INVITE retransmit         T1, doubling to T2; T2 in Proceeding      UDP only
    F  non-INVITE client timeout     64*T1
    G  INVITE final retransmit       T1, doubling to T2          UDP only
    H  wait for ACK                  64*T1
    I  wait for ACK retransmits      T4 (UDP) / 0 (TCP)
    J  wait for non-INVITE retransmits  64*T1 (UDP) / 0 (TCP)
    K  wait for response retransmits   T4 (UDP) / 0 (TCP)
    L  INVITE server Accepted        64*T1                       (RFC 6026)
    M  INVITE client Accepted        64*T1                       (RFC 6026)

and three the RFC asks for without a letter: `100` (send 100 Trying when the TU has not
answered an INVITE within 200 ms, 17.2.1), `2xx` (the UAS core's 2xx retransmission until the
ACK arrives, 13.3.1.4; done here because every user of the layer needs it) and `cancel` (give
up on an INVITE 64*T1 after CANCELling it when no final response came, 9.1).
"""

from __future__ import annotations

import heapq
import secrets
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import ClassVar

from telephony.sip.errors import SipParseError, SipProtocolError
from telephony.sip.headers import Via
from telephony.sip.message import Headers, Message, Request, Response, make_response

# (transport, host, port): "udp" / "tcp", as `telephony.transport.base.Address` spells it.
Address = tuple[str, str, int]

# RFC 3261 8.1.1.7: a branch starting with this was made by an RFC 3261 element and is unique.
MAGIC_COOKIE = "z9hG4bK"


# --- identifiers --------------------------------------------------------------------------


def new_branch() -> str:
    """A Via branch unique across space and time (RFC 3261 8.1.1.7)."""
    return MAGIC_COOKIE + secrets.token_hex(10)


def new_tag() -> str:
    """A From/To tag: 32 random bits at least (RFC 3261 19.3)."""
    return secrets.token_hex(8)


def new_call_id(host: str) -> str:
    """A globally unique Call-ID, `random@host` (RFC 3261 8.1.1.4)."""
    return f"{secrets.token_hex(16)}@{host}"


# --- timers and states --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TimerConfig:
    """RFC 3261 17.1.1.1 / table 4. `timer_d` is the 32 s floor of 17.1.1.2 on UDP."""

    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0
    timer_d: float = 32.0
    trying_delay: float = 0.2  # 17.2.1: 100 Trying if the TU won't answer within 200 ms

    @property
    def timeout(self) -> float:
        """64*T1: timers B, F, H, J (UDP), L, M."""
        return 64 * self.t1


DEFAULT_TIMERS = TimerConfig()


class TransactionState(Enum):
    CALLING = "Calling"
    TRYING = "Trying"
    PROCEEDING = "Proceeding"
    ACCEPTED = "Accepted"  # RFC 6026
    COMPLETED = "Completed"
    CONFIRMED = "Confirmed"
    TERMINATED = "Terminated"


S = TransactionState

# Timers that end the transaction. When one is due it fires before any due retransmission
# timer, whatever their order: after a late wake-up, retransmitting in the same breath as
# giving up would be noise.
_ENDING_TIMERS = frozenset({"B", "D", "F", "H", "I", "J", "K", "L", "M", "cancel"})


# A timer counts as due this close to its deadline: asyncio may wake a call_at() handle up to
# its clock resolution early, and the shell must not spin re-arming the same deadline.
TIMER_SLACK = 1e-6


def _is_reliable(transport: str) -> bool:
    # RFC 3261 18: everything but UDP (TCP, TLS, SCTP, WS) is reliable.
    return transport.lower() != "udp"


# --- events -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, eq=False)
class RequestReceived:
    """A new request (not a retransmission) for the TU, with the server transaction to answer
    it on via `TransactionLayer.send_response`. Never an ACK or a CANCEL: see `AckReceived`
    and `CancelReceived`."""

    transaction: ServerTransaction
    request: Request
    source: Address


@dataclass(frozen=True, slots=True, eq=False)
class ResponseReceived:
    """A response the client transaction passes up: every provisional, the final one, and on
    an INVITE every 2xx (retransmissions and forks too, RFC 6026 section 8.4) except
    retransmissions of a 2xx the TU already ACKed through `TransactionLayer.send_ack`, which
    the layer re-ACKs itself. Non-2xx retransmissions are absorbed (and re-ACKed)."""

    transaction: ClientTransaction
    response: Response


@dataclass(frozen=True, slots=True, eq=False)
class AckReceived:
    """An ACK for a 2xx. It is not part of any transaction (RFC 3261 17) and belongs to the
    dialog; the layer has already stopped retransmitting the 2xx it acknowledges. Every copy is
    passed up (RFC 6026 8.7): the dialog ignores repeats. ACKs for non-2xx are absorbed."""

    request: Request
    source: Address


@dataclass(frozen=True, slots=True, eq=False)
class CancelReceived:
    """A CANCEL matched an INVITE still waiting for its final response. The layer has already
    answered the CANCEL 200 (RFC 3261 9.2); the TU answers the INVITE 487 on
    `invite_transaction`. A CANCEL matching nothing is answered 481 and a CANCEL that comes
    after the final response 200, neither producing an event."""

    invite_transaction: InviteServerTransaction
    cancel_request: Request
    source: Address


@dataclass(frozen=True, slots=True, eq=False)
class StrayResponse:
    """A response matching no client transaction, e.g. a 2xx retransmission arriving after
    timer M ended the INVITE transaction: the UAC core re-ACKs it if it belongs to one of its
    dialogs (RFC 3261 13.2.2.4), otherwise it is dropped (RFC 6026 7.2)."""

    response: Response
    source: Address


@dataclass(frozen=True, slots=True, eq=False)
class TransactionTimeout:
    """The peer did not answer in time. On a client transaction (timer B, F, or the CANCEL
    guard) the TU acts as if it got a 408 (RFC 3261 8.1.3.1); on an INVITE server transaction
    (timer H: no ACK for a non-2xx, or timer L with no ACK for our 2xx, 13.3.1.4) the TU
    should end the dialog. Always followed by `TransactionTerminated`."""

    transaction: Transaction


@dataclass(frozen=True, slots=True, eq=False)
class TransactionTerminated:
    """The transaction is gone; the layer has forgotten it. The last event it produces."""

    transaction: Transaction


Event = (
    RequestReceived
    | ResponseReceived
    | AckReceived
    | CancelReceived
    | StrayResponse
    | TransactionTimeout
    | TransactionTerminated
)


# --- keys ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TransactionKey:
    """What 17.1.3 / 17.2.3 match on.

    RFC 3261 branches: `branch`, `sent_by` (server side only) and `method` (ACK counts as
    INVITE). RFC 2543 peers (branch without the magic cookie): `legacy` holds Request-URI,
    From tag, Call-ID, CSeq number and the top Via's sent-by; the To tag is checked after
    lookup (for an ACK against the tag of the response we sent).
    """

    role: str  # "client" | "server"
    method: str
    branch: str | None
    sent_by: str = ""
    legacy: tuple[str, ...] = ()


def _sent_by(via: Via) -> str:
    return f"{via.transport.lower()}/{via.host.lower()}:{via.port or ''}"


def _has_cookie(branch: str | None) -> bool:
    return branch is not None and branch.startswith(MAGIC_COOKIE)


def client_key(message: Message) -> TransactionKey | None:
    """17.1.3: the top Via's branch and the CSeq method. None without a branch."""
    branch = message.top_via.branch
    if not branch:
        return None
    return TransactionKey("client", message.cseq.method.upper(), branch)


def server_key(request: Request, method: str | None = None) -> TransactionKey:
    """17.2.3 for `request`, as the transaction for `method` (default: the request's own, ACK
    counting as INVITE) would be filed."""
    if method is None:
        method = "INVITE" if request.method.upper() == "ACK" else request.method.upper()
    via = request.top_via
    branch = via.branch
    if _has_cookie(branch):
        assert branch is not None
        return TransactionKey("server", method, branch, _sent_by(via))
    return TransactionKey(
        "server",
        method,
        None,
        legacy=(
            str(request.uri),
            request.from_.tag or "",
            request.call_id,
            str(request.cseq.seq),
            _sent_by(via),
            branch or "",
        ),
    )


# --- transactions -------------------------------------------------------------------------


class Transaction:
    """What the four state machines share: timers, an outbox and an event queue."""

    TRANSITIONS: ClassVar[Mapping[TransactionState, frozenset[TransactionState]]] = {}

    def __init__(
        self,
        request: Request,
        key: TransactionKey,
        state: TransactionState,
        *,
        reliable: bool,
        timers: TimerConfig,
        now: float,
        destination: Address,
    ) -> None:
        self.request = request
        # Where this transaction transmits: the next hop for a request, the 18.2.2 address
        # for responses.
        self.destination = destination
        self.key = key
        self.state = state
        self.reliable = reliable
        self.timers = timers
        self.created_at = now
        self.last_response: Response | None = None
        self._deadlines: dict[str, float] = {}
        self._intervals: dict[str, float] = {}
        self._outbox: list[tuple[Message, Address]] = []
        self._events: deque[Event] = deque()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.request.method} {self.state.value} {self.key.branch}>"

    # --- the sans-I/O surface ---

    @property
    def terminated(self) -> bool:
        return self.state is S.TERMINATED

    @property
    def deadlines(self) -> dict[str, float]:
        """Armed timers by name ("A".."M", "100", "2xx", "cancel") -> when they fire."""
        return dict(self._deadlines)

    def get_timer(self) -> float | None:
        return min(self._deadlines.values(), default=None)

    def handle_timer(self, now: float) -> None:
        """Fire every timer due at `now`: ending timers first, then the earliest."""
        while not self.terminated:
            due = [
                (name not in _ENDING_TIMERS, deadline, name)
                for name, deadline in self._deadlines.items()
                if deadline <= now + TIMER_SLACK
            ]
            if not due:
                return
            _, _, name = min(due)
            del self._deadlines[name]
            self._fire(name, now)

    def datagrams_to_send(self, now: float) -> list[tuple[Message, Address]]:
        out, self._outbox = self._outbox, []
        return out

    def next_event(self) -> Event | None:
        return self._events.popleft() if self._events else None

    # --- for subclasses ---

    def _fire(self, name: str, now: float) -> None:
        raise NotImplementedError

    def _send(self, message: Message) -> None:
        self._outbox.append((message, self.destination))

    def _enter(self, state: TransactionState) -> None:
        if state is not self.state and state not in self.TRANSITIONS.get(self.state, ()):
            raise SipProtocolError(
                f"{type(self).__name__}: no transition from {self.state.value} to {state.value}"
            )
        self.state = state

    def _arm(self, name: str, now: float, delay: float) -> None:
        self._deadlines[name] = now + delay

    def _disarm(self, *names: str) -> None:
        for name in names:
            self._deadlines.pop(name, None)

    def _retransmit_interval(self, name: str, cap: float | None) -> float:
        """T1 first, then doubled (17.1.1.2 timer A has no cap; E and G stop at T2)."""
        interval = self._intervals.get(name)
        interval = self.timers.t1 if interval is None else interval * 2
        if cap is not None:
            interval = min(interval, cap)
        self._intervals[name] = interval
        return interval

    def _wait_then_terminate(self, name: str, now: float, delay: float) -> None:
        """Timers D, I, J, K: zero on reliable transports means "terminate right now"."""
        if delay <= 0:
            self._terminate()
        else:
            self._arm(name, now, delay)

    def _timeout(self) -> None:
        self._events.append(TransactionTimeout(self))
        self._terminate()

    def _terminate(self) -> None:
        if self.terminated:
            return
        self._enter(S.TERMINATED)
        self._deadlines.clear()
        self._events.append(TransactionTerminated(self))


def _response_class(status: int) -> str:
    if status < 200:
        return "1xx"
    if status < 300:
        return "2xx"
    return "3-6xx"


# ----- client side ------------------------------------------------------------------------


class ClientTransaction(Transaction):
    """Sends `request` to `destination` and passes responses up (17.1)."""

    def __init__(
        self,
        request: Request,
        now: float,
        *,
        destination: Address = ("udp", "", 0),
        reliable: bool | None = None,
        timers: TimerConfig = DEFAULT_TIMERS,
        initial: TransactionState,
    ) -> None:
        key = client_key(request)
        if key is None:
            raise SipProtocolError("a client transaction needs a top Via with a branch")
        if key.method != request.method.upper():
            raise SipProtocolError(f"CSeq method {key.method} is not the request's method")
        super().__init__(
            request,
            key,
            initial,
            reliable=_is_reliable(destination[0]) if reliable is None else reliable,
            timers=timers,
            now=now,
            destination=destination,
        )
        self._send(request)

    def receive(self, response: Response, now: float) -> None:
        raise NotImplementedError

    def _pass_up(self, response: Response) -> None:
        self.last_response = response
        self._events.append(ResponseReceived(self, response))


class InviteClientTransaction(ClientTransaction):
    """Figure 5 of RFC 3261 with the Accepted state of RFC 6026 (figure 5 there)."""

    TRANSITIONS = {
        S.CALLING: frozenset({S.PROCEEDING, S.ACCEPTED, S.COMPLETED, S.TERMINATED}),
        S.PROCEEDING: frozenset({S.ACCEPTED, S.COMPLETED, S.TERMINATED}),
        S.ACCEPTED: frozenset({S.TERMINATED}),
        S.COMPLETED: frozenset({S.TERMINATED}),
    }

    # (state, response class) -> next state; a response not listed is absorbed.
    RECEIVE: ClassVar[Mapping[tuple[TransactionState, str], TransactionState]] = {
        (S.CALLING, "1xx"): S.PROCEEDING,
        (S.PROCEEDING, "1xx"): S.PROCEEDING,
        (S.CALLING, "2xx"): S.ACCEPTED,
        (S.PROCEEDING, "2xx"): S.ACCEPTED,
        (S.ACCEPTED, "2xx"): S.ACCEPTED,
        (S.CALLING, "3-6xx"): S.COMPLETED,
        (S.PROCEEDING, "3-6xx"): S.COMPLETED,
        (S.COMPLETED, "3-6xx"): S.COMPLETED,
    }

    def __init__(
        self,
        request: Request,
        now: float,
        *,
        destination: Address = ("udp", "", 0),
        reliable: bool | None = None,
        timers: TimerConfig = DEFAULT_TIMERS,
    ) -> None:
        if request.method.upper() != "INVITE":
            raise SipProtocolError(f"{request.method} is not an INVITE")
        super().__init__(
            request,
            now,
            destination=destination,
            reliable=reliable,
            timers=timers,
            initial=S.CALLING,
        )
        self.ack: Request | None = None  # our ACK for a non-2xx, resent on retransmissions
        # ACKs the TU sent for 2xx responses, by To tag, resent for 2xx retransmissions.
        self.acks_for_2xx: dict[str, tuple[Request, Address]] = {}
        self.cancel_requested = False
        if not self.reliable:
            self._arm("A", now, self._retransmit_interval("A", None))
        self._arm("B", now, timers.timeout)

    def receive(self, response: Response, now: float) -> None:
        nxt = self.RECEIVE.get((self.state, _response_class(response.status)))
        if nxt is None:
            return  # e.g. a late 1xx after the final response
        if self.state is S.COMPLETED:
            # 17.1.1.2: a retransmitted final response is re-ACKed, not passed up.
            if self.ack is not None:
                self._send(self.ack)
            return
        if self.state is S.ACCEPTED:
            sent = self.acks_for_2xx.get(response.to.tag or "")
            if sent is not None:
                self._outbox.append(sent)  # 13.2.2.4: each 2xx retransmission is re-ACKed
            else:
                self._pass_up(response)
            return
        self._enter(nxt)
        self._disarm("A", "B")
        if nxt is S.PROCEEDING:
            self._pass_up(response)
        elif nxt is S.ACCEPTED:
            self._disarm("cancel")
            self._pass_up(response)
            self._arm("M", now, self.timers.timeout)
        else:  # COMPLETED
            self._disarm("cancel")
            self.ack = self.build_ack(response)
            self._send(self.ack)
            self._pass_up(response)
            self._wait_then_terminate("D", now, 0.0 if self.reliable else self.timers.timer_d)

    def build_ack(self, response: Response) -> Request:
        """17.1.1.3: the ACK for a non-2xx final response, inside this transaction: same
        Request-URI, Call-ID, From, CSeq number and top Via (so the same branch), the To of
        the response, and the INVITE's Route headers."""
        req = self.request
        items: list[tuple[str, str]] = [("Via", req.headers.values("Via")[0])]
        items.append(("Max-Forwards", "70"))
        items.extend(("Route", v) for v in req.headers.lines("Route"))
        items.append(("From", req.headers.get("From") or ""))
        items.append(("To", response.headers.get("To") or ""))
        items.append(("Call-ID", req.call_id))
        items.append(("CSeq", f"{req.cseq.seq} ACK"))
        return Request(method="ACK", uri=req.uri, headers=Headers(tuple(items)))

    def build_cancel(self) -> Request:
        """9.1: same Request-URI, Call-ID, To, From, CSeq number and the single top Via (so
        the same branch) as the INVITE, and its Route headers."""
        req = self.request
        items: list[tuple[str, str]] = [("Via", req.headers.values("Via")[0])]
        items.append(("Max-Forwards", "70"))
        items.extend(("Route", v) for v in req.headers.lines("Route"))
        items.append(("From", req.headers.get("From") or ""))
        items.append(("To", req.headers.get("To") or ""))
        items.append(("Call-ID", req.call_id))
        items.append(("CSeq", f"{req.cseq.seq} CANCEL"))
        return Request(method="CANCEL", uri=req.uri, headers=Headers(tuple(items)))

    def send_ack(self, ack: Request, destination: Address) -> None:
        """Transmit the TU's ACK for a 2xx and keep it for that 2xx's retransmissions."""
        if self.state is S.ACCEPTED:
            self.acks_for_2xx[ack.to.tag or ""] = (ack, destination)
        self._outbox.append((ack, destination))

    def arm_cancel_guard(self, now: float) -> None:
        """9.1: with no final response 64*T1 after the CANCEL, treat the INVITE as cancelled."""
        self.cancel_requested = True
        if self.state in (S.CALLING, S.PROCEEDING) and "cancel" not in self._deadlines:
            self._arm("cancel", now, self.timers.timeout)

    def _fire(self, name: str, now: float) -> None:
        if name == "A" and self.state is S.CALLING:
            self._send(self.request)
            self._arm("A", now, self._retransmit_interval("A", None))
        elif name == "B" and self.state is S.CALLING:
            self._timeout()
        elif name == "cancel" and self.state in (S.CALLING, S.PROCEEDING):
            self._timeout()
        elif name in ("D", "M"):
            self._terminate()


class NonInviteClientTransaction(ClientTransaction):
    """Figure 6 of RFC 3261 (17.1.2)."""

    TRANSITIONS = {
        S.TRYING: frozenset({S.PROCEEDING, S.COMPLETED, S.TERMINATED}),
        S.PROCEEDING: frozenset({S.COMPLETED, S.TERMINATED}),
        S.COMPLETED: frozenset({S.TERMINATED}),
    }

    RECEIVE: ClassVar[Mapping[tuple[TransactionState, str], TransactionState]] = {
        (S.TRYING, "1xx"): S.PROCEEDING,
        (S.PROCEEDING, "1xx"): S.PROCEEDING,
        (S.TRYING, "2xx"): S.COMPLETED,
        (S.PROCEEDING, "2xx"): S.COMPLETED,
        (S.TRYING, "3-6xx"): S.COMPLETED,
        (S.PROCEEDING, "3-6xx"): S.COMPLETED,
    }

    def __init__(
        self,
        request: Request,
        now: float,
        *,
        destination: Address = ("udp", "", 0),
        reliable: bool | None = None,
        timers: TimerConfig = DEFAULT_TIMERS,
    ) -> None:
        if request.method.upper() in ("INVITE", "ACK"):
            raise SipProtocolError(f"{request.method} cannot use a non-INVITE transaction")
        super().__init__(
            request,
            now,
            destination=destination,
            reliable=reliable,
            timers=timers,
            initial=S.TRYING,
        )
        if not self.reliable:
            self._arm("E", now, self._retransmit_interval("E", timers.t2))
        self._arm("F", now, timers.timeout)

    def receive(self, response: Response, now: float) -> None:
        nxt = self.RECEIVE.get((self.state, _response_class(response.status)))
        if nxt is None:
            return  # Completed absorbs retransmitted finals (17.1.2.2)
        self._enter(nxt)
        self._pass_up(response)
        if nxt is S.COMPLETED:
            self._disarm("E", "F")
            self._wait_then_terminate("K", now, 0.0 if self.reliable else self.timers.t4)

    def _fire(self, name: str, now: float) -> None:
        if name == "E" and self.state in (S.TRYING, S.PROCEEDING):
            self._send(self.request)
            # 17.1.2.2: doubling up to T2 while Trying; every T2 once Proceeding.
            if self.state is S.PROCEEDING:
                interval = self.timers.t2
            else:
                interval = self._retransmit_interval("E", self.timers.t2)
            self._arm("E", now, interval)
        elif name == "F" and self.state in (S.TRYING, S.PROCEEDING):
            self._timeout()
        elif name == "K":
            self._terminate()


# ----- server side ------------------------------------------------------------------------


class ServerTransaction(Transaction):
    """Answers `request`, which came from `source` (17.2)."""

    # (state, response class) -> next state; a response not listed is TU misuse.
    SEND: ClassVar[Mapping[tuple[TransactionState, str], TransactionState]] = {}

    def __init__(
        self,
        request: Request,
        now: float,
        *,
        source: Address = ("udp", "", 0),
        reliable: bool | None = None,
        timers: TimerConfig = DEFAULT_TIMERS,
        initial: TransactionState,
    ) -> None:
        super().__init__(
            request,
            server_key(request),
            initial,
            reliable=_is_reliable(source[0]) if reliable is None else reliable,
            timers=timers,
            now=now,
            destination=response_destination(request, source),
        )
        self.source = source

    def receive(self, request: Request, now: float) -> None:
        """A retransmission of our request (or, for INVITE, an ACK)."""
        raise NotImplementedError

    def send_response(self, response: Response, now: float) -> None:
        """Pass a response from the TU to the wire; `SipProtocolError` if the state forbids it
        (a second final response, a provisional after the final, a response to a gone one)."""
        status = response.status
        if not 100 <= status <= 699:
            raise SipProtocolError(f"status {status} is not a SIP response code")
        cseq = response.cseq
        if (
            cseq.method.upper() != self.request.cseq.method.upper()
            or cseq.seq != self.request.cseq.seq
        ):
            raise SipProtocolError(f"response CSeq {cseq} does not answer {self.request.cseq}")
        nxt = self.SEND.get((self.state, _response_class(status)))
        if nxt is None:
            raise SipProtocolError(
                f"cannot send {status} on a {self.request.method} transaction in state "
                f"{self.state.value}"
            )
        self._disarm("100")
        self._enter(nxt)
        self.last_response = response
        self._send(response)
        self._after_send(response, now)

    def _after_send(self, response: Response, now: float) -> None:
        raise NotImplementedError


def response_destination(request: Request, source: Address) -> Address:
    """Where a response to `request` goes (RFC 3261 18.2.2, RFC 3581 section 4).

    Reliable transports: back over the connection it came on, i.e. to `source`. Datagrams: to
    `maddr` if the top Via has one; with `rport`, to the address and port the request came
    from (`received`/`rport` as stamped by the transport, or `source` itself); else to
    `received` (or the sent-by host) at the sent-by port, 5060 by default.
    """
    transport = source[0]
    if _is_reliable(transport):
        return source
    via = request.top_via
    port = via.port or 5060
    maddr = via.param("maddr")
    if maddr:
        return (transport, maddr, port)
    rport = via.param("rport")
    received = via.param("received")
    if rport is not None:
        return (
            transport,
            received or source[1],
            int(rport) if rport.isdigit() else source[2],
        )
    return (transport, received or via.host, port)


class InviteServerTransaction(ServerTransaction):
    """Figure 7 of RFC 3261 with the Accepted state of RFC 6026 (figure 7 there)."""

    TRANSITIONS = {
        S.PROCEEDING: frozenset({S.ACCEPTED, S.COMPLETED, S.TERMINATED}),
        S.ACCEPTED: frozenset({S.TERMINATED}),
        S.COMPLETED: frozenset({S.CONFIRMED, S.TERMINATED}),
        S.CONFIRMED: frozenset({S.TERMINATED}),
    }

    SEND = {
        (S.PROCEEDING, "1xx"): S.PROCEEDING,
        (S.PROCEEDING, "2xx"): S.ACCEPTED,
        (S.PROCEEDING, "3-6xx"): S.COMPLETED,
        # RFC 6026 8.5: further 2xx from the TU in Accepted go straight to the transport.
        (S.ACCEPTED, "2xx"): S.ACCEPTED,
    }

    def __init__(
        self,
        request: Request,
        now: float,
        *,
        source: Address = ("udp", "", 0),
        reliable: bool | None = None,
        timers: TimerConfig = DEFAULT_TIMERS,
        retransmit_2xx: bool = True,
    ) -> None:
        if request.method.upper() != "INVITE":
            raise SipProtocolError(f"{request.method} is not an INVITE")
        super().__init__(
            request,
            now,
            source=source,
            reliable=reliable,
            timers=timers,
            initial=S.PROCEEDING,
        )
        self.retransmit_2xx = retransmit_2xx
        self.acked = False  # an ACK for our 2xx arrived (13.3.1.4)
        # 17.2.1: answer 100 ourselves unless the TU speaks within 200 ms.
        self._arm("100", now, timers.trying_delay)

    def receive(self, request: Request, now: float) -> None:
        if request.method.upper() == "ACK":
            self.receive_ack(request, now)
            return
        # 17.2.1: a retransmitted INVITE gets the latest provisional again in Proceeding and
        # the final again in Completed; Confirmed and Accepted absorb it (RFC 6026 8.5).
        if self.state in (S.PROCEEDING, S.COMPLETED) and self.last_response is not None:
            self._send(self.last_response)

    def receive_ack(self, ack: Request, now: float) -> None:
        """ACK for our final response. A non-2xx one confirms the transaction (17.2.1); one
        for our 2xx stops the 2xx retransmissions (13.3.1.4) and is passed up by the layer."""
        if self.state is S.COMPLETED:
            self._enter(S.CONFIRMED)
            self._disarm("G", "H")
            self._wait_then_terminate("I", now, 0.0 if self.reliable else self.timers.t4)
        elif self.state is S.ACCEPTED:
            self.acked = True
            self._disarm("2xx")

    def _after_send(self, response: Response, now: float) -> None:
        if self.state is S.ACCEPTED:
            if "L" not in self._deadlines:
                self._arm("L", now, self.timers.timeout)
                if self.retransmit_2xx and not self.reliable and not self.acked:
                    self._arm("2xx", now, self._retransmit_interval("2xx", self.timers.t2))
        elif self.state is S.COMPLETED:
            if not self.reliable:
                self._arm("G", now, self._retransmit_interval("G", self.timers.t2))
            self._arm("H", now, self.timers.timeout)

    def _fire(self, name: str, now: float) -> None:
        if name == "100" and self.state is S.PROCEEDING and self.last_response is None:
            self.last_response = make_response(self.request, 100)
            self._send(self.last_response)
        elif name == "G" and self.state is S.COMPLETED and self.last_response is not None:
            self._send(self.last_response)
            self._arm("G", now, self._retransmit_interval("G", self.timers.t2))
        elif name == "H" and self.state is S.COMPLETED:
            self._timeout()
        elif name == "2xx" and self.state is S.ACCEPTED and self.last_response is not None:
            self._send(self.last_response)
            self._arm("2xx", now, self._retransmit_interval("2xx", self.timers.t2))
        elif name == "L":
            if self.acked:
                self._terminate()
            else:
                self._timeout()  # 13.3.1.4: no ACK for 64*T1; the TU should send BYE
        elif name == "I":
            self._terminate()


class NonInviteServerTransaction(ServerTransaction):
    """Figure 8 of RFC 3261 (17.2.2)."""

    TRANSITIONS = {
        S.TRYING: frozenset({S.PROCEEDING, S.COMPLETED, S.TERMINATED}),
        S.PROCEEDING: frozenset({S.COMPLETED, S.TERMINATED}),
        S.COMPLETED: frozenset({S.TERMINATED}),
    }

    SEND = {
        (S.TRYING, "1xx"): S.PROCEEDING,
        (S.TRYING, "2xx"): S.COMPLETED,
        (S.TRYING, "3-6xx"): S.COMPLETED,
        (S.PROCEEDING, "1xx"): S.PROCEEDING,
        (S.PROCEEDING, "2xx"): S.COMPLETED,
        (S.PROCEEDING, "3-6xx"): S.COMPLETED,
    }

    def __init__(
        self,
        request: Request,
        now: float,
        *,
        source: Address = ("udp", "", 0),
        reliable: bool | None = None,
        timers: TimerConfig = DEFAULT_TIMERS,
    ) -> None:
        if request.method.upper() in ("INVITE", "ACK"):
            raise SipProtocolError(f"{request.method} cannot use a non-INVITE transaction")
        super().__init__(
            request,
            now,
            source=source,
            reliable=reliable,
            timers=timers,
            initial=S.TRYING,
        )

    def receive(self, request: Request, now: float) -> None:
        # 17.2.2: Trying absorbs; Proceeding and Completed resend the latest response.
        if self.state in (S.PROCEEDING, S.COMPLETED) and self.last_response is not None:
            self._send(self.last_response)

    def _after_send(self, response: Response, now: float) -> None:
        if self.state is S.COMPLETED:
            self._wait_then_terminate("J", now, 0.0 if self.reliable else self.timers.timeout)

    def _fire(self, name: str, now: float) -> None:
        if name == "J":
            self._terminate()


# --- the layer ----------------------------------------------------------------------------


class TransactionLayer:
    """All transactions of one SIP endpoint, driven by the asyncio shell.

    Feed it with `receive(message, source, now)`; start client transactions with
    `send_request`, answer server transactions with `send_response`; then transmit
    `datagrams_to_send(now)`, handle `next_event()` until None, and wake it at `get_timer()`
    with `handle_timer(now)`.
    """

    def __init__(
        self, timers: TimerConfig = DEFAULT_TIMERS, *, retransmit_2xx: bool = True
    ) -> None:
        self.timers = timers
        self.retransmit_2xx = retransmit_2xx
        self._transactions: dict[TransactionKey, Transaction] = {}
        # 2xx-answered INVITEs by (Call-ID, CSeq number, To tag): where an ACK for the 2xx,
        # which carries a new branch, finds the transaction retransmitting that 2xx.
        self._accepted: dict[tuple[str, int, str], InviteServerTransaction] = {}
        self._pending_cancels: dict[InviteClientTransaction, Request] = {}
        self._cancels: dict[InviteClientTransaction, NonInviteClientTransaction] = {}
        self._outbox: list[tuple[Message, Address]] = []
        self._events: deque[Event] = deque()
        self._heap: list[tuple[float, int, Transaction]] = []
        self._scheduled: dict[Transaction, float] = {}
        self._seq = 0

    # --- inspection ---

    def __len__(self) -> int:
        return len(self._transactions)

    def transactions(self) -> list[Transaction]:
        return list(self._transactions.values())

    def find(self, key: TransactionKey) -> Transaction | None:
        return self._transactions.get(key)

    # --- input from the network ---

    def receive(self, message: Message, source: Address, now: float) -> None:
        """A parsed message from `source`. Raises `SipParseError` when the headers 17.1.3 /
        17.2.3 match on (Via, CSeq, Call-ID, From) are missing or malformed."""
        if isinstance(message, Response):
            self._receive_response(message, source, now)
        else:
            self._receive_request(message, source, now)

    def _receive_response(self, response: Response, source: Address, now: float) -> None:
        key = client_key(response)
        tx = self._transactions.get(key) if key is not None else None
        if not isinstance(tx, ClientTransaction):
            # RFC 6026 7.2: no transaction, so the core decides (re-ACK a 2xx, or drop).
            self._events.append(StrayResponse(response, source))
            return
        tx.receive(response, now)
        if isinstance(tx, InviteClientTransaction):
            self._release_cancel(tx, now)
        self._collect(tx)

    def _release_cancel(self, tx: InviteClientTransaction, now: float) -> None:
        pending = self._pending_cancels.get(tx)
        if pending is None:
            return
        if tx.state is S.PROCEEDING:
            # 9.1: the CANCEL waited for a provisional response; now it may go.
            del self._pending_cancels[tx]
            self._start_cancel(tx, pending, now)
        elif tx.state is not S.CALLING:
            del self._pending_cancels[tx]  # a final response came first: nothing to cancel

    def _receive_request(self, request: Request, source: Address, now: float) -> None:
        method = request.method.upper()
        cseq = request.cseq
        _ = request.call_id  # 17.2.3 and 8.2 need it: SipParseError now if it is missing
        if cseq.method.upper() != method:
            raise SipParseError("CSeq method does not match the request method")
        key = server_key(request)
        tx = self._transactions.get(key)
        if method == "ACK":
            self._receive_ack(request, key, tx, source, now)
            return
        if method == "CANCEL":
            if isinstance(tx, NonInviteServerTransaction):
                tx.receive(request, now)  # a retransmitted CANCEL: resend our answer
                self._collect(tx)
            else:
                self._receive_cancel(request, source, now)
            return
        if tx is not None:
            if isinstance(tx, ServerTransaction):
                tx.receive(request, now)  # a retransmission: absorbed, or answered again
                self._collect(tx)
            return
        server: ServerTransaction
        if method == "INVITE":
            server = InviteServerTransaction(
                request, now, source=source, timers=self.timers, retransmit_2xx=self.retransmit_2xx
            )
        else:
            server = NonInviteServerTransaction(request, now, source=source, timers=self.timers)
        self._transactions[key] = server
        self._events.append(RequestReceived(server, request, source))
        self._collect(server)

    def _receive_ack(
        self,
        ack: Request,
        key: TransactionKey,
        tx: Transaction | None,
        source: Address,
        now: float,
    ) -> None:
        if isinstance(tx, InviteServerTransaction) and key.branch is None:
            # 17.2.3 for RFC 2543 peers: the ACK's To tag must be that of our response.
            ours = tx.last_response.to.tag if tx.last_response is not None else None
            if ours is not None and ack.to.tag != ours:
                tx = None
        if isinstance(tx, InviteServerTransaction) and tx.state is not S.ACCEPTED:
            tx.receive_ack(ack, now)  # ACK for a non-2xx: part of the transaction, absorbed
            self._collect(tx)
            return
        # An ACK for a 2xx (its own branch; or the INVITE's, RFC 6026 8.7): for the dialog.
        accepted = tx if isinstance(tx, InviteServerTransaction) else None
        if accepted is None:
            accepted = self._accepted.get((ack.call_id, ack.cseq.seq, ack.to.tag or ""))
        if accepted is not None:
            accepted.receive_ack(ack, now)
            self._collect(accepted)
        self._events.append(AckReceived(ack, source))

    def _receive_cancel(self, cancel: Request, source: Address, now: float) -> None:
        server = NonInviteServerTransaction(cancel, now, source=source, timers=self.timers)
        self._transactions[server.key] = server
        invite = self._transactions.get(server_key(cancel, "INVITE"))
        if not isinstance(invite, InviteServerTransaction):
            # 9.2: nothing to cancel.
            server.send_response(make_response(cancel, 481), now)
        else:
            # 9.2: the CANCEL itself always gets a 200; it only matters before the final.
            tag = invite.last_response.to.tag if invite.last_response is not None else None
            server.send_response(make_response(cancel, 200, to_tag=tag), now)
            if invite.state is S.PROCEEDING:
                self._events.append(CancelReceived(invite, cancel, source))
        self._collect(server)

    # --- input from the TU ---

    def send_request(self, request: Request, destination: Address, now: float) -> ClientTransaction:
        """Start a client transaction for `request` (which carries its own top Via and
        branch) towards `destination`; reliability follows the transport ("udp" or not)."""
        method = request.method.upper()
        tx: ClientTransaction
        if method == "ACK":
            raise SipProtocolError("an ACK is not a transaction: use send_ack / send_stateless")
        if method == "INVITE":
            tx = InviteClientTransaction(request, now, destination=destination, timers=self.timers)
        else:
            tx = NonInviteClientTransaction(
                request, now, destination=destination, timers=self.timers
            )
        if tx.key in self._transactions:
            raise SipProtocolError(f"branch {tx.key.branch} is already in use for {method}")
        self._transactions[tx.key] = tx
        self._collect(tx)
        return tx

    def send_response(self, transaction: ServerTransaction, response: Response, now: float) -> None:
        """Answer on a server transaction; see `ServerTransaction.send_response` for misuse."""
        if self._transactions.get(transaction.key) is not transaction:
            raise SipProtocolError(f"{transaction!r} is not a live transaction of this layer")
        transaction.send_response(response, now)
        if isinstance(transaction, InviteServerTransaction) and transaction.state is S.ACCEPTED:
            req = transaction.request
            self._accepted[(req.call_id, req.cseq.seq, response.to.tag or "")] = transaction
        self._collect(transaction)

    def cancel(self, transaction: InviteClientTransaction, now: float) -> Request | None:
        """CANCEL an INVITE we sent (9.1). Sent at once when a provisional response has come,
        else held until one does; nothing happens once a final response arrived. Returns the
        CANCEL request (or None when there is nothing left to cancel). Repeated calls are
        harmless."""
        if not isinstance(transaction, InviteClientTransaction):
            raise SipProtocolError("only an INVITE can be cancelled")
        if transaction.state not in (S.CALLING, S.PROCEEDING):
            return None
        already = self._pending_cancels.get(transaction) or (
            self._cancels[transaction].request if transaction in self._cancels else None
        )
        if already is not None:
            return already
        cancel = transaction.build_cancel()
        transaction.arm_cancel_guard(now)
        if transaction.state is S.PROCEEDING:
            self._start_cancel(transaction, cancel, now)
        else:
            self._pending_cancels[transaction] = cancel
        self._schedule(transaction)
        return cancel

    def _start_cancel(self, invite: InviteClientTransaction, cancel: Request, now: float) -> None:
        tx = NonInviteClientTransaction(
            cancel, now, destination=invite.destination, timers=self.timers
        )
        self._transactions[tx.key] = tx
        self._cancels[invite] = tx
        self._collect(tx)

    def send_ack(
        self,
        transaction: InviteClientTransaction,
        ack: Request,
        destination: Address,
        now: float,
    ) -> None:
        """Transmit the TU's ACK for a 2xx (13.2.2.4; built by `Dialog.create_ack`) and
        remember it, so retransmissions of that 2xx are re-ACKed here instead of reaching the
        TU again."""
        if ack.method.upper() != "ACK":
            raise SipProtocolError(f"send_ack got a {ack.method}")
        transaction.send_ack(ack, destination)
        self._collect(transaction)

    def send_stateless(self, message: Message, destination: Address) -> None:
        """Transmit outside any transaction (a 2xx re-ACK, a stateless answer)."""
        self._outbox.append((message, destination))

    # --- output ---

    def datagrams_to_send(self, now: float) -> list[tuple[Message, Address]]:
        """Messages to transmit now, with where to: requests to the transaction's
        destination, responses to the 18.2.2 address (`ServerTransaction.destination`)."""
        out, self._outbox = self._outbox, []
        return out

    def next_event(self) -> Event | None:
        return self._events.popleft() if self._events else None

    def get_timer(self) -> float | None:
        """When `handle_timer` must next be called, or None when no timer is armed."""
        heap = self._heap
        while heap:
            deadline, _, tx = heap[0]
            if self._scheduled.get(tx) == deadline:
                return deadline
            heapq.heappop(heap)  # stale: the transaction re-armed or ended since
        return None

    def handle_timer(self, now: float) -> None:
        heap = self._heap
        while heap and heap[0][0] <= now + TIMER_SLACK:
            deadline, _, tx = heapq.heappop(heap)
            if self._scheduled.get(tx) != deadline:
                continue
            del self._scheduled[tx]
            tx.handle_timer(now)
            self._collect(tx)

    # --- bookkeeping ---

    def _collect(self, tx: Transaction) -> None:
        """Move a transaction's output into the layer's, forget it when it ended, re-arm."""
        self._outbox.extend(tx.datagrams_to_send(0.0))
        while (event := tx.next_event()) is not None:
            self._events.append(event)
        if tx.terminated:
            self._forget(tx)
        else:
            self._schedule(tx)

    def _forget(self, tx: Transaction) -> None:
        if self._transactions.get(tx.key) is tx:
            del self._transactions[tx.key]
        self._scheduled.pop(tx, None)
        if isinstance(tx, InviteClientTransaction):
            self._pending_cancels.pop(tx, None)
            self._cancels.pop(tx, None)
        elif isinstance(tx, InviteServerTransaction) and tx.last_response is not None:
            if tx.last_response.is_success:
                # Usually one entry; more if the TU sent 2xx with different To tags.
                for k in [k for k, v in self._accepted.items() if v is tx]:
                    del self._accepted[k]

    def _schedule(self, tx: Transaction) -> None:
        deadline = tx.get_timer()
        if deadline is None:
            self._scheduled.pop(tx, None)
            return
        if self._scheduled.get(tx) == deadline:
            return
        self._scheduled[tx] = deadline
        self._seq += 1
        heapq.heappush(self._heap, (deadline, self._seq, tx))


__all__ = [
    "DEFAULT_TIMERS",
    "MAGIC_COOKIE",
    "AckReceived",
    "Address",
    "CancelReceived",
    "ClientTransaction",
    "Event",
    "InviteClientTransaction",
    "InviteServerTransaction",
    "NonInviteClientTransaction",
    "NonInviteServerTransaction",
    "RequestReceived",
    "ResponseReceived",
    "ServerTransaction",
    "StrayResponse",
    "TimerConfig",
    "Transaction",
    "TransactionKey",
    "TransactionLayer",
    "TransactionState",
    "TransactionTerminated",
    "TransactionTimeout",
    "client_key",
    "new_branch",
    "new_call_id",
    "new_tag",
    "response_destination",
    "server_key",
]
