"""SIP over UDP on asyncio: a socket, nothing else (RFC 3261 18.1.1/18.2.1)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from telephony.transport.base import Address, Receiver

log = logging.getLogger("qconnect.transport.udp")


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, receive: Callable[[bytes, Address], None]) -> None:
        self._receive = receive

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self._receive(data, Address("udp", addr[0], addr[1]))

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable etc.: a phone went away. Transactions time out on their own.
        log.debug("udp error: %s", exc)


class UdpTransport:
    name = "udp"

    def __init__(self, receiver: Receiver) -> None:
        self._receiver = receiver
        self._transport: asyncio.DatagramTransport | None = None
        self.local: Address | None = None

    async def start(self, host: str, port: int) -> Address:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _Protocol(self._receive), local_addr=(host, port)
        )
        self._transport = transport
        sockname = transport.get_extra_info("sockname")
        self.local = Address("udp", sockname[0], sockname[1])
        return self.local

    def _receive(self, data: bytes, source: Address) -> None:
        self._receiver(data, source, self)

    def send(self, data: bytes, destination: Address) -> None:
        if self._transport is None or self._transport.is_closing():
            return
        self._transport.sendto(data, (destination.host, destination.port))

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
