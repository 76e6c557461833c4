"""What every SIP transport shares: the peer address type and the receive callback."""

from __future__ import annotations

from typing import NamedTuple, Protocol


class Address(NamedTuple):
    """Where a message came from or goes to: transport name ("udp"/"tcp"), host, port."""

    transport: str
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.transport}:{self.host}:{self.port}"


class Transport(Protocol):
    name: str
    local: Address | None

    def send(self, data: bytes, destination: Address) -> None: ...

    def close(self) -> None: ...


class Receiver(Protocol):
    def __call__(self, data: bytes, source: Address, transport: Transport) -> None: ...
