"""Shared helpers for the agent interface tests: a real switch with its interfaces on free
ports, scripted phones making real contacts, and a real mosquitto.

Every test here talks to the switch the way users do: HTTP, WebSocket, MQTT or a browser.
"""

from __future__ import annotations

import asyncio
import base64
import os
import random
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from telephony.api.service import AgentInterfaces, InterfaceSettings
from telephony.center.config import demo_lab
from telephony.lab.phone import Phone, PhoneCall
from telephony.switch.server import Switch, SwitchSettings
from telephony.transport.base import Address

ADMIN_TOKEN = "admin-secret-token"
DID = "+15550100"
MOSQUITTO = "/usr/sbin/mosquitto"
CHROMIUM = "/usr/bin/chromium"


def require(path: str) -> None:
    """A real broker or browser never skips silently in CI: missing there is a failure."""
    if Path(path).exists() or shutil.which(path):
        return
    message = f"missing {path}: run scripts/install-system-deps.sh"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def basic(login: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{login}:{password}".encode()).decode()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def wait_for(predicate: Callable[[], Any], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {within} s waiting for {what}")


class Lab:
    """The switch, its interfaces, and helpers to make real contacts."""

    def __init__(self, switch: Switch, api: AgentInterfaces) -> None:
        self.switch = switch
        self.api = api
        self.base = f"http://127.0.0.1:{api.http_port}"
        self.events: list[dict[str, Any]] = []
        switch.center.subscribe(self.events.append)
        self.phones: list[Phone] = []
        self.http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))

    def url(self, path: str) -> str:
        return self.base + path

    def auth(self, agent: str, password: str | None = None) -> dict[str, str]:
        return {"Authorization": basic(agent, password if password is not None else agent)}

    async def request(
        self,
        method: str,
        path: str,
        *,
        agent: str | None = None,
        headers: dict[str, str] | None = None,
        json: Any = None,
        data: str | bytes | None = None,
    ) -> tuple[int, Any, aiohttp.ClientResponse]:
        all_headers = dict(self.auth(agent)) if agent is not None else {}
        all_headers.update(headers or {})
        async with self.http.request(
            method, self.url(path), headers=all_headers, json=json, data=data
        ) as response:
            body = await response.json(content_type=None)
            return response.status, body, response

    async def phone(self, user: str, **kw: Any) -> Phone:
        p = Phone(user, user, Address("udp", "127.0.0.1", self.switch.endpoint.port), **kw)
        await p.start()
        assert (await p.register()).status == 200
        self.phones.append(p)
        return p

    async def offered_call(self, agent_phone: Phone) -> tuple[PhoneCall, PhoneCall, str]:
        """A customer dials the DID; returns (customer's call, the agent's ringing call,
        contact id) once the contact rings the agent (inbound flow, then the queue)."""
        customer = await self.phone("customer")
        call = await customer.call(DID)
        ringing = await asyncio.wait_for(agent_phone.incoming.get(), 20)
        contact = self.offered_to(agent_phone.user)
        return call, ringing, contact

    def offered_to(self, agent: str) -> str:
        offers = [e for e in self.events if e["type"] == "offerCreated" and e["agent"] == agent]
        assert offers, f"no offer to {agent}"
        return str(offers[-1]["contact"])

    def banners(self, agent: str, party: str | None = None) -> list[str]:
        return [
            e["banner"]
            for e in self.events
            if e["type"] == "banner"
            and e.get("agent") == agent
            and (party is None or e.get("party") == party)
        ]

    async def close(self) -> None:
        await self.http.close()
        for p in self.phones:
            await p.stop()


async def start_lab(
    tmp_path: Path, *, mqtt: str = "off", mqtt_prefix: str = "qconnect/", **config: Any
) -> tuple[Switch, AgentInterfaces]:
    base = 30000 + random.randrange(0, 300) * 100
    lab_config = demo_lab().model_copy(update={"ring_timeout": 15.0, **config})
    switch = Switch(
        SwitchSettings(sip_port=0, rtp_ports=(base, base + 99), data_dir=tmp_path, record=False),
        lab_config,
    )
    await switch.start()
    api = AgentInterfaces(
        switch.center,
        InterfaceSettings(
            http_port=0, mqtt=mqtt, mqtt_port=0, mqtt_prefix=mqtt_prefix, admin_token=ADMIN_TOKEN
        ),
    )
    await api.start()
    return switch, api


@pytest.fixture
async def lab(tmp_path: Path) -> AsyncIterator[Lab]:
    switch, api = await start_lab(tmp_path)
    lab = Lab(switch, api)
    yield lab
    await lab.close()
    await api.stop()
    await switch.stop()


class Mosquitto:
    """Debian's mosquitto on a free loopback port, stopped and restarted at will."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.config = workdir / "mosquitto.conf"
        self.log = workdir / "mosquitto.log"
        self.config.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
        )
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [MOSQUITTO, "-c", str(self.config)], stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {self.log.read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("mosquitto did not listen within 10 s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    require(MOSQUITTO)
    broker = Mosquitto(tmp_path)
    broker.start()
    yield broker
    broker.stop()
