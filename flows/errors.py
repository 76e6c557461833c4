"""The one exception family of the flow layer.

A :class:`FlowError` carries every :class:`Problem` found, each pointing at a
file, a line and a block, so ``qconnect check`` can print them all at once
instead of making the user fix one mistake per run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with an input file, located as precisely as we can."""

    file: str
    line: int | None
    where: str
    message: str

    def __str__(self) -> str:
        location = f"{self.file}:{self.line}" if self.line is not None else self.file
        if self.where:
            return f"{location}: {self.where}: {self.message}"
        return f"{location}: {self.message}"


class ProblemsError(Exception):
    """Bad input found in a file: ``problems`` lists every error, one per line of the message
    (the shape `qconnect check` prints). Config, flow and scenario errors share it."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems: tuple[Problem, ...] = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class FlowError(ProblemsError):
    """A flow could not be loaded or run.

    ``problems`` lists every error found; ``block_id`` and ``block_type``
    name the block of the first one when it concerns a block.
    """

    def __init__(
        self,
        problems: Sequence[Problem],
        *,
        block_id: str | None = None,
        block_type: str | None = None,
    ) -> None:
        if not problems:
            raise ValueError("FlowError needs at least one problem")
        super().__init__(problems)
        self.block_id = block_id
        self.block_type = block_type

    @property
    def file(self) -> str:
        return self.problems[0].file

    @classmethod
    def single(
        cls,
        file: str,
        message: str,
        *,
        line: int | None = None,
        where: str = "",
        block_id: str | None = None,
        block_type: str | None = None,
    ) -> FlowError:
        return cls([Problem(file, line, where, message)], block_id=block_id, block_type=block_type)
