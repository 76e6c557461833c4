"""The agent interfaces as one service started and stopped with the switch (`qconnect serve`)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from telephony.api.auth import Authenticator
from telephony.api.http import HttpServer, build_app
from telephony.api.hub import EventHub
from telephony.api.mqtt import EmbeddedBroker, MqttBus, MqttSettings, parse_broker_url
from telephony.center.executor import ContactCenter

log = logging.getLogger("qconnect.api")


@dataclass(frozen=True, slots=True)
class InterfaceSettings:
    bind: str = "127.0.0.1"
    http_port: int = 8080  # 0: any free port
    mqtt: str = "embedded"  # embedded | off | mqtt://host:port
    mqtt_port: int = 1883  # the embedded broker's port (0: any free port)
    mqtt_prefix: str = "qconnect/"
    mqtt_username: str | None = None
    mqtt_password: str | None = None
    admin_token: str | None = None


class AgentInterfaces:
    """HTTP API + WebSocket + web CCP, and the MQTT bus (with its embedded broker)."""

    def __init__(self, center: ContactCenter, settings: InterfaceSettings) -> None:
        self.center = center
        self.settings = settings
        if settings.mqtt not in ("embedded", "off"):
            parse_broker_url(settings.mqtt)  # MqttConfigError before anything starts
        prefix = settings.mqtt_prefix
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        self.prefix = prefix
        passwords = {login: agent.password for login, agent in center.config.agents.items()}
        self.auth = Authenticator(passwords, settings.admin_token)
        self.hub = EventHub(center)
        self.http = HttpServer(
            build_app(center, self.hub, self.auth), settings.bind, settings.http_port
        )
        self.broker: EmbeddedBroker | None = None
        self.bus: MqttBus | None = None

    @property
    def http_port(self) -> int:
        return self.http.port

    @property
    def mqtt_address(self) -> tuple[str, int] | None:
        if self.bus is None:
            return None
        return self.bus.settings.host, self.bus.settings.port

    async def start(self) -> None:
        self.hub.start()
        await self.http.start()
        mode = self.settings.mqtt
        if mode == "off":
            return
        if mode == "embedded":
            self.broker = EmbeddedBroker(self.settings.bind, self.settings.mqtt_port)
            await self.broker.start()
            host, port = self.settings.bind, self.broker.port
        else:
            host, port = parse_broker_url(mode)
        self.bus = MqttBus(
            self.center,
            self.hub,
            MqttSettings(
                host,
                port,
                self.prefix,
                username=self.settings.mqtt_username,
                password=self.settings.mqtt_password,
            ),
        )
        await self.bus.start()

    async def stop(self) -> None:
        if self.bus is not None:
            await self.bus.stop()
        if self.broker is not None:
            await self.broker.stop()
        await self.http.stop()
        self.hub.close()
