"""The HTTP API against a real switch: every route, its auth failures, bad bodies, unknown
contacts, actions in the wrong state, and real contacts made by scripted SIP phones."""

from __future__ import annotations

import asyncio

from tests.api.support import ADMIN_TOKEN, Lab, wait_for

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
CONTACT_ACTIONS = ["accept", "reject", "quick-connect", "conference", "hold-all", "swap", "leave"]
CONNECTION_ACTIONS = ["hold", "resume", "end"]

EVERY_ROUTE = [
    ("GET", "/api/agents/john"),
    ("PUT", "/api/agents/john/status"),
    ("GET", "/api/agents/john/quick-connects"),
    ("GET", "/api/agents/john/events"),
    *[("POST", f"/api/agents/john/contacts/c1/{a}") for a in CONTACT_ACTIONS],
    *[("POST", f"/api/agents/john/connections/k1/{a}") for a in CONNECTION_ACTIONS],
    ("GET", "/api/contacts/c1"),
]


async def test_every_route_needs_credentials(lab: Lab) -> None:
    for method, path in EVERY_ROUTE:
        status, body, response = await lab.request(method, path, json={"status": "Offline"})
        assert status == 401, (method, path, status, body)
        assert body["error"]
        assert response.headers["WWW-Authenticate"].startswith('Basic realm="qconnect"')
        for bad in (
            {"Authorization": "Basic " + "am9objpub3Bl"},  # john:nope
            lab.auth("john", "maria"),
            lab.auth("nobody", "x"),
            {"Authorization": "Basic !!!not-base64"},
            {"Authorization": "Bearer wrong-token"},
            {"Authorization": "Digest username=john"},
            {"Cookie": "qconnect_session=forged"},
        ):
            status, body, _ = await lab.request(method, path, headers=bad, json={})
            assert status == 401, (method, path, bad, status, body)
    # Nothing changed: john is still Available.
    assert lab.switch.center.snapshot("john")["status"] == "Available"


async def test_another_agents_resources_are_forbidden(lab: Lab) -> None:
    for method, path in EVERY_ROUTE:
        if path.startswith("/api/contacts/"):
            continue
        status, body, _ = await lab.request(
            method, path.replace("/agents/john", "/agents/maria"), agent="john", json={}
        )
        assert status == 403, (method, path, status, body)
        assert "john" in body["error"]
    # The admin token reads anyone, acts for no one.
    status, body, _ = await lab.request("GET", "/api/agents/maria", headers=ADMIN)
    assert (status, body) == (200, {"agent": "maria", "status": "Available", "contacts": []})
    status, body, _ = await lab.request("GET", "/api/agents/maria/quick-connects", headers=ADMIN)
    assert status == 200 and body["quickConnects"] == [{"name": "Supplier", "type": "phone_number"}]
    status, body, _ = await lab.request(
        "PUT", "/api/agents/maria/status", headers=ADMIN, json={"status": "Offline"}
    )
    assert status == 403 and "admin" in body["error"]
    assert lab.switch.center.snapshot("maria")["status"] == "Available"
    status, body, _ = await lab.request("GET", "/api/agents/nobody", headers=ADMIN)
    assert status == 404 and "nobody" in body["error"]


async def test_status_and_quick_connects(lab: Lab) -> None:
    status, body, _ = await lab.request("GET", "/api/agents/john", agent="john")
    assert (status, body) == (200, {"agent": "john", "status": "Available", "contacts": []})
    status, body, _ = await lab.request(
        "PUT", "/api/agents/john/status", agent="john", json={"status": "Offline"}
    )
    assert (status, body["status"]) == (200, "Offline")
    assert lab.switch.center.snapshot("john")["status"] == "Offline"
    assert [e["status"] for e in lab.events if e["type"] == "agentStatus"] == ["Offline"]

    for data, expected in (
        ("{not json", 400),
        ("[1, 2]", 400),
        ("", 400),
        ('{"state": "Available"}', 422),
        ('{"status": 1}', 422),
        ('{"status": "Lunch"}', 422),
    ):
        status, body, _ = await lab.request(
            "PUT", "/api/agents/john/status", agent="john", data=data
        )
        assert status == expected, (data, status, body)
        assert isinstance(body["error"], str) and body["error"]
    assert lab.switch.center.snapshot("john")["status"] == "Offline"

    status, body, _ = await lab.request(
        "PUT", "/api/agents/john/status", agent="john", json={"status": "Available"}
    )
    assert (status, body["status"]) == (200, "Available")

    status, body, _ = await lab.request("GET", "/api/agents/john/quick-connects", agent="john")
    assert status == 200
    assert body == {
        "agent": "john",
        "quickConnects": [
            {"name": "Maria", "type": "user"},
            {"name": "PasswordReset", "type": "queue"},
            {"name": "Supplier", "type": "phone_number"},
        ],
    }


