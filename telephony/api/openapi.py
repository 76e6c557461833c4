"""The OpenAPI 3.1 description of the HTTP API, served at ``/api/openapi.json``."""

from __future__ import annotations

from typing import Any

from telephony.api.commands import CONNECTION_ACTIONS, CONTACT_ACTIONS

_JSON = "application/json"


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _errors(*statuses: int) -> dict[str, Any]:
    meaning = {
        400: "body is not a JSON object",
        401: "no credentials, or a wrong login or password",
        403: "another agent's resource (or the read-only admin token acting)",
        404: "unknown agent, contact or connection",
        409: "action not valid in the current state",
        422: "body misses a field or names something that does not exist",
    }
    return {
        str(s): {
            "description": meaning[s],
            "content": {_JSON: {"schema": _ref("Error")}},
        }
        for s in statuses
    }


def _snapshot_ok(description: str) -> dict[str, Any]:
    return {"200": {"description": description, "content": {_JSON: {"schema": _ref("Snapshot")}}}}


_AGENT = {"name": "agent", "in": "path", "required": True, "schema": {"type": "string"}}
_CONTACT = {"name": "contact", "in": "path", "required": True, "schema": {"type": "string"}}
_CONNECTION = {"name": "connection", "in": "path", "required": True, "schema": {"type": "string"}}

_CONTACT_HELP = {
    "accept": "Accept the contact offered to this agent (banner Incoming -> Connecting).",
    "reject": "Reject the offered contact: a queued contact goes to the next agent.",
    "quickConnect": "Quick connect: the customer goes on hold, the named quick connect runs.",
    "conference": "Join: the agent, the customer and the third party all hear each other.",
    "holdAll": "Hold all: the customer and the third party are both put on hold.",
    "swap": "Swap: talk to the held party, hold the one connected.",
    "leave": "End call (leave): the agent drops; the others stay connected.",
}
_CONNECTION_HELP = {
    "hold": "Put this connection on hold (it hears its hold flow).",
    "resume": "Take this connection off hold.",
    "end": "End this connection (abort a transfer, disconnect a party).",
}


