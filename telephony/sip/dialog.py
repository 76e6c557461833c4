"""SIP dialogs (RFC 3261 section 12, with 13.2.2.4, 14 and 15), sans-I/O.

A `Dialog` is the state two user agents share for one call leg: Call-ID, both tags, both
URIs, the remote target and route set, and both CSeq counters. It builds in-dialog requests
(re-INVITE, BYE, INFO, UPDATE, OPTIONS, ...) and the ACK for a 2xx, and checks incoming
in-dialog requests. It never transmits anything: requests go out through
`TransactionLayer.send_request`, the 2xx ACK through `TransactionLayer.send_ack`.

The caller supplies the top Via of every request it builds (`via=`), because only the
transport knows its sent-by address and transport name; the dialog adds a branch if the Via
has none. The destination is up to the caller as well (RFC 3263 on `next_hop()`).

Which side reports what, so the dialog can keep CSeq order (12.2.2) and re-INVITE glare
(14.1, 14.2) straight:

- UAC: `Dialog.from_uac(invite, response)` on a 1xx-with-tag or 2xx; feed every later
  response to a request of this dialog (including the 2xx/non-2xx that settles an early
  dialog, and the 408 the endpoint makes up on a timeout) to `update_from_response`.
- UAS: `Dialog.from_uas(invite, our_response)` when sending a 1xx-with-tag or 2xx; feed each
  in-dialog request to `receive_request` (answer with the status it returns, if any) and
  every final response we send in the dialog to `update_from_local_response`.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Iterator
from dataclasses import replace
from enum import Enum

from telephony.sip.errors import SipProtocolError
from telephony.sip.headers import NameAddr, Via
from telephony.sip.message import Headers, Request, Response
from telephony.sip.transaction import new_branch
from telephony.sip.uri import SipUri, Uri

# (Call-ID, local tag, remote tag): RFC 3261 12.
DialogId = tuple[str, str, str]

# Requests that replace the remote target (RFC 3261 12.2, RFC 3311 UPDATE, RFC 6665, RFC 3515).
TARGET_REFRESH_METHODS = frozenset({"INVITE", "UPDATE", "SUBSCRIBE", "NOTIFY", "REFER"})

MAX_FORWARDS = "70"  # RFC 3261 8.1.1.6

# 8.1.1.5: a CSeq we choose ourselves must stay below 2**31; small leaves room to count up.
_INITIAL_SEQ_LIMIT = 1 << 16


class DialogState(Enum):
    EARLY = "Early"
    CONFIRMED = "Confirmed"
    TERMINATED = "Terminated"


def _without_tag(name_addr: NameAddr) -> NameAddr:
    return replace(
        name_addr, params=tuple((k, v) for k, v in name_addr.params if k.lower() != "tag")
    )


def _is_loose(route: NameAddr) -> bool:
    return isinstance(route.uri, SipUri) and route.uri.has_param("lr")


def _request_uri_from_route(route: NameAddr) -> Uri:
    """12.2.1.1 strict routing: the route's URI, without what a Request-URI may not carry
    (19.1.1: URI headers and the `method` parameter)."""
    uri = route.uri
    if isinstance(uri, SipUri):
        return replace(uri.without_params("method"), headers=())
    return uri


class Dialog:
    """One dialog, from either side. Mutable: CSeq counters, target and state move."""

    def __init__(
        self,
        *,
        call_id: str,
        local_tag: str,
        remote_tag: str,
        local_uri: NameAddr,
        remote_uri: NameAddr,
        remote_target: Uri,
        route_set: tuple[NameAddr, ...] = (),
        local_seq: int | None = None,
        remote_seq: int | None = None,
        local_contact: NameAddr | None = None,
        secure: bool = False,
        state: DialogState = DialogState.CONFIRMED,
        is_uac: bool = True,
    ) -> None:
        self.call_id = call_id
        self.local_tag = local_tag
        self.remote_tag = remote_tag
        self.local_uri = _without_tag(local_uri)
        self.remote_uri = _without_tag(remote_uri)
        self.remote_target = remote_target
        self.route_set = route_set
        self.local_seq = local_seq
        self.remote_seq = remote_seq
        self.local_contact = local_contact
        self.secure = secure
        self.state = state
        self.is_uac = is_uac
        # CSeq number of the INVITE that created the dialog: its final response settles an
        # early dialog (13.2.2.4 / 13.3.1.4).
        self.initial_seq: int | None = local_seq if is_uac else remote_seq
        # CSeq numbers of INVITEs without a final response yet, for 14.1 / 14.2 glare.
        self.local_invite_pending: int | None = None
        self.remote_invite_pending: int | None = None
        if state is DialogState.EARLY:
            # The creating INVITE is still unanswered: it counts for 14.1 / 14.2 as well.
            if is_uac:
                self.local_invite_pending = local_seq
            else:
                self.remote_invite_pending = remote_seq

    def __repr__(self) -> str:
        side = "UAC" if self.is_uac else "UAS"
        return f"<Dialog {side} {self.state.value} {self.dialog_id}>"

    @property
    def dialog_id(self) -> DialogId:
        return (self.call_id, self.local_tag, self.remote_tag)

    @property
    def terminated(self) -> bool:
        return self.state is DialogState.TERMINATED

    # --- creation (12.1) ---

    @classmethod
    def from_uac(cls, request: Request, response: Response) -> Dialog:
        """12.1.2: our INVITE (or other dialog-creating request) and a 1xx-with-To-tag or 2xx
        answer to it. The route set is the response's Record-Route, reversed."""
        remote_tag = response.to.tag
        local_tag = request.from_.tag
        if not remote_tag or not local_tag:
            raise SipProtocolError("a dialog needs a From tag and a To tag")
        if response.call_id != request.call_id or response.cseq.seq != request.cseq.seq:
            raise SipProtocolError("the response does not answer this request")
        if response.status < 101 or response.status >= 300:
            raise SipProtocolError(f"a {response.status} does not create a dialog")
        contacts = response.contacts
        if contacts:
            target: Uri = contacts[0].uri
        elif response.is_success:
            raise SipProtocolError("a 2xx that creates a dialog must carry a Contact (12.1.1)")
        else:
            target = request.uri  # an early dialog from a 1xx without Contact
        request_contacts = request.contacts
        return cls(
            call_id=request.call_id,
            local_tag=local_tag,
            remote_tag=remote_tag,
            local_uri=request.from_,
            remote_uri=request.to,
            remote_target=target,
            route_set=tuple(reversed(response.name_addrs("Record-Route"))),
            local_seq=request.cseq.seq,
            remote_seq=None,
            local_contact=request_contacts[0] if request_contacts else None,
            secure=isinstance(request.uri, SipUri) and request.uri.scheme == "sips",
            state=DialogState.CONFIRMED if response.is_success else DialogState.EARLY,
            is_uac=True,
        )

    @classmethod
    def from_uas(cls, request: Request, response: Response) -> Dialog:
        """12.1.1: the request we received and the 1xx/2xx we answer it with, which carries our
        To tag and Contact. The route set is the request's Record-Route, in order."""
        local_tag = response.to.tag
        remote_tag = request.from_.tag
        if not local_tag:
            raise SipProtocolError("our response needs a To tag to create a dialog")
        if not remote_tag:
            # RFC 2543 peers may omit the From tag (12.1.1: then the remote tag is empty).
            remote_tag = ""
        if response.status < 101 or response.status >= 300:
            raise SipProtocolError(f"a {response.status} does not create a dialog")
        contacts = request.contacts
        if not contacts:
            raise SipProtocolError("a dialog-creating request must carry a Contact (8.1.1.8)")
        response_contacts = response.contacts
        return cls(
            call_id=request.call_id,
            local_tag=local_tag,
            remote_tag=remote_tag,
            local_uri=request.to,
            remote_uri=request.from_,
            remote_target=contacts[0].uri,
            route_set=tuple(request.name_addrs("Record-Route")),
            local_seq=None,
            remote_seq=request.cseq.seq,
            local_contact=response_contacts[0] if response_contacts else None,
            secure=isinstance(request.uri, SipUri) and request.uri.scheme == "sips",
            state=DialogState.CONFIRMED if response.is_success else DialogState.EARLY,
            is_uac=False,
        )

    # --- requests we send (12.2.1) ---

    def next_hop(self) -> Uri:
        """Where the request goes: the first route, else the remote target (12.2.1.1 / 8.1.2)."""
        return self.route_set[0].uri if self.route_set else self.remote_target

    def _routing(self) -> tuple[Uri, list[NameAddr]]:
        """12.2.1.1: Request-URI and Route header values."""
        if not self.route_set:
            return self.remote_target, []
        first = self.route_set[0]
        if _is_loose(first):
            return self.remote_target, list(self.route_set)
        # Strict router: it gets the Request-URI; the remote target goes last in Route.
        return _request_uri_from_route(first), [
            *self.route_set[1:],
            NameAddr(uri=self.remote_target),
        ]

    def _build(
        self,
        method: str,
        seq: int,
        via: Via,
        body: bytes,
        content_type: str | None,
        extra_headers: Iterable[tuple[str, str]],
    ) -> Request:
        if via.branch is None:
            via = via.with_params(branch=new_branch())
        uri, routes = self._routing()
        items: list[tuple[str, str]] = [("Via", str(via)), ("Max-Forwards", MAX_FORWARDS)]
        items.extend(("Route", str(route)) for route in routes)
        items.append(("From", str(self.local_uri.with_params(tag=self.local_tag))))
        to = (
            self.remote_uri.with_params(tag=self.remote_tag) if self.remote_tag else self.remote_uri
        )
        items.append(("To", str(to)))
        items.append(("Call-ID", self.call_id))
        items.append(("CSeq", f"{seq} {method}"))
        if method in TARGET_REFRESH_METHODS and self.local_contact is not None:
            items.append(("Contact", str(self.local_contact)))
        items.extend(extra_headers)
        request = Request(method=method, uri=uri, headers=Headers.of(*items))
        if body or content_type is not None:
            request = request.with_body(body, content_type)
        return request

    def create_request(
        self,
        method: str,
        *,
        via: Via,
        body: bytes = b"",
        content_type: str | None = None,
        extra_headers: Iterable[tuple[str, str]] = (),
    ) -> Request:
        """A new in-dialog request (12.2.1.1) with the next local CSeq and `via` on top.

        A target refresh (INVITE, UPDATE, ...) carries `local_contact`. A re-INVITE while
        one of ours is unanswered is refused (14.1); a BYE ends the dialog at once (15.1.1:
        the session is over whatever the answer). ACK and CANCEL are not built here: see
        `create_ack` and `TransactionLayer.cancel`.
        """
        method = method.upper()
        if method in ("ACK", "CANCEL"):
            raise SipProtocolError(f"{method} is not a new in-dialog request")
        if self.terminated:
            raise SipProtocolError(f"cannot send {method} on a terminated dialog")
        if method == "INVITE" and self.local_invite_pending is not None:
            raise SipProtocolError("14.1: a re-INVITE is still waiting for its final response")
        if self.local_seq is None:
            # 12.2.1.1: the UAS side picks its first CSeq the way 8.1.1.5 says.
            self.local_seq = secrets.randbelow(_INITIAL_SEQ_LIMIT)
        self.local_seq += 1
        request = self._build(method, self.local_seq, via, body, content_type, extra_headers)
        if method == "INVITE":
            self.local_invite_pending = self.local_seq
        elif method == "BYE":
            self.state = DialogState.TERMINATED
        return request

    def create_ack(
        self,
        invite: Request,
        response: Response,
        *,
        via: Via | None = None,
        body: bytes = b"",
        content_type: str | None = None,
    ) -> Request:
        """The ACK for a 2xx to `invite` (13.2.2.4): routed like any in-dialog request, the
        INVITE's CSeq number, a new branch (the INVITE's Via with a fresh branch unless `via`
        is given), and the INVITE's credentials. Does not change the dialog: call
        `update_from_response` with the 2xx first so a new Contact is the ACK's target."""
        if invite.method.upper() != "INVITE" or not response.is_success:
            raise SipProtocolError("create_ack is for the 2xx to an INVITE")
        if response.cseq.seq != invite.cseq.seq or response.cseq.method.upper() != "INVITE":
            raise SipProtocolError("the 2xx does not answer this INVITE")
        if response.call_id != self.call_id or (response.to.tag or "") != self.remote_tag:
            raise SipProtocolError("the 2xx belongs to another dialog")
        if via is None:
            via = invite.top_via.with_params(branch=new_branch())
        elif via.branch is None or via.branch == invite.top_via.branch:
            via = via.with_params(branch=new_branch())
        credentials = [
            (name, value)
            for name, value in invite.headers
            if name in ("Authorization", "Proxy-Authorization")
        ]
        return self._build("ACK", invite.cseq.seq, via, body, content_type, credentials)

    def update_from_response(self, response: Response) -> None:
        """A response to a request we sent in this dialog (12.2.1.2, 13.2.2.4)."""
        if response.call_id != self.call_id or (response.to.tag or "") != self.remote_tag:
            raise SipProtocolError("the response belongs to another dialog")
        cseq = response.cseq
        method = cseq.method.upper()
        status = response.status
        if method == "INVITE" and status >= 200 and cseq.seq == self.local_invite_pending:
            self.local_invite_pending = None
        contacts = response.contacts
        if self.state is DialogState.EARLY and method == "INVITE" and cseq.seq == self.initial_seq:
            if status >= 300:
                self.state = DialogState.TERMINATED  # 12.3: a non-2xx ends an early dialog
                return
            if contacts:
                self.remote_target = contacts[0].uri
            if status >= 200:
                # 13.2.2.4: the 2xx confirms the dialog; its Record-Route is the route set.
                self.route_set = tuple(reversed(response.name_addrs("Record-Route")))
                self.state = DialogState.CONFIRMED
            return
        if status in (408, 481):
            self.state = DialogState.TERMINATED  # 12.2.1.2
            return
        if 200 <= status < 300 and method in TARGET_REFRESH_METHODS and contacts:
            self.remote_target = contacts[0].uri  # 12.2.1.2: target refresh

    # --- requests we receive (12.2.2) ---

    def receive_request(self, request: Request) -> int | None:
        """Check an in-dialog request from the peer; a status to refuse it with, or None.

        481 when it is not for this dialog (or the dialog is over), 500 when its CSeq is lower
        than the last one (12.2.2) or when a re-INVITE overlaps the peer's previous one
        (14.2, with Retry-After), 491 when it overlaps ours (14.2). An accepted target refresh
        takes the request's Contact as the remote target; a BYE ends the dialog. ACK and
        CANCEL are not numbered (an ACK shares its INVITE's CSeq) and are never refused.
        """
        if request.call_id != self.call_id or request.to.tag != self.local_tag:
            return 481
        if (request.from_.tag or "") != self.remote_tag:
            return 481
        method = request.method.upper()
        if method in ("ACK", "CANCEL"):
            return None
        if self.terminated:
            return 481
        seq = request.cseq.seq
        if self.remote_seq is not None and seq < self.remote_seq:
            return 500
        if method == "INVITE":
            if self.remote_invite_pending is not None:
                return 500
            if self.local_invite_pending is not None:
                return 491
        self.remote_seq = seq
        if method == "INVITE":
            self.remote_invite_pending = seq
        if method in TARGET_REFRESH_METHODS:
            contacts = request.contacts
            if contacts:
                self.remote_target = contacts[0].uri
        elif method == "BYE":
            self.state = DialogState.TERMINATED
        return None

    def update_from_local_response(self, response: Response) -> None:
        """A response we send on a request of this dialog: the final answer to an INVITE ends
        the re-INVITE overlap window (14.2); on the creating INVITE a 2xx confirms an early
        dialog and a non-2xx ends it."""
        cseq = response.cseq
        if cseq.method.upper() != "INVITE" or response.status < 200:
            return
        if cseq.seq == self.remote_invite_pending:
            self.remote_invite_pending = None
        if self.state is DialogState.EARLY and cseq.seq == self.initial_seq:
            self.state = DialogState.CONFIRMED if response.is_success else DialogState.TERMINATED

    def terminate(self) -> None:
        self.state = DialogState.TERMINATED


