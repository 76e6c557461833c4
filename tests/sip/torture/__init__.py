"""RFC 4475 section 3 torture messages, bit-exact, with what a server must do with each.

`index.json` is the source of truth (language-neutral, so any test can read it by path):
each case has `file`, `section`, `title`, `kind` ("request" | "response"), `expected`
("valid" | "invalid" | an int status), `layer` ("parser" | "application") and a `note`.

    from pathlib import Path
    import json
    index = json.loads((TORTURE_DIR / "index.json").read_text())
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

TORTURE_DIR = Path(__file__).resolve().parent


def load_index() -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = json.loads((TORTURE_DIR / "index.json").read_text("utf-8"))["cases"]
    return cases


def message(file: str) -> bytes:
    return (TORTURE_DIR / file).read_bytes()


# (filename, expected) pairs: "valid" | "invalid" | status int.
CASES: list[tuple[str, str | int]] = [(case["file"], case["expected"]) for case in load_index()]

__all__ = ["CASES", "TORTURE_DIR", "load_index", "message"]