async def test_unknown_contacts_connections_and_routes(lab: Lab) -> None:
    for action in CONTACT_ACTIONS:
        status, body, _ = await lab.request(
            "POST", f"/api/agents/john/contacts/nope/{action}", agent="john", json={"name": "Maria"}
        )
        assert status == 404 and "nope" in body["error"], (action, status, body)
    for action in CONNECTION_ACTIONS:
        status, body, _ = await lab.request(
            "POST", f"/api/agents/john/connections/nope/{action}", agent="john"
        )
        assert status == 404 and "nope" in body["error"], (action, status, body)
    status, body, _ = await lab.request("GET", "/api/contacts/nope", agent="john")
    assert status == 404 and "nope" in body["error"]
    status, body, _ = await lab.request("GET", "/api/contacts/nope", headers=ADMIN)
    assert status == 404
    # routes that do not exist, and methods a route does not take: JSON errors too
    status, body, _ = await lab.request(
        "POST", "/api/agents/john/contacts/nope/transfer", agent="john"
    )
    assert status == 404 and body["error"]
    status, body, _ = await lab.request("GET", "/api/nothing-here", agent="john")
    assert status == 404 and body["error"]
    status, body, response = await lab.request("DELETE", "/api/agents/john", agent="john")
    assert status == 405 and body["error"] and "GET" in response.headers["Allow"]


async def test_openapi_and_ccp_are_served(lab: Lab) -> None:
    status, spec, _ = await lab.request("GET", "/api/openapi.json")
    assert status == 200 and spec["openapi"].startswith("3.")
    paths = spec["paths"]
    for method, path in EVERY_ROUTE:
        template = (
            path.replace("/agents/john", "/agents/{agent}")
            .replace("/contacts/c1", "/contacts/{contact}")
            .replace("/connections/k1", "/connections/{connection}")
        )
        assert method.lower() in paths[template], template
    async with lab.http.get(lab.url("/ccp/")) as response:
        assert response.status == 200
        page = await response.text()
        assert "ccp.js" in page and "Agent sign in" in page
    for asset in ("ccp.js", "ccp.css"):
        async with lab.http.get(lab.url(f"/ccp/{asset}")) as response:
            assert response.status == 200, asset
    async with lab.http.get(lab.url("/"), allow_redirects=False) as response:
        assert response.status == 302 and response.headers["Location"] == "/ccp/"


async def test_ccp_session_cookie(lab: Lab) -> None:
    status, body, _ = await lab.request("POST", "/api/session", agent="john")
    assert status == 200 and body == {"agent": "john", "displayName": "John"}
    # the session cookie alone now authenticates (the browser's WebSocket needs it)
    status, body, _ = await lab.request("GET", "/api/agents/john")
    assert status == 200 and body["agent"] == "john"
    status, body, _ = await lab.request("GET", "/api/session")
    assert body["agent"] == "john"
    status, body, _ = await lab.request("GET", "/api/agents/maria")
    assert status == 403
    status, body, _ = await lab.request("POST", "/api/session", headers=ADMIN)
    assert status == 403
    await lab.request("DELETE", "/api/session")
    status, body, _ = await lab.request("GET", "/api/agents/john")
    assert status == 401
    # a CCP request gets a challenge the browser does not turn into a password dialog
    status, body, response = await lab.request(
        "POST", "/api/session", headers={**lab.auth("john", "bad"), "X-Requested-With": "ccp"}
    )
    assert status == 401 and not response.headers["WWW-Authenticate"].startswith("Basic ")


