"""RTP ports for call legs: an even/odd pair per leg from the configured range."""

from __future__ import annotations


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
