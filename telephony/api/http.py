"""The HTTP API and the web CCP's files, on aiohttp (routes: ARCHITECTURE.md).

JSON in and out. Errors are ``{"error": message}`` with the status that fits: 400 an
unreadable body, 401 no or wrong credentials (with a Basic challenge, RFC 7617), 403
another agent's resource, 404 an unknown contact/connection/route, 409 an action not valid
in the contact's current state, 422 a body that names something that does not exist.
Actions answer 200 with the agent's snapshot after the action.
"""

from __future__ import annotations

import json
import logging
import socket
from pathlib import Path
from typing import Any

from aiohttp import web

from telephony.api.auth import REALM, SESSION_COOKIE, Authenticator, Principal
from telephony.api.commands import (
    CONNECTION_PATHS,
    CONTACT_PATHS,
    ApiError,
    Command,
    execute,
)
from telephony.api.hub import EventHub
from telephony.api.openapi import openapi
from telephony.center.events import CenterError
from telephony.center.executor import ContactCenter

log = logging.getLogger("qconnect.api")

CCP_DIR = Path(__file__).parent / "ccp"

CENTER = web.AppKey("center", ContactCenter)
HUB = web.AppKey("hub", EventHub)
AUTH = web.AppKey("auth", Authenticator)


def _error(message: str, status: int, request: web.Request | None = None) -> web.Response:
    response = web.json_response({"error": message}, status=status)
    if status == 401:
        # The CCP's own fetches ask for a challenge the browser does not act on, so a
        # failed login shows the CCP's form rather than the browser's password dialog.
        from_ccp = request is not None and "X-Requested-With" in request.headers
        scheme = "CCPBasic" if from_ccp else "Basic"
        response.headers["WWW-Authenticate"] = f'{scheme} realm="{REALM}", charset="UTF-8"'
    return response


