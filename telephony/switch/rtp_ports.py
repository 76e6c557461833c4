"""RTP sockets for call legs: an even/odd port pair per leg from the configured range.

A `MediaSocket` is the switch end of one leg's media: it latches onto the address the phone
actually sends from (symmetric RTP, RFC 4961), so phones behind NAT or with a wrong SDP
address still get audio back, and it remembers when the last packet came (inactivity).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

log = logging.getLogger("qconnect.rtp")


class PortsExhausted(RuntimeError):
    """No free RTP port pair left in the configured range: the call gets 503."""


class PortRange:
    def __init__(self, first: int, last: int) -> None:
        if first % 2:
            first += 1
        if last - first < 1:
            raise ValueError(f"RTP port range {first}-{last} holds no even/odd pair")
        self.first = first
        self.last = last
        self._in_use: set[int] = set()
        self._next = first

    def __len__(self) -> int:
        return (self.last - self.first + 1) // 2

    def take(self) -> int:
        """The next free even port (RTCP would use +1), round robin so a just-freed port
        is not reused at once (late packets of the old call would leak into the new one)."""
        for _ in range(len(self)):
            port = self._next
            self._next = port + 2 if port + 3 <= self.last else self.first
            if port not in self._in_use:
                self._in_use.add(port)
                return port
        raise PortsExhausted(f"all {len(self)} RTP port pairs in {self.first}-{self.last} are busy")

    def give_back(self, port: int) -> None:
        self._in_use.discard(port)


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, owner: MediaSocket) -> None:
        self._owner = owner

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:  # type: ignore[override]
        self._owner._received(data, (addr[0], addr[1]))

    def error_received(self, exc: Exception) -> None:
        log.debug("rtp %d: %s", self._owner.port, exc)


class MediaSocket:
    """One leg's RTP socket."""

    def __init__(self, ports: PortRange, bind: str, name: str) -> None:
        self._ports = ports
        self._bind = bind
        self.name = name
        self.port = 0
        self.remote: tuple[str, int] | None = None  # from SDP, then latched
        self.latched = False
        self.last_received: float | None = None
        self.packets_in = 0
        self.packets_out = 0
        self.on_packet: Callable[[bytes], None] = lambda data: None
        self._transport: asyncio.DatagramTransport | None = None

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        for _ in range(len(self._ports)):
            port = self._ports.take()
            try:
                transport, _ = await loop.create_datagram_endpoint(
                    lambda: _Protocol(self), local_addr=(self._bind, port)
                )
            except OSError:
                # Someone outside the switch holds it; leave it marked taken and move on.
                continue
            self._transport = transport
            self.port = port
            return
        raise PortsExhausted("no bindable RTP port left")

    def set_remote(self, host: str, port: int) -> None:
        """The address from the peer's SDP. A latched address wins until the SDP changes."""
        if self.remote != (host, port):
            self.remote = (host, port)
            self.latched = False

    def _received(self, data: bytes, addr: tuple[str, int]) -> None:
        if not self.latched and addr != self.remote:
            log.info("rtp %s latched to %s:%d (SDP said %s)", self.name, addr[0], addr[1], self.remote)
        self.remote = addr
        self.latched = True
        self.packets_in += 1
        self.last_received = asyncio.get_running_loop().time()
        self.on_packet(data)

    def send(self, data: bytes) -> None:
        if self._transport is None or self.remote is None or self.remote[1] == 0:
            return
        if self.remote[0] == "0.0.0.0":  # RFC 3264 8.4 old-style hold: send nothing
            return
        self._transport.sendto(data, self.remote)
        self.packets_out += 1

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None
            self._ports.give_back(self.port)
