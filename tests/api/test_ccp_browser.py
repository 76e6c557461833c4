"""The web CCP in real Chromium (Debian's, driven by Playwright), against a real switch with
scripted SIP phones: agents click, phones answer, and the banners shown must be the seed's
at each step. Screenshots go to artifacts/screenshots/ (QCONNECT_ARTIFACTS overrides)."""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from telephony.lab.phone import PhoneCall
from tests.api.support import CHROMIUM, Lab, require

pytestmark = pytest.mark.timeout(60)

ARTIFACTS = Path(
    os.environ.get("QCONNECT_ARTIFACTS", Path(__file__).resolve().parents[2] / "artifacts")
)
SHOTS = ARTIFACTS / "screenshots"
# Without the background-networking flags Debian's chromium phones home at start and its
# connections are refused here (interop NOTES.md).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
STEP = 10_000  # ms a banner may take to show (prompts and whispers play in real time)


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    require(CHROMIUM)
    async with async_playwright() as p:
        chromium = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        await chromium.close()


async def ccp(browser: Browser, lab: Lab, agent: str) -> Page:
    """A fresh browser context (its own cookie jar) logged in to the CCP as ``agent``."""
    context = await browser.new_context(viewport={"width": 1280, "height": 760})
    page = await context.new_page()
    await page.goto(lab.url("/ccp/"))
    await page.fill("#login-user", agent)
    await page.fill("#login-password", agent)
    await page.click("#login-submit")
    await expect(page.get_by_test_id("live")).to_have_text("live")
    return page


async def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def banner(page: Page, party: str, contact: str | None = None):  # type: ignore[no-untyped-def]
    scope = (
        page.locator(f'[data-testid=contact][data-contact="{contact}"]')
        if contact
        else page.get_by_test_id("contact")
    )
    return scope.locator(f'[data-testid=connection][data-party="{party}"] [data-testid=banner]')


def connection(page: Page, party: str):  # type: ignore[no-untyped-def]
    return page.locator(f'[data-testid=connection][data-party="{party}"]')


async def first_leg(lab: Lab, page: Page) -> tuple[PhoneCall, PhoneCall, str]:
    """A customer calls the DID; John clicks Accept (Connecting), his phone answers, and
    after the whispers the CCP reads Connected."""
    john_phone = await lab.phone("john")
    customer, ringing, contact = await lab.offered_call(john_phone)
    await expect(banner(page, "customer")).to_have_text("Incoming", timeout=STEP)
    await expect(page.get_by_test_id("accept")).to_be_enabled()
    await shot(page, "01-john-incoming")
    await page.get_by_test_id("accept").click()
    await expect(banner(page, "customer")).to_have_text("Connecting", timeout=STEP)
    await shot(page, "02-john-connecting")
    await ringing.answer()  # the softphone picks up: whispers, then Connected
    await expect(banner(page, "customer")).to_have_text("Connected", timeout=STEP)
    return customer, ringing, contact


async def test_login_status_and_a_first_leg_contact(lab: Lab, browser: Browser) -> None:
    context = await browser.new_context(viewport={"width": 1280, "height": 760})
    page = await context.new_page()
    await page.goto(lab.url("/ccp/"))
    await expect(page.get_by_test_id("login")).to_be_visible()
    await page.fill("#login-user", "john")
    await page.fill("#login-password", "wrong")
    await page.click("#login-submit")
    await expect(page.get_by_test_id("login-error")).to_have_text("Wrong login or password.")
    await page.fill("#login-password", "john")
    await page.click("#login-submit")
    await expect(page.get_by_test_id("agent-name")).to_have_text("John")
    await expect(page.get_by_test_id("status-current")).to_have_text("Available")
    await expect(page.get_by_test_id("live")).to_have_text("live")

    # Status: the switch's state, not just the button's.
    await page.get_by_test_id("status-Offline").click()
    await expect(page.get_by_test_id("status-current")).to_have_text("Offline")
    assert lab.switch.center.snapshot("john")["status"] == "Offline"
    await page.get_by_test_id("status-Available").click()
    await expect(page.get_by_test_id("status-current")).to_have_text("Available")
    assert lab.switch.center.snapshot("john")["status"] == "Available"

    customer, _, contact = await first_leg(lab, page)
    timeline = page.get_by_test_id("timeline")
    # From the contact trace record: the inbound flow, before John was on the call.
    await expect(timeline).to_contain_text("“Welcome” to Customer ended")
    await expect(timeline).to_contain_text("“BasicQueue” to John (you)")  # agent whisper
    await expect(timeline).to_contain_text("Customer: Connecting → Connected")
    await expect(connection(page, "customer").get_by_test_id("timer")).to_have_text(
        re.compile(r"00:0\d")
    )
    await shot(page, "03-john-connected")

    # A reload keeps the session (cookie) and shows the same contact.
    await page.reload()
    await expect(banner(page, "customer", contact)).to_have_text("Connected")

    await connection(page, "customer").get_by_test_id("hold").click()
    await expect(banner(page, "customer")).to_have_text("On hold")
    await expect(connection(page, "customer").get_by_test_id("hold")).to_be_disabled()
    await shot(page, "04-john-on-hold")
    await connection(page, "customer").get_by_test_id("resume").click()
    await expect(banner(page, "customer")).to_have_text("Connected")
    # Without a third party Join / Hold all / Swap are not offered.
    for action in ("join", "hold-all", "swap"):
        await expect(page.get_by_test_id(action)).to_be_disabled()

    await page.get_by_test_id("leave").click()
    await expect(page.get_by_test_id("contact")).to_have_count(0)
    await expect(page.get_by_test_id("no-contacts")).to_be_visible()
    await customer.wait_ended(5)
    await context.close()