class DialogSet:
    """The dialogs a user agent holds, found by their 12 identifiers."""

    def __init__(self) -> None:
        self._dialogs: dict[DialogId, Dialog] = {}

    def __len__(self) -> int:
        return len(self._dialogs)

    def __iter__(self) -> Iterator[Dialog]:
        return iter(list(self._dialogs.values()))

    def __contains__(self, dialog: object) -> bool:
        return isinstance(dialog, Dialog) and self._dialogs.get(dialog.dialog_id) is dialog

    def add(self, dialog: Dialog) -> Dialog:
        if dialog.dialog_id in self._dialogs:
            raise SipProtocolError(f"dialog {dialog.dialog_id} exists already")
        self._dialogs[dialog.dialog_id] = dialog
        return dialog

    def remove(self, dialog: Dialog) -> None:
        if self._dialogs.get(dialog.dialog_id) is dialog:
            del self._dialogs[dialog.dialog_id]

    def get(self, dialog_id: DialogId) -> Dialog | None:
        return self._dialogs.get(dialog_id)

    def find_for_request(self, request: Request) -> Dialog | None:
        """The dialog an incoming request belongs to: our tag is its To tag (12.2.2)."""
        local_tag = request.to.tag
        if local_tag is None:
            return None
        return self._dialogs.get((request.call_id, local_tag, request.from_.tag or ""))

    def find_for_response(self, response: Response) -> Dialog | None:
        """The dialog a response to our request belongs to: our tag is its From tag."""
        local_tag = response.from_.tag
        remote_tag = response.to.tag
        if local_tag is None or remote_tag is None:
            return None
        return self._dialogs.get((response.call_id, local_tag, remote_tag))

    def for_call(self, call_id: str, local_tag: str | None = None) -> list[Dialog]:
        """Every dialog of a Call-ID (forked early dialogs share Call-ID and local tag)."""
        return [
            d
            for d in self._dialogs.values()
            if d.call_id == call_id and (local_tag is None or d.local_tag == local_tag)
        ]

    def prune(self) -> list[Dialog]:
        """Forget terminated dialogs; returns them."""
        gone = [d for d in self._dialogs.values() if d.terminated]
        for dialog in gone:
            del self._dialogs[dialog.dialog_id]
        return gone


__all__ = [
    "TARGET_REFRESH_METHODS",
    "Dialog",
    "DialogId",
    "DialogSet",
    "DialogState",
]
