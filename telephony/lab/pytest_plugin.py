"""qconnect's pytest plugin: audio regression tests in Python, on the lab harness.

Installed with qconnect (entry point ``pytest11: qconnect``), so a project's tests just ask
for the fixtures. It defines fixtures and three command line options, nothing else: no
autouse fixture and no per-test hook, so a session that uses none of it pays only this
module's import (the switch and numpy load when a fixture first runs).

Fixtures (async ones need pytest-asyncio):

``qconnect_config``
    The instance config of ``qconnect_switch`` and ``qconnect_phone``: the demo lab.
    Override it in a conftest.py (``return load_config("lab.yaml")``) to test your own.
``qconnect_switch``
    A started embedded :class:`~telephony.switch.server.Switch` with that config, on free
    loopback ports, its data in ``tmp_path``; stopped after the test.
``qconnect_phone``
    ``await qconnect_phone("customer")``: a scripted :class:`~telephony.lab.phone.Phone`
    registered on ``qconnect_switch`` as that SIP user (password from the config).
``qconnect_scenario``
    ``await qconnect_scenario("scenario.yaml")``: runs a scenario file (relative to the test
    file) on its own embedded switch, or on a running one with ``--qconnect-target``, and
    returns the :class:`~telephony.lab.assertions.ScenarioResult`. A failed assertion or
    step fails the test with the assertion messages (``check=False`` returns instead); the
    HTML report of a failed run is written under ``tmp_path`` and named in the failure.

And a helper, :func:`heard` / :func:`assert_heard`: did these samples (or this call's
recording) contain a prompt, a beep, hold music or a tone, with the scenario files' search.

```python
async def test_welcome(qconnect_phone):
    customer = await qconnect_phone("customer")
    call = await customer.call("+15550100")
    await asyncio.sleep(4.5)
    assert_heard(call, prompt="Welcome", within=(0, 4.5))
```
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

import pytest

if TYPE_CHECKING:
    import numpy.typing as npt

    from telephony.center.config import InstanceConfig
    from telephony.lab.assertions import AssertionResult, ScenarioResult
    from telephony.lab.phone import Phone, PhoneCall
    from telephony.lab.scenario import Scenario
    from telephony.switch.server import Switch

_F = TypeVar("_F", bound=Callable[..., Any])


def _async_fixture(function: _F) -> _F:
    """pytest-asyncio's fixture, so the fixtures work in its strict mode too."""
    try:
        import pytest_asyncio
    except ImportError:  # pragma: no cover - pytest then says an async fixture needs a plugin
        return cast(_F, pytest.fixture(function))
    return cast(_F, pytest_asyncio.fixture(function))


PhoneFactory = Callable[..., Awaitable["Phone"]]
ScenarioFactory = Callable[..., Awaitable["ScenarioResult"]]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("qconnect", "qconnect lab scenarios")
    group.addoption(
        "--qconnect-target",
        metavar="SIP_HOST:PORT",
        help="run qconnect_scenario against a running switch (qconnect serve)",
    )
    group.addoption(
        "--qconnect-api", metavar="URL", help="its HTTP API (default http://SIP_HOST:8080)"
    )
    group.addoption(
        "--qconnect-admin-token", metavar="TOKEN", help="its admin token (contact records)"
    )


# --- fixtures ---


@pytest.fixture
def qconnect_config() -> InstanceConfig:
    from telephony.center.config import demo_lab

    return demo_lab()


@_async_fixture
async def qconnect_switch(qconnect_config: InstanceConfig, tmp_path: Path) -> AsyncIterator[Switch]:
    from telephony.switch.server import Switch, SwitchSettings

    base = 20000 + random.randrange(0, 400) * 100  # the runner's range, 100 ports a switch
    settings = SwitchSettings(
        sip_port=0, rtp_ports=(base, base + 99), data_dir=tmp_path / "qconnect-switch"
    )
    switch = Switch(settings, qconnect_config)
    await switch.start()
    try:
        yield switch
    finally:
        await switch.stop()


@_async_fixture
async def qconnect_phone(
    qconnect_switch: Switch, qconnect_config: InstanceConfig
) -> AsyncIterator[PhoneFactory]:
    from telephony.center.config import users_with_passwords
    from telephony.lab.phone import Phone
    from telephony.transport.base import Address

    passwords = users_with_passwords(qconnect_config)
    phones: list[Phone] = []

    async def make(user: str, *, password: str | None = None, auto_answer: bool = False) -> Phone:
        """A phone registered as ``user`` (its password from the config by default)."""
        if password is None and user not in passwords:
            known = ", ".join(sorted(passwords))
            pytest.fail(f"qconnect_phone: no SIP user {user!r} in the config ({known})")
        registrar = Address("udp", "127.0.0.1", qconnect_switch.endpoint.port)
        phone = Phone(user, password or passwords[user], registrar, auto_answer=auto_answer)
        await phone.start()
        phones.append(phone)
        response = await phone.register()
        if response.status != 200:
            pytest.fail(f"qconnect_phone: {user} could not register: {response.status}")
        return phone

    try:
        yield make
    finally:
        for phone in phones:
            try:
                await phone.stop()
            except Exception:  # one phone's teardown must not keep the others up
                pass