async def test_scenario_1_quick_connect_maria_by_clicking(lab: Lab, browser: Browser) -> None:
    """Seed scenario 1 in two CCPs: John quick connects Maria, Maria accepts, Join, Leave."""
    john = await ccp(browser, lab, "john")
    maria = await ccp(browser, lab, "maria")
    maria_phone = await lab.phone("maria")
    customer, _, contact = await first_leg(lab, john)

    # Step 1: Quick connect -> Maria. The customer goes on hold; Maria's connection reads
    # Connected at once, though John is not connected to her yet.
    await john.get_by_test_id("quick-connect").click()
    menu = john.get_by_test_id("qc-menu")
    await expect(menu).to_be_visible()
    await expect(menu.get_by_test_id("qc-option")).to_have_count(3)
    await shot(john, "10-john-quick-connect-menu")
    await menu.locator('[data-testid=qc-option][data-name="Maria"]').click()
    await expect(banner(john, "customer")).to_have_text("On hold")
    await expect(banner(john, "maria")).to_have_text("Connected")
    await shot(john, "11-john-transferring")
    # Steps 2-4: the transfer flow runs on John's leg (he hears "Transferring to agent");
    # Maria's CCP shows the incoming contact and her phone rings.
    await expect(john.get_by_test_id("timeline")).to_contain_text(
        "“Transferring to agent” to John (you)", timeout=STEP
    )
    maria_ringing = await asyncio.wait_for(maria_phone.incoming.get(), 15)
    await expect(banner(maria, "customer")).to_have_text("Incoming", timeout=STEP)
    await shot(maria, "12-maria-incoming")
    # Step 5: Maria accepts: Connecting.
    await maria.get_by_test_id("accept").click()
    await expect(banner(maria, "customer")).to_have_text("Connecting")
    await shot(maria, "13-maria-connecting")
    await maria_ringing.answer()
    # Steps 6-8: whispers, then Maria reads Connected; John still has the customer on hold.
    await expect(banner(maria, "customer")).to_have_text("Connected", timeout=STEP)
    await expect(maria.get_by_test_id("timeline")).to_contain_text("to Maria (you)")
    await expect(banner(john, "maria")).to_have_text("Connected")
    await expect(banner(john, "customer")).to_have_text("On hold")
    await shot(maria, "14-maria-connected")
    await shot(john, "15-john-talking-to-maria")

    # Join: everybody Joined.
    await john.get_by_test_id("join").click()
    await expect(banner(john, "customer")).to_have_text("Joined")
    await expect(banner(john, "maria")).to_have_text("Joined")
    await shot(john, "16-john-joined")

    # Leave (End call): John drops; Maria and the customer stay connected.
    await john.get_by_test_id("leave").click()
    await expect(john.get_by_test_id("contact")).to_have_count(0)
    await expect(banner(maria, "customer")).to_have_text("Connected")
    await expect(maria.get_by_test_id("contact")).to_have_count(1)
    await shot(john, "17-john-left")
    await shot(maria, "18-maria-with-customer")
    assert customer.state.value == "established"
    # Maria ends the call from her CCP.
    await connection(maria, "customer").get_by_test_id("end").click()
    await expect(maria.get_by_test_id("contact")).to_have_count(0)
    await customer.wait_ended(5)
    snapshot = lab.switch.center.snapshot("maria")
    assert snapshot["contacts"] == [] and contact