@web.middleware
async def _json_errors(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except ApiError as exc:
        return _error(exc.message, exc.status, request)
    except CenterError as exc:
        return _error(exc.message, exc.status, request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = _error(exc.reason, exc.status, request)
        if "Allow" in exc.headers:
            response.headers["Allow"] = exc.headers["Allow"]
        return response


def principal(request: web.Request) -> Principal:
    return request.app[AUTH].identify(
        request.headers.get("Authorization"), request.cookies.get(SESSION_COOKIE)
    )


async def _body(request: web.Request, *, required: bool) -> dict[str, Any]:
    raw = await request.read()
    if not raw.strip():
        if required:
            raise ApiError("a JSON body is required", status=400)
        return {}
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ApiError(f"body is not JSON: {exc}", status=400) from None
    if not isinstance(body, dict):
        raise ApiError("body must be a JSON object", status=400)
    return body


def _text(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value:
        raise ApiError(f"body needs {key!r} (a non-empty string)", status=422)
    return value


# --- routes ---


async def get_agent(request: web.Request) -> web.Response:
    agent = request.match_info["agent"]
    principal(request).may_read(agent)
    return web.json_response(request.app[CENTER].snapshot(agent))


async def put_status(request: web.Request) -> web.Response:
    agent = request.match_info["agent"]
    principal(request).may_act(agent)
    body = await _body(request, required=True)
    return _act(request, agent, Command("setStatus", status=_text(body, "status")))


async def get_quick_connects(request: web.Request) -> web.Response:
    agent = request.match_info["agent"]
    principal(request).may_read(agent)
    center = request.app[CENTER]
    return web.json_response({"agent": agent, "quickConnects": center.quick_connects(agent)})


async def contact_action(request: web.Request) -> web.Response:
    agent = request.match_info["agent"]
    action = CONTACT_PATHS.get(request.match_info["action"])
    if action is None:
        raise ApiError(f"no contact action {request.match_info['action']!r}", status=404)
    principal(request).may_act(agent)
    body = await _body(request, required=action == "quickConnect")
    name = _text(body, "name") if action == "quickConnect" else None
    return _act(request, agent, Command(action, contact=request.match_info["contact"], name=name))


async def connection_action(request: web.Request) -> web.Response:
    agent = request.match_info["agent"]
    action = CONNECTION_PATHS.get(request.match_info["action"])
    if action is None:
        raise ApiError(f"no connection action {request.match_info['action']!r}", status=404)
    principal(request).may_act(agent)
    await _body(request, required=False)
    command = Command(action, connection=request.match_info["connection"])
    return _act(request, agent, command)


def _act(request: web.Request, agent: str, command: Command) -> web.Response:
    center = request.app[CENTER]
    execute(center, agent, command)
    log.info("api: %s %s", agent, command.describe())
    return web.json_response(center.snapshot(agent))


async def get_contact(request: web.Request) -> web.Response:
    contact = request.match_info["contact"]
    caller = principal(request)
    center = request.app[CENTER]
    record = center.contact_record(contact)  # 404 first: an unknown id tells nothing
    if caller.agent is not None and caller.agent not in request.app[HUB].call_agents(contact):
        raise ApiError(f"contact {contact} is not on a call of {caller.agent}", status=403)
    return web.json_response(record)


async def post_session(request: web.Request) -> web.Response:
    """The web CCP's login: Basic once, then a cookie (WebSockets cannot send headers)."""
    caller = request.app[AUTH].identify(request.headers.get("Authorization"))
    if caller.agent is None:
        raise ApiError("the CCP is for agents: log in with a login and password", status=403)
    token = request.app[AUTH].login(caller)
    center = request.app[CENTER]
    agent = center.config.agents[caller.agent]
    response = web.json_response({"agent": caller.agent, "displayName": agent.display_name})
    response.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="Strict", path="/")
    return response


async def get_session(request: web.Request) -> web.Response:
    """Who the CCP's cookie (or Basic) belongs to: lets a reloaded page carry on."""
    caller = principal(request)
    if caller.agent is None:
        raise ApiError("the CCP is for agents", status=403)
    agent = request.app[CENTER].config.agents[caller.agent]
    return web.json_response({"agent": caller.agent, "displayName": agent.display_name})


async def delete_session(request: web.Request) -> web.Response:
    request.app[AUTH].logout(request.cookies.get(SESSION_COOKIE))
    response = web.json_response({"ok": True})
    response.del_cookie(SESSION_COOKIE, path="/")
    return response


async def get_openapi(request: web.Request) -> web.Response:
    return web.json_response(openapi())


async def ccp_index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(CCP_DIR / "index.html", headers={"Cache-Control": "no-cache"})


async def to_ccp(request: web.Request) -> web.Response:
    raise web.HTTPFound("/ccp/")


def build_app(center: ContactCenter, hub: EventHub, auth: Authenticator) -> web.Application:
    from telephony.api.ws import agent_events

    app = web.Application(middlewares=[_json_errors])
    app[CENTER] = center
    app[HUB] = hub
    app[AUTH] = auth
    agent = "/api/agents/{agent}"
    app.router.add_get("/api/openapi.json", get_openapi)
    app.router.add_post("/api/session", post_session)
    app.router.add_get("/api/session", get_session)
    app.router.add_delete("/api/session", delete_session)
    app.router.add_get(agent, get_agent)
    app.router.add_put(agent + "/status", put_status)
    app.router.add_get(agent + "/quick-connects", get_quick_connects)
    app.router.add_get(agent + "/events", agent_events)
    app.router.add_post(agent + "/contacts/{contact}/{action}", contact_action)
    app.router.add_post(agent + "/connections/{connection}/{action}", connection_action)
    app.router.add_get("/api/contacts/{contact}", get_contact)
    app.router.add_get("/", to_ccp)
    app.router.add_get("/ccp", to_ccp)
    app.router.add_get("/ccp/", ccp_index)
    app.router.add_static("/ccp/", CCP_DIR, append_version=False)
    return app


class HttpServer:
    """The API on its own listening socket (port 0 picks a free one: tests, parallel labs)."""

    def __init__(self, app: web.Application, host: str, port: int) -> None:
        self.app = app
        self.host = host
        self.requested_port = port
        self.port = port
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.create_server((self.host, self.requested_port), family=family)
        self.port = sock.getsockname()[1]
        self._runner = web.AppRunner(
            self.app, access_log=None, handle_signals=False, shutdown_timeout=1.0
        )
        await self._runner.setup()
        await web.SockSite(self._runner, sock).start()
        log.info("HTTP API and web CCP on http://%s:%d/ccp/", self.host, self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
