"""JUnit XML for CI: one ``<testsuite>`` per scenario file, one ``<testcase>`` per assertion.

The shape is the one Jenkins, GitLab and GitHub test reporters read (the
Ant JUnit schema as the ``junit-team`` "JUnit XML" reference describes it)::

    <testsuites name=… tests=… failures=… errors=… time=…>
      <testsuite name="<scenario name>" file="<scenario file>" tests=… failures=… errors=…>
        <testcase classname="<scenario file stem>" name="<assertion in words>" file=… line=…>
          <failure message="<the assertion's message>" type="heard">evidence as JSON</failure>
          <system-out>the message of a passing assertion</system-out>
        </testcase>
        <testcase name="run"><error message="<what went wrong>"/></testcase>   (steps that failed)
      </testsuite>
    </testsuites>

A failed assertion is a ``<failure>`` whose ``message`` is exactly
:attr:`AssertionResult.message` (names the party, the expected item and what
was heard instead). A run that could not complete as scripted (a step that
failed, a switch that did not answer) adds a ``run`` testcase with an
``<error>``, so CI tells "the audio was wrong" from "the lab broke".

Public API: :func:`junit_xml` (results → XML text), :func:`write_junit`.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

from .assertions import ScenarioResult

__all__ = ["junit_xml", "write_junit"]


def _stem(result: ScenarioResult) -> str:
    source = result.scenario.source
    return source.stem if source is not None else result.scenario.name


def _suite(result: ScenarioResult) -> ET.Element:
    errors = list(result.record.errors) + ([result.error] if result.error else [])
    failures = sum(not r.ok for r in result.results)
    suite = ET.Element(
        "testsuite",
        {
            "name": result.scenario.name,
            "file": result.file,
            "tests": str(len(result.results) + (1 if errors else 0)),
            "failures": str(failures),
            "errors": str(1 if errors else 0),
            "skipped": "0",
            "time": f"{result.duration:.3f}",
        },
    )
    share = result.duration / max(1, len(result.results))
    seen: dict[str, int] = {}
    for r in result.results:
        name = r.title or r.kind
        # Test reporters key cases by name: keep two identical expectations apart.
        seen[name] = seen.get(name, 0) + 1
        if seen[name] > 1:
            name = f"{name} ({seen[name]})"
        attrs = {"classname": _stem(result), "name": name, "time": f"{share:.3f}"}
        attrs["file"] = result.file
        if r.line is not None:
            attrs["line"] = str(r.line)
        case = ET.SubElement(suite, "testcase", attrs)
        if r.ok:
            ET.SubElement(case, "system-out").text = r.message
        else:
            failure = ET.SubElement(case, "failure", {"message": r.message, "type": r.kind})
            failure.text = json.dumps(r.evidence.to_json(), indent=2, default=str)
    if errors:
        case = ET.SubElement(
            suite, "testcase", {"classname": _stem(result), "name": "run", "time": "0.000"}
        )
        error = ET.SubElement(case, "error", {"message": errors[0], "type": "run"})
        error.text = "\n".join(errors)
    return suite


def junit_xml(results: Sequence[ScenarioResult], name: str = "qconnect") -> str:
    """The JUnit XML document for ``results`` (UTF-8 text with an XML declaration)."""
    suites = [_suite(r) for r in results]
    root = ET.Element(
        "testsuites",
        {
            "name": name,
            "tests": str(sum(int(s.get("tests", "0")) for s in suites)),
            "failures": str(sum(int(s.get("failures", "0")) for s in suites)),
            "errors": str(sum(int(s.get("errors", "0")) for s in suites)),
            "time": f"{sum(r.duration for r in results):.3f}",
        },
    )
    root.extend(suites)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode")


def write_junit(path: str | Path, results: Sequence[ScenarioResult]) -> Path:
    """Write :func:`junit_xml` to ``path`` (parent directories are created)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(junit_xml(results) + "\n", encoding="utf-8")
    return target