async def test_first_leg_driven_over_http(lab: Lab) -> None:
    """Reject, accept, hold/resume and leave on a real contact; every wrong-state action
    is a 409 and changes nothing; another agent gets 403."""
    john = await lab.phone("john")
    customer, ringing, contact = await lab.offered_call(john)

    status, snap, _ = await lab.request("GET", "/api/agents/john", agent="john")
    assert status == 200
    [offered] = snap["contacts"]
    assert offered["id"] == contact and offered["queue"] == "BasicQueue"
    assert [(c["party"], c["banner"]) for c in offered["connections"]] == [("customer", "Incoming")]
    incoming = offered["connections"][0]["id"]

    # Wrong state while it rings: 409, nothing changes.
    for action in ("conference", "hold-all", "swap"):
        status, body, _ = await lab.request(
            "POST", f"/api/agents/john/contacts/{contact}/{action}", agent="john"
        )
        assert status == 409, (action, status, body)
    for action in ("hold", "resume", "end"):
        status, body, _ = await lab.request(
            "POST", f"/api/agents/john/connections/{incoming}/{action}", agent="john"
        )
        assert status == 409, (action, status, body)
    # Maria cannot take John's contact, neither through her path nor through his.
    status, body, _ = await lab.request(
        "POST", f"/api/agents/maria/contacts/{contact}/accept", agent="maria"
    )
    assert status == 409
    status, body, _ = await lab.request(
        "POST", f"/api/agents/john/contacts/{contact}/accept", agent="maria"
    )
    assert status == 403
    status, body, _ = await lab.request("GET", f"/api/contacts/{contact}", agent="maria")
    assert status == 403
    assert lab.switch.center.snapshot("john")["contacts"][0]["connections"][0]["banner"] == (
        "Incoming"
    )

    # Reject: John is BasicQueue's only agent, so the contact is offered to him again
    # (a new offer: his phone's first ringing is cancelled and it rings anew).
    status, snap, _ = await lab.request(
        "POST", f"/api/agents/john/contacts/{contact}/reject", agent="john"
    )
    assert status == 200
    assert [e["type"] for e in lab.events if e["type"].startswith("offer")][-2:] == [
        "offerRejected",
        "offerCreated",
    ]
    assert await ringing.wait_ended(5) == "cancelled"
    ringing = await asyncio.wait_for(john.incoming.get(), 10)
    assert lab.offered_to("john") == contact

    # Accept in the CCP: Connecting while the phone still rings; answering connects.
    status, snap, _ = await lab.request(
        "POST", f"/api/agents/john/contacts/{contact}/accept", agent="john"
    )
    assert status == 200
    assert [c["banner"] for c in snap["contacts"][0]["connections"]] == ["Connecting"]
    status, body, _ = await lab.request(
        "POST", f"/api/agents/john/contacts/{contact}/accept", agent="john"
    )
    assert status == 409
    await ringing.answer()
    await wait_for(lambda: "Connected" in lab.banners("john"), 10, "john Connected")
    assert lab.banners("john")[-2:] == [
        "Connecting",
        "Connected",
    ]  # after the rejected offer's Ended

    status, snap, _ = await lab.request("GET", "/api/agents/john", agent="john")
    customer_leg = snap["contacts"][0]["connections"][0]
    assert customer_leg["party"] == "customer" and customer_leg["banner"] == "Connected"
    leg = customer_leg["id"]

    # No third party yet: Join/Hold all/Swap are 409; a quick connect needs a known name.
    for action in ("conference", "hold-all", "swap"):
        status, body, _ = await lab.request(
            "POST", f"/api/agents/john/contacts/{contact}/{action}", agent="john"
        )
        assert status == 409, (action, status, body)
    for data, expected in (("", 400), ("{}", 422), ('{"name": "Nobody"}', 422)):
        status, body, _ = await lab.request(
            "POST", f"/api/agents/john/contacts/{contact}/quick-connect", agent="john", data=data
        )
        assert status == expected, (data, status, body)

    # Hold / resume the customer.
    status, snap, _ = await lab.request(
        "POST", f"/api/agents/john/connections/{leg}/hold", agent="john"
    )
    assert status == 200 and snap["contacts"][0]["connections"][0]["banner"] == "On hold"
    status, body, _ = await lab.request(
        "POST", f"/api/agents/john/connections/{leg}/hold", agent="john"
    )
    assert status == 409
    status, snap, _ = await lab.request(
        "POST", f"/api/agents/john/connections/{leg}/resume", agent="john"
    )
    assert status == 200 and snap["contacts"][0]["connections"][0]["banner"] == "Connected"
    status, body, _ = await lab.request(
        "POST", f"/api/agents/maria/connections/{leg}/hold", agent="maria"
    )
    assert status == 403

    # The contact trace record so far: John and the admin may read it.
    status, record, _ = await lab.request("GET", f"/api/contacts/{contact}", agent="john")
    assert status == 200 and record["contact"] == contact and record["ended"] is None
    assert any(e["kind"] == "flowBlock" for e in record["timeline"])
    status, record, _ = await lab.request("GET", f"/api/contacts/{contact}", headers=ADMIN)
    assert status == 200

    # Leave without a third party ends the call: the customer's phone is hung up.
    status, snap, _ = await lab.request(
        "POST", f"/api/agents/john/contacts/{contact}/leave", agent="john"
    )
    assert status == 200 and snap["contacts"] == []
    await customer.wait_ended(5)
    status, body, _ = await lab.request(
        "POST", f"/api/agents/john/contacts/{contact}/leave", agent="john"
    )
    assert status == 403  # no longer one of John's contacts
    status, record, _ = await lab.request("GET", f"/api/contacts/{contact}", agent="john")
    assert status == 200 and record["ended"] is not None


