"""SIP over TCP on asyncio (RFC 3261 18.3): a listener, outbound connections, stream framing.

Responses go back over the connection the request came in on (18.2.2); requests to a peer
reuse an open connection to that address or open a new one. A connection that sends garbage
is answered (when the garbage is an answerable request) and closed: framing on a stream
cannot recover from a bad Content-Length.
"""

from __future__ import annotations

import asyncio
import logging

from telephony.sip.errors import SipParseError
from telephony.sip.parser import StreamFramer, error_response_for
from telephony.transport.base import Address, Receiver

log = logging.getLogger("qconnect.transport.tcp")


class _Connection(asyncio.Protocol):
    def __init__(self, owner: TcpTransport) -> None:
        self._owner = owner
        self._framer = StreamFramer()
        self.transport: asyncio.Transport | None = None
        self.peer: Address | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        host, port = transport.get_extra_info("peername")[:2]
        self.peer = Address("tcp", host, port)
        self._owner._connections[self.peer] = self

    def data_received(self, data: bytes) -> None:
        assert self.peer is not None and self.transport is not None
        try:
            messages = self._framer.feed(data)
        except SipParseError as exc:
            log.warning("tcp %s: unframeable input (%s); closing", self.peer, exc.reason)
            answer = error_response_for(self._framer.pending or data, exc)
            if answer is not None:
                self.transport.write(answer)
            self.transport.close()
            return
        for message in messages:
            self._owner._receiver(message, self.peer, self._owner)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.peer is not None and self._owner._connections.get(self.peer) is self:
            del self._owner._connections[self.peer]

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)


class TcpTransport:
    name = "tcp"

    def __init__(self, receiver: Receiver) -> None:
        self._receiver = receiver
        self._server: asyncio.Server | None = None
        self._connections: dict[Address, _Connection] = {}
        self._connecting: dict[Address, asyncio.Task[None]] = {}
        self._pending: dict[Address, list[bytes]] = {}
        self.local: Address | None = None

    async def start(self, host: str, port: int) -> Address:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Connection(self), host, port)
        sockname = self._server.sockets[0].getsockname()
        self.local = Address("tcp", sockname[0], sockname[1])
        return self.local

    def send(self, data: bytes, destination: Address) -> None:
        key = Address("tcp", destination.host, destination.port)
        connection = self._connections.get(key)
        if connection is not None:
            connection.write(data)
            return
        self._pending.setdefault(key, []).append(data)
        if key not in self._connecting:
            self._connecting[key] = asyncio.get_running_loop().create_task(self._connect(key))

    async def _connect(self, key: Address) -> None:
        loop = asyncio.get_running_loop()
        try:
            _, connection = await asyncio.wait_for(
                loop.create_connection(lambda: _Connection(self), key.host, key.port), 5.0
            )
            # The peer address of an outbound connection is the destination itself.
            self._connections[key] = connection
            for data in self._pending.pop(key, []):
                connection.write(data)
        except (OSError, TimeoutError) as exc:
            # Transactions see no answer and time out (timer B/F), which tells the caller.
            log.warning("tcp connect to %s failed: %s", key, exc)
            self._pending.pop(key, None)
        finally:
            self._connecting.pop(key, None)

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for connection in list(self._connections.values()):
            if connection.transport is not None:
                connection.transport.close()
        for task in self._connecting.values():
            task.cancel()
