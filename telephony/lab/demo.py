"""`qconnect demo` and `qconnect test`: run scenarios, narrate, write the report and JUnit XML."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TextIO

from telephony.lab.assertions import ScenarioResult
from telephony.lab.junit import write_junit
from telephony.lab.report import write_report
from telephony.lab.runner import Control, ScenarioRunner, slug
from telephony.lab.scenario import SCENARIOS_DIR, Scenario, ScenarioError, load_scenario

# The seed's three scenarios (MISSION.md), in order.
SEED_SCENARIOS = (
    SCENARIOS_DIR / "scenario1_agent_quick_connect.yaml",
    SCENARIOS_DIR / "scenario2_queue_quick_connect.yaml",
    SCENARIOS_DIR / "scenario3_phone_number_quick_connect.yaml",
)


class Console:
    """The live timeline: one line per thing that happened, like the seed's narration."""

    def __init__(self, stream: TextIO = sys.stdout) -> None:
        self.stream = stream

    def line(self, text: str = "") -> None:
        print(text, file=self.stream, flush=True)

    def event(self, t: float, text: str) -> None:
        self.line(f"  {t:6.2f} s  {text}")


def expand(paths: Sequence[Path]) -> list[Path]:
    """Scenario files, with directories standing for the YAML files in them."""
    out: list[Path] = []
    for path in paths:
        out.extend(sorted(path.glob("*.yaml")) if path.is_dir() else [path])
    return out


async def run(
    paths: Sequence[Path],
    out: Path,
    console: Console,
    *,
    junit: Path | None = None,
    control: Callable[[Scenario], Control] | None = None,
) -> int:
    """Run every scenario; 0 when every assertion of every scenario held, 1 otherwise,
    2 when a scenario file itself is invalid (nothing runs then). ``control`` makes each
    scenario's switch (default: an embedded one; ``telephony.lab.remote`` for ``--target``)."""
    scenarios: list[Scenario] = []
    for path in expand(paths):
        try:
            scenarios.append(load_scenario(path))
        except ScenarioError as exc:
            console.line(str(exc))
            return 2
    results: list[ScenarioResult] = []
    for index, scenario in enumerate(scenarios, 1):
        console.line(f"== [{index}/{len(scenarios)}] {scenario.name}")
        runner = ScenarioRunner(
            scenario,
            data_dir=out / "runs" / slug(scenario.name),
            narrate=console.event,
            control=control(scenario) if control is not None else None,
        )
        result = await runner.run()
        results.append(result)
        failed = [r for r in result.results if not r.ok]
        if result.error:
            console.line(f"  run error: {result.error}")
        for assertion in result.results:
            console.line(f"  {'PASS' if assertion.ok else 'FAIL'}  {assertion.message}")
        verdict = (
            "passed" if not failed and not result.error else f"FAILED ({len(failed)} assertions)"
        )
        console.line(f"== {scenario.name}: {verdict} in {result.duration:.1f} s")
        console.line()
    index_html = write_report(out, results)
    junit_path = write_junit(junit or out / "junit.xml", results)
    ok = all(not r.error and all(a.ok for a in r.results) for r in results)
    console.line(f"report: {index_html}")
    console.line(f"junit:  {junit_path}")
    console.line("all assertions held" if ok else "some assertions FAILED")
    return 0 if ok else 1
