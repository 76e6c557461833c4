"""`qconnect test --target … --api …`: scenarios against a running `qconnect serve`.

The switch is a real subprocess on free loopback ports; the scenario run is another
subprocess, exactly as a user types it. The pure parts (target parsing, which events are
rebuilt from the contact trace records) are tested without sockets.
"""

from __future__ import annotations

import asyncio
import random
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from telephony.center.config import demo_lab
from telephony.lab.remote import RemoteControl, RemoteError, Target, parse_host_port
from telephony.lab.scenario import SCENARIOS_DIR

REPO = Path(__file__).resolve().parents[2]
SCENARIO3 = SCENARIOS_DIR / "scenario3_phone_number_quick_connect.yaml"
ADMIN_TOKEN = "x"


def free_port() -> int:
    """A port free for both UDP and TCP (the switch listens on both for SIP)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = int(tcp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no free port")


@dataclass(frozen=True)
class Served:
    sip: str
    api: str


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """`qconnect serve` (the demo lab) as a subprocess on free ports."""
    data = tmp_path_factory.mktemp("served")
    sip, http = free_port(), free_port()
    rtp = 30000 + random.randrange(0, 150) * 200
    log = (data / "serve.log").open("wb")
    command = [
        *(sys.executable, "-m", "telephony.cli", "serve"),
        *("--sip-port", str(sip), "--http-port", str(http), "--mqtt", "off"),
        *("--rtp-ports", f"{rtp}-{rtp + 199}", "--admin-token", ADMIN_TOKEN),
        *("--data-dir", str(data / "switch")),
    ]
    process = subprocess.Popen(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    api = f"http://127.0.0.1:{http}"
    try:
        deadline = time.monotonic() + 20
        while True:
            if process.poll() is not None:
                pytest.fail(f"qconnect serve exited {process.returncode}: {_text(data)}")
            try:
                with urllib.request.urlopen(api + "/api/openapi.json", timeout=1):
                    break
            except (urllib.error.URLError, OSError):
                if time.monotonic() > deadline:
                    pytest.fail(f"qconnect serve did not come up: {_text(data)}")
                time.sleep(0.1)
        yield Served(f"127.0.0.1:{sip}", api)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _text(data: Path) -> str:
    return (data / "serve.log").read_text(errors="replace")[-3000:]


@pytest.mark.timeout(120)
def test_scenario3_against_a_running_switch(served: Served, tmp_path: Path) -> None:
    junit = tmp_path / "junit.xml"
    run = subprocess.run(
        [
            *(sys.executable, "-m", "telephony.cli", "test", str(SCENARIO3)),
            *("--target", served.sip, "--api", served.api, "--admin-token", ADMIN_TOKEN),
            *("--out", str(tmp_path / "report"), "--junit", str(junit)),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=100,
    )
    output = run.stdout + run.stderr
    assert run.returncode == 0, output
    suite = ET.parse(junit).getroot()
    cases = suite.findall(".//testcase")
    assert len(cases) >= 9, ET.tostring(suite, encoding="unicode")
    failed = [c.get("name") for c in cases if c.find("failure") is not None]
    errors = [c.get("name") for c in cases if c.find("error") is not None]
    assert not failed and not errors, output
    # The remote run narrates what only the sockets told it, and the contact trace record
    # (read with the admin token) carried the outbound caller ID.
    assert "john's CCP: +15557770000 -> Connected" in output
    assert "transfers[0].callerIdName = 'Example Corp'" in output
    report = (tmp_path / "report" / "index.html").read_text()
    assert "Scenario 3" in report and "supplier-wave.png" in report


async def test_a_config_the_running_switch_does_not_serve_is_refused(served: Served) -> None:
    config = demo_lab()
    john = config.agents["john"].model_copy(update={"password": "not-johns"})
    wrong = config.model_copy(update={"agents": {**config.agents, "john": john}})
    host, port = parse_host_port(served.sip)
    control = RemoteControl(wrong, Target.parse(served.sip, served.api))
    try:
        with pytest.raises(RemoteError, match="does not know agent john with the password"):
            await asyncio.wait_for(control.start(), 10)
    finally:
        await control.stop()
    assert (host, port) == ("127.0.0.1", control.sip_address.port)


# --- pure parts ---


def test_target_parsing() -> None:
    assert parse_host_port("127.0.0.1:5060") == ("127.0.0.1", 5060)
    assert parse_host_port("[::1]:5070") == ("::1", 5070)
    target = Target.parse("localhost:5070")
    assert target.api == "http://localhost:8080"
    assert target.sip.port == 5070 and target.sip.host in ("127.0.0.1", "::1")
    for bad in ("localhost", "host:", "host:99999", ":5060"):
        with pytest.raises(ValueError, match="SIP_HOST:PORT"):
            parse_host_port(bad)
    with pytest.raises(ValueError, match="--api"):
        Target.parse("127.0.0.1:5060", "ftp://x")


def test_backfill_rebuilds_only_what_no_socket_delivered() -> None:
    control = RemoteControl(demo_lab(), Target.parse("127.0.0.1:5060", "http://127.0.0.1:1"))
    seen: list[dict[str, object]] = []
    control.subscribe(seen.append)
    block = {
        "type": "flowBlock",
        "contact": "c1",
        "flow": "Demo inbound",
        "block": "Transfer to queue",
        "blockType": "TransferContactToQueue",
        "outcome": "",
        "at": "2026-11-25T17:33:19.390Z",
    }
    hold = {"type": "promptStarted", "contact": "c1", "prompt": "p2", "what": "Hold music"}
    control._take({"type": "snapshot", "agent": "john", "contacts": [{"id": "c1"}]})
    control._take(block)
    control._take(block)  # the same event on maria's socket
    control._take({**hold, "to": "customer", "at": "2026-11-25T17:33:20.000Z"})
    assert [e["type"] for e in seen] == ["flowBlock", "promptStarted"]
    record = {
        "contact": "c1",
        "prompts": [
            {"id": "p1", "what": "Welcome", "to": "customer", "start": "2026-11-25T17:33:15.460Z"},
            {"id": "p2", "what": "Hold music", "to": "customer", "start": "2026-11-25T17:33:20Z"},
        ],
        "timeline": [
            {**_entry(block, 2), "t": 1795628399.39},
            {
                "kind": "flowBlock",
                "flow": "Demo inbound",
                "block": "Welcome",
                "blockType": "MessageParticipant",
                "outcome": "",
                "seq": 1,
                "at": "2026-11-25T17:33:15.460Z",
                "t": 1795628395.46,
            },
            {"kind": "banner", "agent": "john", "seq": 3, "at": "x", "t": 1.0},
        ],
    }
    missed = control.backfill([record])
    assert [(e["type"], e.get("what") or e.get("block")) for e in missed] == [
        ("prompt", "Welcome"),
        ("flowBlock", "Welcome"),
    ]
    assert missed[1]["t"] == 1795628395.46
    assert list(control._contacts) == ["c1"]


def _entry(event: dict[str, object], seq: int) -> dict[str, object]:
    fields = {k: v for k, v in event.items() if k not in ("type", "contact")}
    return {**fields, "kind": event["type"], "seq": seq}
