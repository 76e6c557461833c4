"""The switch process: SIP endpoint + registrar + call routing, on one asyncio loop."""

from __future__ import annotations

import asyncio
import logging
import secrets
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from telephony.center.config import InstanceConfig, users_with_passwords
from telephony.sip.digest import DigestServer
from telephony.sip.message import Request, Response, make_response
from telephony.sip.transaction import ServerTransaction
from telephony.switch.b2bua import B2bua
from telephony.switch.endpoint import ALLOW, Incoming, SipEndpoint
from telephony.switch.media_engine import MediaEngine
from telephony.switch.prompts import PromptLibrary
from telephony.switch.registrar import Registrar
from telephony.switch.rtp_ports import PortRange
from telephony.switch.services import Services

log = logging.getLogger("qconnect.switch")

# RFC 3261 8.2.2.3: extensions we implement; anything else in Require gets 420.
SUPPORTED_EXTENSIONS: frozenset[str] = frozenset()
KNOWN_METHODS = frozenset(
    "INVITE ACK CANCEL BYE OPTIONS REGISTER INFO UPDATE PRACK SUBSCRIBE NOTIFY REFER MESSAGE "
    "PUBLISH".split()
)


@dataclass(frozen=True, slots=True)
class SwitchSettings:
    bind: str = "127.0.0.1"
    advertise: str | None = None
    sip_port: int = 5060
    rtp_ports: tuple[int, int] = (20000, 20999)
    realm: str = "qconnect"
    rtp_timeout: float = 30.0
    transports: tuple[str, ...] = ("udp", "tcp")
    data_dir: Path | None = None  # recordings/ (every leg) and prompts/ (speech cache)
    record: bool = True

    @property
    def advertised(self) -> str:
        return self.advertise or self.bind


