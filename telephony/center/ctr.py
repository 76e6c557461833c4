"""Contact trace records: per contact, an ordered, durable timeline.

Each entry is written the moment it happens — one INSERT and one commit —
to SQLite in WAL mode, so a crashed switch loses nothing it had already
done (a committed WAL transaction survives the process; ``synchronous=FULL``
extends that to power loss at the cost of an fsync per entry).

Entries are free-form ``(kind, at, fields)``; :meth:`CtrStore.get` derives
the record users read from a few well-known kinds:

=================  ==================================================  ===========================
kind               fields                                              derived into
=================  ==================================================  ===========================
``flowBlock``      flow, block, blockType, outcome                     ``flowBlocks``
``prompt``         what, to, start, end (optional), id (optional)      ``prompts``
``promptEnd``      id, end                                             the ``prompt`` with that id
``banner``         connection, party, banner, previous, agent, reason  ``holds`` (count, duration)
``quickConnect``   name, quickConnectType, target,                      ``transfers`` (endpoint)
``transfer``       endpoint, ...                                       ``transfers``
``handover``       agent, party, toContact                             ``transfers``
``transferFailed`` connection, party, reason                           ``transfers`` (failed)
``recording``      leg, party, path                                    ``recordings``
``disconnect``     reason, party (written by :meth:`CtrStore.finish`)  ``disconnect``
=================  ==================================================  ===========================

Every :mod:`telephony.center.events` event with a contact can be stored
as is with :meth:`CtrStore.record_event`.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any, Literal

from telephony.center.events import CenterError, CenterEvent, ContactEnded, iso8601

DB_NAME = "ctr.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS contacts (
    contact  TEXT PRIMARY KEY,
    first_at REAL NOT NULL,
    ended_at REAL,
    reason   TEXT,
    party    TEXT
);
CREATE TABLE IF NOT EXISTS entries (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    contact TEXT NOT NULL,
    kind    TEXT NOT NULL,
    at      REAL NOT NULL,
    fields  TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS entries_by_contact ON entries (contact, seq);
"""

_TRANSFER_KINDS = ("quickConnect", "transfer", "handover", "transferFailed")
_ON_HOLD = "On hold"