@_async_fixture
async def qconnect_scenario(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[ScenarioFactory]:
    from telephony.lab.report import write_report
    from telephony.lab.runner import ScenarioRunner, slug
    from telephony.lab.scenario import Scenario, ScenarioError, load_scenario

    options = request.config.option
    target = getattr(options, "qconnect_target", None)
    here = request.path.parent

    async def run(scenario: str | Path | Scenario, *, check: bool = True) -> ScenarioResult:
        """Run ``scenario`` (a file, relative to the test file, or a parsed Scenario)."""
        if not isinstance(scenario, Scenario):
            path = Path(scenario)
            try:
                scenario = load_scenario(path if path.is_absolute() else here / path)
            except ScenarioError as exc:
                pytest.fail(str(exc), pytrace=False)
        control = None
        if target:
            from telephony.lab.remote import RemoteControl, Target

            remote = Target.parse(
                target, options.qconnect_api, getattr(options, "qconnect_admin_token", None)
            )
            control = RemoteControl(scenario.instance_config, remote)
        run_dir = tmp_path / "qconnect" / slug(scenario.name)
        result = await ScenarioRunner(scenario, data_dir=run_dir, control=control).run()
        if check and not result.ok:
            report = write_report(run_dir / "report", [result])
            pytest.fail(failure_text(result, report), pytrace=False)
        return result

    yield run


def failure_text(result: ScenarioResult, report: Path | None = None) -> str:
    """What failed in a scenario run, one line each, as the test failure's message."""
    where = result.scenario.source or result.scenario.name
    failed = [r for r in result.results if not r.ok]
    lines = [f"scenario {result.scenario.name!r} ({where}) failed:"]
    if result.error:
        lines.append(f"  run error: {result.error}")
    lines.extend(f"  step error: {e}" for e in result.record.errors if e != result.error)
    for r in failed:
        at = f" (line {r.line})" if r.line is not None else ""
        lines.append(f"  FAIL {r.title or r.kind}{at}: {r.message}")
    passed = len(result.results) - len(failed)
    lines.append(f"  {passed}/{len(result.results)} assertions held")
    if report is not None:
        lines.append(f"  report: {report}")
    return "\n".join(lines)


# --- heard ---


def heard(
    audio: PhoneCall | npt.ArrayLike,
    prompt: str | None = None,
    *,
    text: str | None = None,
    wav: str | Path | None = None,
    beep: bool = False,
    music: bool = False,
    tone: float | None = None,
    within: tuple[float, float] | None = None,
    during: tuple[float, float] | None = None,
    min_score: float | None = None,
    config: InstanceConfig | None = None,
    party: str = "phone",
) -> AssertionResult:
    """Whether ``audio`` contains exactly one named sound, as a scenario's ``heard`` finds it.

    ``audio`` is a :class:`~telephony.lab.phone.PhoneCall` (what it heard so far, t = 0 at
    its media start) or 8 kHz mono samples (int16, or floats in [-1, 1]). ``within`` /
    ``during`` are seconds from its start. Prompts resolve against ``config`` (the demo lab
    by default) and the shipped audio. The result's ``message`` names what was heard instead
    when the sound is missing.
    """
    import numpy as np

    from telephony.lab.assertions import Recording, RunRecord, check
    from telephony.lab.scenario import HeardExpect, HeardSpec, Scenario

    raw = audio.heard() if hasattr(audio, "heard") else np.asarray(audio)
    samples = raw.astype(np.float64) / 32768.0 if raw.dtype == np.int16 else raw.astype(np.float64)
    scenario = Scenario.model_validate(
        {"name": "heard", "parties": {party: {"kind": "customer"}}, "steps": [{"mark": "t0"}]}
    )
    if config is not None:
        scenario._config = config
    spec = HeardSpec(
        party=party,
        prompt=prompt,
        text=text,
        wav=str(wav) if wav is not None else None,
        beep=True if beep else None,
        music=True if music else None,
        tone=tone,
        within=within,
        during=during,
        min_score=min_score,
    )
    record = RunRecord(recordings={party: Recording(party, samples)})
    return check(HeardExpect(heard=spec), scenario, record)


def assert_heard(audio: PhoneCall | npt.ArrayLike, prompt: str | None = None, **kw: Any) -> None:
    """:func:`heard`, raising AssertionError with its message when the sound is missing."""
    __tracebackhide__ = True  # the failure is the message, not this helper
    result = heard(audio, prompt, **kw)
    if not result.ok:
        raise AssertionError(result.message)