class Switch:
    def __init__(self, settings: SwitchSettings, config: InstanceConfig) -> None:
        self.settings = settings
        self.config = config
        self.passwords: Callable[[str], str | None] = users_with_passwords(config).get
        passwords = self.passwords
        data_dir = settings.data_dir or Path(tempfile.mkdtemp(prefix="qconnect-"))
        self.prompts = PromptLibrary(config, data_dir / "prompts")
        self.endpoint = SipEndpoint(advertise=settings.advertised, on_request=self._on_request)
        self.endpoint.on_cancel = self._on_cancel
        self.registrar = Registrar(
            settings.realm,
            passwords,
            DigestServer(settings.realm, secrets.token_bytes(32)),
        )
        self.engine = MediaEngine(
            bind=settings.bind,
            advertise=settings.advertised,
            ports=PortRange(*settings.rtp_ports),
            record_dir=data_dir / "recordings" if settings.record else None,
            rtp_timeout=settings.rtp_timeout,
        )
        self.b2bua = B2bua(
            self.endpoint,
            self.engine,
            domain=settings.advertised,
            hold_music=self.prompts.hold_music,
        )
        self.services = Services(
            self.endpoint, self.engine, config, self.prompts, self.b2bua.legs_by_dialog
        )
        from telephony.center.executor import ContactCenter

        self.center = ContactCenter(self, data_dir)
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        await self.endpoint.start(
            self.settings.bind, self.settings.sip_port, self.settings.transports
        )
        self.engine.start()

    async def stop(self) -> None:
        await self.b2bua.close()
        await self.center.close()
        self.engine.stop()
        self.endpoint.close()

    # --- request dispatch ---

    def _on_request(self, incoming: Incoming) -> None:
        request = incoming.request
        tx = incoming.transaction
        if request.method == "ACK" or request.to.tag is not None:
            leg = self.b2bua.leg_for(request)
            if leg is not None:
                leg.handle(incoming)
            elif tx is not None:
                self.endpoint.respond(tx, make_response(request, 481))
            return
        assert tx is not None
        if (rejection := self._precheck(request)) is not None:
            self.endpoint.respond(tx, rejection)
            return
        match request.method:
            case "REGISTER":
                self.endpoint.respond(
                    tx, self.registrar.handle(request, incoming.source, self.endpoint.now())
                )
                while (event := self.registrar.next_event()) is not None:
                    log.info("registrar: %s", event)
            case "OPTIONS":
                self.endpoint.respond(
                    tx,
                    make_response(
                        request,
                        200,
                        to_tag=self.endpoint.new_tag(),
                        headers=(("Allow", ALLOW), ("Accept", "application/sdp")),
                    ),
                )
            case "INVITE":
                self._invite(incoming, tx)
            case "BYE" | "INFO" | "UPDATE" | "PRACK":
                self.endpoint.respond(tx, make_response(request, 481))
            case "CANCEL":
                # A CANCEL matching no INVITE transaction (RFC 3261 9.2).
                self.endpoint.respond(tx, make_response(request, 481))
            case _:
                # RFC 3261 8.2.1: a method we know but do not take is 405; an unknown one 501.
                status = 405 if request.method in KNOWN_METHODS else 501
                self.endpoint.respond(
                    tx, make_response(request, status, headers=(("Allow", ALLOW),))
                )

    def _precheck(self, request: Request) -> Response | None:
        """What RFC 3261 8.2 says a UAS checks before acting on a request: hops, the URI
        scheme, required extensions (8.2.2), then whether it can read the body and answer in a
        body the caller accepts (8.2.3)."""
        max_forwards = request.headers.get("Max-Forwards")
        if max_forwards is not None and max_forwards.strip() == "0" and request.method != "OPTIONS":
            return make_response(request, 483)
        if request.sip_uri is None:
            return make_response(request, 416)
        required = [r.lower() for r in request.headers.values("Require")]
        unsupported = [r for r in required if r not in SUPPORTED_EXTENSIONS]
        if unsupported and request.method not in ("CANCEL",):
            return make_response(request, 420, headers=(("Unsupported", ", ".join(unsupported)),))
        if request.method == "INVITE":
            if request.body and request.content_type != "application/sdp":
                return make_response(request, 415, headers=(("Accept", "application/sdp"),))
            accepted = [a.split(";")[0].strip().lower() for a in request.headers.values("Accept")]
            if accepted and not any(
                a in ("application/sdp", "application/*", "*/*") for a in accepted
            ):
                return make_response(request, 406, headers=(("Accept", "application/sdp"),))
        return None

    def _invite(self, incoming: Incoming, tx: ServerTransaction) -> None:
        request = incoming.request
        auth = self.registrar.authenticate(request, self.endpoint.now())
        if isinstance(auth, Response):
            self.endpoint.respond(tx, auth)
            return
        self.endpoint.respond(tx, make_response(request, 100))
        uri = request.sip_uri
        assert uri is not None
        target = uri.user or ""
        if self.services.handles(target):
            self._spawn(self.services.answer(incoming, auth, target))
            return
        if self.center.handles(target):
            self._spawn(self.center.inbound(incoming, auth, target))
            return
        dialled = self.config.dial_plan.get(target)
        if dialled is not None and dialled.user is not None:
            # The lab's stand-in for the PSTN: an external number rings a registered phone.
            target = dialled.user
        if self.passwords(target) is None:
            self.endpoint.respond(tx, make_response(request, 404, to_tag=self.endpoint.new_tag()))
            return
        bindings = self.registrar.lookup(target, self.endpoint.now())
        if not bindings:
            log.info("INVITE %s: %s is not registered", request.call_id, target)
            self.endpoint.respond(tx, make_response(request, 480, to_tag=self.endpoint.new_tag()))
            return
        self._spawn(self.b2bua.place_call(incoming, auth, bindings))

    def _on_cancel(self, tx: ServerTransaction, cancel: Request) -> None:
        if not self.b2bua.cancel(tx.request.top_via.branch or tx.request.call_id):
            log.info("CANCEL %s for a call not yet routed", cancel.call_id)
            self.endpoint.respond(tx, make_response(tx.request, 487))

    def _spawn(self, coro: object) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("call task failed", exc_info=task.exception())
