"""asyncio transports for SIP (UDP, TCP): sockets and framing only, no protocol logic."""

from telephony.transport.base import Address, Receiver, Transport

__all__ = ["Address", "Receiver", "Transport"]