class CtrStore:
    """The contact trace records of one instance, in one SQLite file."""

    def __init__(
        self, path: str | Path, *, synchronous: Literal["NORMAL", "FULL"] = "NORMAL"
    ) -> None:
        target = Path(path)
        if str(path) != ":memory:" and target.is_dir():
            target = target / DB_NAME  # given --data-dir
        if str(path) != ":memory:":
            target.parent.mkdir(parents=True, exist_ok=True)
        self.path = target
        self._db = sqlite3.connect(str(path) if str(path) == ":memory:" else target)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={synchronous}")
        self._db.executescript(_SCHEMA)
        self._db.commit()

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> CtrStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing ---------------------------------------------------------------------------

    def record(self, contact_id: str, kind: str, at: float, /, **fields: Any) -> None:
        """Append one entry to the contact's timeline, committed before returning."""
        payload = json.dumps(fields, default=str, sort_keys=True)
        with self._db:  # one transaction: both statements or neither
            self._db.execute(
                "INSERT OR IGNORE INTO contacts (contact, first_at) VALUES (?, ?)",
                (contact_id, at),
            )
            self._db.execute(
                "INSERT INTO entries (contact, kind, at, fields) VALUES (?, ?, ?, ?)",
                (contact_id, kind, at, payload),
            )

    def finish(self, contact_id: str, reason: str, party: str | None, at: float) -> None:
        """The contact ended: how, and who ended it."""
        with self._db:
            self._db.execute(
                "INSERT OR IGNORE INTO contacts (contact, first_at) VALUES (?, ?)",
                (contact_id, at),
            )
            self._db.execute(
                "INSERT INTO entries (contact, kind, at, fields) VALUES (?, 'disconnect', ?, ?)",
                (contact_id, at, json.dumps({"reason": reason, "party": party}, sort_keys=True)),
            )
            self._db.execute(
                "UPDATE contacts SET ended_at = ?, reason = ?, party = ? WHERE contact = ?",
                (at, reason, party, contact_id),
            )

    def record_event(self, event: CenterEvent) -> bool:
        """Store a center event on its contact's timeline; False for events without one."""
        if isinstance(event, ContactEnded):
            self.finish(event.contact, event.reason, event.party, event.at)
            return True
        contact = getattr(event, "contact", None)
        if contact is None:
            return False
        data = event.to_json()
        kind = data.pop("type")
        for key in ("contact", "at"):
            data.pop(key, None)
        self.record(contact, kind, event.at, **data)
        return True

    # -- reading ---------------------------------------------------------------------------

    def __contains__(self, contact_id: object) -> bool:
        row = self._db.execute(
            "SELECT 1 FROM contacts WHERE contact = ?", (str(contact_id),)
        ).fetchone()
        return row is not None

    def list_contacts(self) -> list[dict[str, Any]]:
        """Every contact recorded, oldest first: id, start, end, how it ended."""
        rows = self._db.execute(
            "SELECT contact, first_at, ended_at, reason, party FROM contacts ORDER BY first_at, rowid"
        ).fetchall()
        return [
            {
                "contact": contact,
                "started": iso8601(first),
                "ended": iso8601(ended) if ended is not None else None,
                "reason": reason,
                "party": party,
            }
            for contact, first, ended, reason, party in rows
        ]

    def get(self, contact_id: str) -> dict[str, Any]:
        """The whole record as a JSON-ready dict, with derived totals."""
        head = self._db.execute(
            "SELECT first_at, ended_at, reason, party FROM contacts WHERE contact = ?",
            (contact_id,),
        ).fetchone()
        if head is None:
            raise CenterError(f"no contact trace record for {contact_id!r}", status=404)
        first_at, ended_at, reason, party = head
        rows = self._db.execute(
            "SELECT seq, kind, at, fields FROM entries WHERE contact = ? ORDER BY seq",
            (contact_id,),
        ).fetchall()
        entries = [(seq, kind, at, json.loads(text)) for seq, kind, at, text in rows]
        timeline = [
            {**fields, "seq": seq, "kind": kind, "at": iso8601(at), "t": at}
            for seq, kind, at, fields in entries
        ]
        last_at = entries[-1][2] if entries else first_at
        created: dict[str, Any] = next((f for _, k, _, f in entries if k == "contactCreated"), {})
        holds = _holds(entries, ended_at if ended_at is not None else last_at)
        return {
            "contact": contact_id,
            "initialContact": created.get("initialContact", contact_id),
            "previousContact": created.get("previousContact"),
            "started": iso8601(first_at),
            "ended": iso8601(ended_at) if ended_at is not None else None,
            "disconnect": (
                {"reason": reason, "party": party, "at": iso8601(ended_at)}
                if ended_at is not None
                else None
            ),
            "endedReason": reason,
            "duration": (ended_at if ended_at is not None else last_at) - first_at,
            "timeline": timeline,
            "flowBlocks": [_brief(e) for e in entries if e[1] == "flowBlock"],
            "prompts": _prompts(entries),
            "holds": holds,
            "holdCount": sum(h["count"] for h in holds.values()),
            "holdDuration": sum(h["duration"] for h in holds.values()),
            "transfers": [
                {**_brief(e), "endpoint": _endpoint(e[3])}
                for e in entries
                if e[1] in _TRANSFER_KINDS
            ],
            "recordings": [_brief(e) for e in entries if e[1] == "recording"],
        }

    def export_json(self, contact_id: str, path: str | Path) -> Path:
        """Write the record as pretty JSON; returns the file written."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(self.get(contact_id), indent=2) + "\n", encoding="utf-8")
        return target


def _brief(entry: tuple[int, str, float, dict[str, Any]]) -> dict[str, Any]:
    _, kind, at, fields = entry
    return {**fields, "kind": kind, "at": iso8601(at)}


def _endpoint(fields: dict[str, Any]) -> Any:
    for key in ("target", "endpoint", "party"):
        if fields.get(key) is not None:
            return fields[key]
    return None


def _prompts(entries: list[tuple[int, str, float, dict[str, Any]]]) -> list[dict[str, Any]]:
    prompts: list[dict[str, Any]] = []
    by_id: dict[str, dict[str, Any]] = {}
    for _, kind, at, fields in entries:
        if kind == "prompt":
            item = {"start": at, **fields}
            prompts.append(item)
            if fields.get("id") is not None:
                by_id[str(fields["id"])] = item
        elif kind == "promptEnd" and str(fields.get("id")) in by_id:
            by_id[str(fields["id"])]["end"] = fields.get("end", at)
    for item in prompts:
        for key in ("start", "end"):
            if isinstance(item.get(key), int | float):
                item[key] = iso8601(float(item[key]))
    return prompts


def _holds(
    entries: list[tuple[int, str, float, dict[str, Any]]], until: float
) -> dict[str, dict[str, Any]]:
    """Hold count and seconds per connection, from its banner changes."""
    holds: dict[str, dict[str, Any]] = {}
    since: dict[str, float] = {}
    for _, kind, at, fields in entries:
        if kind != "banner" or fields.get("connection") is None:
            continue
        conn = str(fields["connection"])
        entry = holds.setdefault(conn, {"party": fields.get("party"), "count": 0, "duration": 0.0})
        held = fields.get("banner") == _ON_HOLD
        if held and conn not in since:
            since[conn] = at
            entry["count"] += 1
        elif not held and conn in since:
            entry["duration"] += at - since.pop(conn)
    for conn, start in since.items():
        holds[conn]["duration"] += max(0.0, until - start)
    return {conn: h for conn, h in holds.items() if h["count"]}
