"""Contact trace records: durable timelines, derived totals, JSON export."""

from __future__ import annotations

import itertools
import json
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from telephony.center.config import demo_lab
from telephony.center.contact import ContactModel
from telephony.center.ctr import DB_NAME, CtrStore
from telephony.center.events import CenterError

ROOT = Path(__file__).resolve().parents[2]


def test_timeline_is_ordered_and_json_ready(tmp_path: Path) -> None:
    with CtrStore(tmp_path / "ctr.db") as store:
        store.record(
            "c1", "flowBlock", 1.0, flow="Demo inbound", block="Welcome", outcome="success"
        )
        store.record("c1", "prompt", 1.0, what="Welcome", to="customer", id="p1")
        store.record("c1", "promptEnd", 4.5, id="p1", end=4.5)
        store.record("c1", "recording", 2.0, leg="customer", path="rec/c1-customer.wav")
        store.record("c2", "flowBlock", 1.5, flow="Other", block="x")
        record = store.get("c1")
    assert [e["kind"] for e in record["timeline"]] == [
        "flowBlock",
        "prompt",
        "promptEnd",
        "recording",
    ]
    assert record["timeline"][0]["at"] == "1970-01-01T00:00:01.000Z"
    assert record["flowBlocks"][0]["block"] == "Welcome"
    assert record["prompts"] == [
        {
            "what": "Welcome",
            "to": "customer",
            "id": "p1",
            "start": "1970-01-01T00:00:01.000Z",
            "end": "1970-01-01T00:00:04.500Z",
        }
    ]
    assert record["recordings"][0]["path"] == "rec/c1-customer.wav"
    assert record["ended"] is None and record["disconnect"] is None
    json.dumps(record)  # JSON-ready as is


def test_survives_reopen_without_finish(tmp_path: Path) -> None:
    store = CtrStore(tmp_path)  # a --data-dir
    store.record("c1", "banner", 1.0, connection="k1", party="customer", banner="Connected")
    store.close()
    assert (tmp_path / DB_NAME).is_file()
    with CtrStore(tmp_path) as reopened:
        record = reopened.get("c1")
        assert record["timeline"][0]["banner"] == "Connected"
        assert record["ended"] is None
        assert [c["contact"] for c in reopened.list_contacts()] == ["c1"]


def test_survives_a_crashed_process(tmp_path: Path) -> None:
    # The writer dies without close() or finish(): everything recorded must be there.
    script = textwrap.dedent(
        f"""
        import os, sys
        sys.path.insert(0, {str(ROOT)!r})
        from telephony.center.ctr import CtrStore
        store = CtrStore({str(tmp_path)!r})
        for i in range(5):
            store.record("crash", "flowBlock", float(i), block=f"b{{i}}")
        os._exit(3)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], timeout=60)
    assert done.returncode == 3
    with CtrStore(tmp_path) as store:
        blocks = [e["block"] for e in store.get("crash")["flowBlocks"]]
    assert blocks == ["b0", "b1", "b2", "b3", "b4"]


def test_wal_mode(tmp_path: Path) -> None:
    with CtrStore(tmp_path / "x.sqlite3") as store:
        store.record("c", "k", 0.0)
    mode = sqlite3.connect(tmp_path / "x.sqlite3").execute("PRAGMA journal_mode").fetchone()
    assert mode == ("wal",)


def test_finish_and_list(tmp_path: Path) -> None:
    with CtrStore(":memory:") as store:
        store.record("a", "flowBlock", 10.0, block="x")
        store.record("b", "flowBlock", 5.0, block="y")
        store.finish("a", "customer disconnected", "customer", 42.0)
        record = store.get("a")
        assert record["disconnect"] == {
            "reason": "customer disconnected",
            "party": "customer",
            "at": "1970-01-01T00:00:42.000Z",
        }
        assert record["endedReason"] == "customer disconnected"
        assert record["duration"] == 32.0
        assert record["timeline"][-1]["kind"] == "disconnect"
        assert [c["contact"] for c in store.list_contacts()] == ["b", "a"]
        assert "a" in store and "zzz" not in store
        with pytest.raises(CenterError) as info:
            store.get("zzz")
        assert info.value.status == 404


def test_scenario1_events_give_holds_transfers_and_end(tmp_path: Path) -> None:
    counter = itertools.count(1)
    model = ContactModel(demo_lab(), new_id=lambda: f"id{next(counter)}")
    store = CtrStore(tmp_path)

    def flush() -> None:
        while (event := model.next_event()) is not None:
            store.record_event(event)

    contact = model.create_contact(1.0)
    model.enqueue(contact.id, "BasicQueue", 2.0)
    model.accept("john", contact.id, 3.0)
    model.connected(contact.id, 4.0)
    started = model.quick_connect("john", contact.id, "Maria", 10.0)  # customer held from 10
    c2 = started.transfer_contact
    assert c2 is not None
    model.transfer_to_agent(c2, "maria", 11.0)
    model.accept("maria", c2, 12.0)
    model.connected(c2, 14.0)
    model.conference("john", contact.id, 15.0)  # customer off hold: 5 s
    model.hold_all("john", contact.id, 16.0)  # both held
    model.resume("john", started.connection, 17.0)  # maria: 1 s
    model.leave("john", contact.id, 20.0)  # customer's hold ends with john's contact: 4 s
    flush()
    model.customer_hung_up(contact.id, 30.0)
    flush()

    record = store.get(contact.id)
    customer_conn = next(
        e["connection"] for e in record["timeline"] if e["kind"] == "connectionAdded"
    )
    assert record["holds"][customer_conn] == {"party": "customer", "count": 2, "duration": 9.0}
    assert record["holds"][started.connection] == {"party": "maria", "count": 1, "duration": 1.0}
    assert record["holdCount"] == 3 and record["holdDuration"] == 10.0
    assert [(t["kind"], t["endpoint"]) for t in record["transfers"]] == [
        ("quickConnect", "maria"),
        ("handover", "maria"),
    ]
    assert record["disconnect"]["reason"] == "transferred"
    assert record["disconnect"]["party"] == "john"

    second = store.get(c2)
    assert second["previousContact"] == contact.id
    assert second["initialContact"] == contact.id
    assert second["endedReason"] == "customer disconnected"
    banners = [e["banner"] for e in second["timeline"] if e["kind"] == "banner"]
    assert banners == ["Connecting", "Connected", "Joined", "Connected", "Ended"]

    out = store.export_json(c2, tmp_path / "export" / f"{c2}.json")
    assert json.loads(out.read_text()) == second
    store.close()


def test_open_hold_counts_until_now(tmp_path: Path) -> None:
    with CtrStore(tmp_path) as store:
        store.record("c", "banner", 10.0, connection="k", party="customer", banner="On hold")
        store.record("c", "flowBlock", 13.0, block="still holding")
        assert store.get("c")["holds"]["k"]["duration"] == 3.0
        store.finish("c", "customer disconnected", "customer", 20.0)
        assert store.get("c")["holds"]["k"] == {"party": "customer", "count": 1, "duration": 10.0}
