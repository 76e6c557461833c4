"""The SIP layer's one exception family."""

from __future__ import annotations


class SipError(Exception):
    """Base of every error the sans-I/O SIP layer raises."""


class SipParseError(SipError):
    """Malformed input. `reason` becomes the reason phrase of the answer (RFC 3261 21.4.1).

    `status` is the response code to answer with when the message was a request: 400 unless
    the RFC asks for another (505 for a version we do not speak, 416 for a URI scheme we
    cannot route, 413 for an oversized message).
    """

    def __init__(self, reason: str, status: int = 400) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


class SipProtocolError(SipError):
    """A well-formed message that is not valid in the current transaction or dialog state."""