def openapi() -> dict[str, Any]:
    paths: dict[str, Any] = {
        "/api/agents/{agent}": {
            "get": {
                "summary": "The agent's CCP snapshot",
                "parameters": [_AGENT],
                "responses": {**_snapshot_ok("snapshot"), **_errors(401, 403, 404)},
            }
        },
        "/api/agents/{agent}/status": {
            "put": {
                "summary": "Set the agent's status",
                "parameters": [_AGENT],
                "requestBody": {
                    "required": True,
                    "content": {_JSON: {"schema": _ref("StatusBody")}},
                },
                "responses": {
                    **_snapshot_ok("snapshot after the change"),
                    **_errors(400, 401, 403, 404, 409, 422),
                },
            }
        },
        "/api/agents/{agent}/quick-connects": {
            "get": {
                "summary": "The quick connects this agent may pick now (by their queues)",
                "parameters": [_AGENT],
                "responses": {
                    "200": {
                        "description": "quick connects",
                        "content": {_JSON: {"schema": _ref("QuickConnects")}},
                    },
                    **_errors(401, 403, 404),
                },
            }
        },
        "/api/agents/{agent}/events": {
            "get": {
                "summary": "WebSocket: the agent's snapshot, then every event (docs/events.md)",
                "parameters": [_AGENT],
                "responses": {
                    "101": {"description": "switching to the WebSocket protocol"},
                    **_errors(401, 403, 404),
                },
            }
        },
        "/api/contacts/{contact}": {
            "get": {
                "summary": "The contact trace record so far",
                "parameters": [_CONTACT],
                "responses": {
                    "200": {
                        "description": "contact trace record",
                        "content": {_JSON: {"schema": _ref("ContactRecord")}},
                    },
                    **_errors(401, 403, 404),
                },
            }
        },
        "/api/session": {
            "post": {
                "summary": "Web CCP login: Basic credentials in, a session cookie out",
                "responses": {
                    "200": {"description": "logged in; cookie qconnect_session set"},
                    **_errors(401, 403),
                },
            },
            "delete": {
                "summary": "Web CCP logout",
                "responses": {"200": {"description": "logged out"}},
            },
        },
    }
    for action, segment in CONTACT_ACTIONS.items():
        op: dict[str, Any] = {
            "summary": _CONTACT_HELP[action],
            "operationId": action,
            "parameters": [_AGENT, _CONTACT],
            "responses": {
                **_snapshot_ok("snapshot after the action"),
                **_errors(400, 401, 403, 404, 409, 422),
            },
        }
        if action == "quickConnect":
            op["requestBody"] = {
                "required": True,
                "content": {_JSON: {"schema": _ref("QuickConnectBody")}},
            }
        paths[f"/api/agents/{{agent}}/contacts/{{contact}}/{segment}"] = {"post": op}
    for action, segment in CONNECTION_ACTIONS.items():
        paths[f"/api/agents/{{agent}}/connections/{{connection}}/{segment}"] = {
            "post": {
                "summary": _CONNECTION_HELP[action],
                "operationId": f"{action}Connection",
                "parameters": [_AGENT, _CONNECTION],
                "responses": {
                    **_snapshot_ok("snapshot after the action"),
                    **_errors(401, 403, 404, 409),
                },
            }
        }
    banner = {
        "type": "string",
        "enum": ["Incoming", "Connecting", "Connected", "On hold", "Joined", "Ended"],
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "qconnect agent API",
            "version": "1",
            "description": "CCP actions over HTTP; the same actions as MQTT commands "
            "(docs/api.md, docs/mqtt.md).",
        },
        "servers": [{"url": "/"}],
        "security": [{"basic": []}, {"adminToken": []}, {"session": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "basic": {
                    "type": "http",
                    "scheme": "basic",
                    "description": "agent login and SIP password",
                },
                "adminToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "--admin-token / QCONNECT_ADMIN_TOKEN: reads everything",
                },
                "session": {"type": "apiKey", "in": "cookie", "name": "qconnect_session"},
            },
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {"error": {"type": "string"}},
                },
                "Connection": {
                    "type": "object",
                    "required": ["id", "party", "banner"],
                    "properties": {
                        "id": {"type": "string"},
                        "party": {
                            "type": "string",
                            "description": "customer, an agent login, a queue or a number",
                        },
                        "banner": banner,
                    },
                },
                "Contact": {
                    "type": "object",
                    "required": ["id", "queue", "connections"],
                    "properties": {
                        "id": {"type": "string"},
                        "queue": {"type": ["string", "null"]},
                        "connections": {"type": "array", "items": _ref("Connection")},
                    },
                },
                "Snapshot": {
                    "type": "object",
                    "required": ["agent", "status", "contacts"],
                    "properties": {
                        "agent": {"type": "string"},
                        "status": {"type": "string", "enum": ["Available", "Offline"]},
                        "contacts": {"type": "array", "items": _ref("Contact")},
                    },
                },
                "StatusBody": {
                    "type": "object",
                    "required": ["status"],
                    "properties": {"status": {"type": "string", "enum": ["Available", "Offline"]}},
                },
                "QuickConnectBody": {
                    "type": "object",
                    "required": ["name"],
                    "properties": {"name": {"type": "string", "examples": ["Maria"]}},
                },
                "QuickConnects": {
                    "type": "object",
                    "properties": {
                        "agent": {"type": "string"},
                        "quickConnects": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "name": {"type": "string"},
                                    "type": {
                                        "type": "string",
                                        "enum": ["user", "queue", "phone_number"],
                                    },
                                },
                            },
                        },
                    },
                },
                "ContactRecord": {
                    "type": "object",
                    "description": "timeline, flowBlocks, prompts, holds, transfers, "
                    "disconnect (docs/api.md)",
                },
            },
        },
    }
