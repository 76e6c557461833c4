"""The pytest plugin, as a user's project sees it: a generated test file using the fixtures
runs in its own pytest (pytester, a subprocess) against real switches and phones; a right
expectation passes, a wrong one fails naming the party, the prompt and what was heard."""

from __future__ import annotations

import importlib.metadata

import pytest

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.timeout(120)

INI = """\
[pytest]
asyncio_default_fixture_loop_scope = function
"""

# Strict asyncio mode on purpose: the fixtures must work without asyncio_mode = auto.
PHONE_TESTS = """\
import asyncio

import pytest

from telephony.lab.pytest_plugin import assert_heard, heard


@pytest.mark.asyncio
async def test_customer_hears_welcome(qconnect_switch, qconnect_phone):
    customer = await qconnect_phone("customer")
    call = await customer.call("+15550100")
    await asyncio.sleep(4.5)
    assert_heard(call, prompt="Welcome", within=(0, 4.5))
    assert not heard(call, beep=True, within=(0, 4.5)).ok
    await call.hangup()


@pytest.mark.asyncio
async def test_customer_hears_the_wrong_prompt(qconnect_phone):
    customer = await qconnect_phone("customer")
    call = await customer.call("+15550100")
    await asyncio.sleep(4.5)
    assert_heard(call, prompt="Transferring to agent", within=(0, 4.5))
"""

SCENARIO = """\
name: welcome only
parties:
  customer: {kind: customer, plays: 2200}
steps:
  - call: {from: customer, to: "+15550100"}
  - mark: dialled
  - wait: 4.5
  - mark: done
  - hangup: customer
expect:
  - heard: {party: customer, prompt: %s, within: [dialled, done]}
"""

SCENARIO_TESTS = """\
import pytest


@pytest.mark.asyncio
async def test_right(qconnect_scenario):
    result = await qconnect_scenario("right.yaml")
    assert result.ok and len(result.results) == 1


@pytest.mark.asyncio
async def test_wrong(qconnect_scenario):
    await qconnect_scenario("wrong.yaml")


@pytest.mark.asyncio
async def test_wrong_unchecked(qconnect_scenario):
    result = await qconnect_scenario("wrong.yaml", check=False)
    assert not result.ok
    assert "heard instead" in result.results[0].message
"""


def _args() -> list[str]:
    """Load the plugin the way the installed package does; by name when the checkout's
    entry point is not installed (loading it twice would be an error)."""
    installed = any(
        ep.value == "telephony.lab.pytest_plugin"
        for ep in importlib.metadata.entry_points(group="pytest11")
    )
    return ["-p", "no:cacheprovider", "-p", "no:randomly", "-v", "-n", "0"] + (
        [] if installed else ["-p", "telephony.lab.pytest_plugin"]
    )


def test_phone_fixtures_and_heard(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(test_phones=PHONE_TESTS)
    result = pytester.runpytest_subprocess(*_args(), timeout=90)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*test_customer_hears_welcome PASSED*",
            "*test_customer_hears_the_wrong_prompt FAILED*",
            "*AssertionError: phone: expected prompt 'Transferring to agent'*"
            "heard instead:*prompt 'Welcome'*",
        ]
    )


def test_scenario_fixture_fails_with_the_assertion_message(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makefile(".yaml", right=SCENARIO % "Welcome", wrong=SCENARIO % "Transferring to agent")
    pytester.makepyfile(test_scenarios=SCENARIO_TESTS)
    result = pytester.runpytest_subprocess(*_args(), timeout=90)
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*test_wrong FAILED*",
            "*scenario 'welcome only' (*wrong.yaml) failed:*",
            "*FAIL customer hears prompt 'Transferring to agent' within [[]dialled, done[]]"
            " (line 11): customer: expected prompt 'Transferring to agent'*"
            "heard instead:*prompt 'Welcome'*",
            "*0/1 assertions held*",
            "*report: *index.html*",
        ]
    )
    # A failed scenario is a test failure with the messages, not a traceback of the harness.
    assert "telephony/lab/runner.py" not in result.stdout.str()


def test_the_plugin_only_adds_fixtures_and_options(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    result = pytester.runpytest_subprocess(*_args(), "--fixtures", timeout=60)
    out = result.stdout.str()
    for name in ("qconnect_config", "qconnect_switch", "qconnect_phone", "qconnect_scenario"):
        assert name in out
    import telephony.lab.pytest_plugin as plugin

    hooks = [name for name in vars(plugin) if name.startswith("pytest_")]
    assert hooks == ["pytest_addoption"]