async def test_scenario_1_driven_over_http(lab: Lab) -> None:
    """Quick connect Maria, Maria accepts, swap, hold all, join, leave: banners per seed."""
    john, maria = await lab.phone("john"), await lab.phone("maria")
    customer, ringing, contact = await lab.offered_call(john)
    await ringing.answer()
    await wait_for(lambda: "Connected" in lab.banners("john"), 10, "john Connected")

    def post(agent: str, path: str, **kw: object) -> object:
        return lab.request("POST", f"/api/agents/{agent}{path}", agent=agent, **kw)  # type: ignore[arg-type]

    status, snap, _ = await post(
        "john", f"/contacts/{contact}/quick-connect", json={"name": "Maria"}
    )
    assert status == 200
    # Seed step 1: the customer on hold; the new connection reads Connected at once.
    assert [(c["party"], c["banner"]) for c in snap["contacts"][0]["connections"]] == [
        ("customer", "On hold"),
        ("maria", "Connected"),
    ]
    status, body, _ = await post(
        "john", f"/contacts/{contact}/quick-connect", json={"name": "Maria"}
    )
    assert status == 409  # one third party at a time
    maria_ringing = await asyncio.wait_for(maria.incoming.get(), 15)
    transfer = lab.offered_to("maria")
    status, snap, _ = await lab.request("GET", "/api/agents/maria", agent="maria")
    assert [c["banner"] for c in snap["contacts"][0]["connections"]] == ["Incoming"]
    # Maria accepts in the CCP (Connecting), her phone answers: whispers, then Connected.
    status, snap, _ = await post("maria", f"/contacts/{transfer}/accept")
    assert status == 200 and snap["contacts"][0]["connections"][0]["banner"] == "Connecting"
    await maria_ringing.answer()
    await wait_for(lambda: "Connected" in lab.banners("maria"), 15, "maria Connected")
    assert lab.banners("maria") == ["Connecting", "Connected"]

    async def john_banners() -> list[tuple[str, str]]:
        _, snap, _ = await lab.request("GET", "/api/agents/john", agent="john")
        return [(c["party"], c["banner"]) for c in snap["contacts"][0]["connections"]]

    assert await john_banners() == [("customer", "On hold"), ("maria", "Connected")]
    status, _, _ = await post("john", f"/contacts/{contact}/swap")
    assert status == 200
    assert await john_banners() == [("customer", "Connected"), ("maria", "On hold")]
    status, _, _ = await post("john", f"/contacts/{contact}/hold-all")
    assert status == 200
    assert await john_banners() == [("customer", "On hold"), ("maria", "On hold")]
    status, body, _ = await post("john", f"/contacts/{contact}/hold-all")
    assert status == 409
    status, _, _ = await post("john", f"/contacts/{contact}/conference")
    assert status == 200
    assert await john_banners() == [("customer", "Joined"), ("maria", "Joined")]
    status, body, _ = await post("john", f"/contacts/{contact}/conference")
    assert status == 409
    # Maria cannot drive John's contact.
    status, body, _ = await post("maria", f"/contacts/{contact}/leave")
    assert status == 403
    status, snap, _ = await post("john", f"/contacts/{contact}/leave")
    assert status == 200 and snap["contacts"] == []
    # Maria and the customer stay connected.
    status, snap, _ = await lab.request("GET", "/api/agents/maria", agent="maria")
    [kept] = snap["contacts"]
    assert [(c["party"], c["banner"]) for c in kept["connections"]] == [("customer", "Connected")]
    assert customer.state.value == "established"
    # Maria ends the customer's connection: the call is over.
    leg = kept["connections"][0]["id"]
    status, snap, _ = await post("maria", f"/connections/{leg}/end")
    assert status == 200 and snap["contacts"] == []
    await customer.wait_ended(5)
