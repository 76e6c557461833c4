"""The HTML report and JUnit XML: the files are there, well formed, and carry the verdicts."""

from __future__ import annotations

import json
import struct
import xml.etree.ElementTree as ET
import zlib
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from telephony.lab.assertions import RunRecord, ScenarioResult, TimelineEvent, evaluate
from telephony.lab.junit import junit_xml, write_junit
from telephony.lab.report import (
    Marker,
    encode_png,
    spectrogram_image,
    waveform_image,
    write_report,
)
from telephony.lab.scenario import parse_scenario

from .synth import clip, music, recording, tone

SCENARIO = """\
name: "Report <demo> & co"
description: A synthetic run with one failing assertion.
parties:
  john: {kind: agent, plays: 1850}
  customer: {kind: customer, plays: 2200}
steps:
  - mark: qc
  - mark: talk
expect:
  - heard: {party: john, prompt: Transferring to agent, within: [qc, qc+2]}
  - heard: {party: customer, music: true, during: [qc+0.5, talk]}
  - heard: {party: john, prompt: PasswordReset, within: [qc, qc+2]}
  - two_way: [john, customer]
    during: [talk+0.5, end]
"""


def decode_png(data: bytes) -> np.ndarray:
    """Just enough of a PNG reader to check our encoder: RGB8, filter type 0."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, size = 8, b"", (0, 0)
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF
        if kind == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", body[:10])
            assert (depth, colour) == (8, 2)
            size = (height, width)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(size[0], size[1] * 3 + 1)
    assert not raw[:, 0].any()
    return raw[:, 1:].reshape(size[0], size[1], 3)


@pytest.fixture(scope="module")
def result() -> ScenarioResult:
    sc = parse_scenario(SCENARIO, "report_demo.yaml")
    john = recording("john", 10.0, [(1.2, clip("Transferring to agent")), (5.0, tone(2200, 5.0))])
    customer = recording("customer", 9.0, [(1.0, music(4.0)), (5.0, tone(1850, 5.0))], start=1.0)
    timeline = [
        TimelineEvent.mark(1.0, "qc"),
        TimelineEvent.mark(5.0, "talk"),
        TimelineEvent.banner(1.0, "john", "customer", "On hold"),
        TimelineEvent.prompt(1.2, "Transferring to agent", "john", 2.6),
        TimelineEvent.flow_block(
            1.1, "Default agent transfer", "Play prompt", "MessageParticipant"
        ),
        TimelineEvent(3.0, "offerCreated", "maria", "queue=None"),
    ]
    record = RunRecord(
        {"john": john, "customer": customer}, timeline, [{"contact": "c1", "holdCount": 1}]
    )
    return ScenarioResult(sc, record, evaluate(sc, record), duration=10.5)


def test_png_encoder_round_trips() -> None:
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (7, 5, 3), dtype=np.uint8)
    assert np.array_equal(decode_png(encode_png(image)), image)
    with pytest.raises(ValueError):
        encode_png(np.zeros((4, 4), np.uint8))


def test_waveform_and_spectrogram_images(result: ScenarioResult) -> None:
    rec = result.record.recordings["customer"]  # starts at 1.0 s
    marks = [Marker(5.0, "talk"), Marker(2.0, "found", "pass"), Marker(6.0, "", "fail", 8.0)]
    wave = waveform_image(rec, 10.0, marks, width=200, height=50)
    assert wave.shape == (50, 200, 3)
    assert (wave[:, 5] == (241, 243, 246)).all()  # before the recording: the "outside" grey
    assert (wave[:, 40] == (22, 163, 74)).all()  # the pass marker at 2.0 s
    top = wave[0, 140].astype(int)  # inside the failed window 6-8 s: tinted red
    assert top[0] > top[1] + 20 and top[1] == top[2]
    assert (wave[0, 90] == 255).all()  # outside it: white
    spec = spectrogram_image(rec, 10.0, (), width=200, height=64)
    assert spec.shape == (64, 200, 3)
    # The customer's 1850 Hz tone (5-10 s) is a bright line at 1850/4000 of the height.
    row = int(round((1 - 1850 / 4000) * 63))
    column = spec[:, 150].astype(int).sum(axis=1)
    assert abs(int(np.argmax(column)) - row) <= 2


def test_report_directory(result: ScenarioResult, tmp_path: Path) -> None:
    index = write_report(tmp_path / "report", [result, result])
    assert index == tmp_path / "report" / "index.html"
    page = index.read_text(encoding="utf-8")

    class Collect(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.tags: list[tuple[str, dict[str, str | None]]] = []

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            self.tags.append((tag, dict(attrs)))

    parser = Collect()
    parser.feed(page)
    tags = parser.tags
    sections = [a for t, a in tags if t == "section"]
    assert len(sections) == 2 and all("fail" in (a.get("class") or "") for a in sections)
    audio = [a["src"] for t, a in tags if t == "audio"]
    images = [a["src"] for t, a in tags if t == "img"]
    assert len(audio) == 4 and len(images) == 8
    for src in [*audio, *images]:
        assert src is not None and (index.parent / src).is_file(), src
    for src in images:
        assert src is not None
        assert decode_png((index.parent / src).read_bytes()).shape[1] == 960
    # Escaped names, verdicts, evidence and the timeline's chips.
    assert "Report &lt;demo&gt; &amp; co" in page and "<demo>" not in page
    assert page.count("✗") == 2 * 1 and page.count("✓") == 2 * 3
    assert "heard instead: prompt &#x27;Transferring to agent&#x27;" in page
    assert "Default agent transfer: Play prompt" in page and "♪ Transferring to agent" in page
    assert "customer: On hold" in page and "offerCreated" in page
    results = json.loads((index.parent / "results.json").read_text())
    assert [r["ok"] for r in results] == [False, False]
    assert [a["ok"] for a in results[0]["assertions"]] == [True, True, False, True]
    folder = index.parent / "01-report-demo-co"
    assert json.loads((folder / "ctr-0.json").read_text()) == {"contact": "c1", "holdCount": 1}
    assert RunRecord.load(folder).marks() == {"qc": 1.0, "talk": 5.0}


def test_junit_xml(result: ScenarioResult, tmp_path: Path) -> None:
    broken = ScenarioResult(
        result.scenario,
        RunRecord(errors=["wait_for banner john customer Connected: timed out after 10 s"]),
        [],
        duration=12.0,
        error=None,
    )
    path = write_junit(tmp_path / "out" / "junit.xml", [result, broken])
    root = ET.parse(path).getroot()
    assert root.tag == "testsuites"
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("5", "1", "1")
    suites = root.findall("testsuite")
    assert len(suites) == 2
    first = suites[0]
    assert first.get("name") == "Report <demo> & co" and first.get("file") == "report_demo.yaml"
    cases = first.findall("testcase")
    assert [c.get("name") for c in cases] == [r.title for r in result.results]
    assert all(c.get("classname") == "report_demo" for c in cases)
    assert [c.get("line") for c in cases] == ["10", "11", "12", "13"]
    failures = [c.find("failure") for c in cases]
    assert [f is None for f in failures] == [True, True, False, True]
    failure = failures[2]
    assert failure is not None and failure.get("message") == result.results[2].message
    assert failure.get("type") == "heard"
    assert json.loads(failure.text or "")["expected"] == "prompt 'PasswordReset'"
    (run_case,) = suites[1].findall("testcase")
    error = run_case.find("error")
    assert run_case.get("name") == "run" and error is not None
    assert error.get("message") == "wait_for banner john customer Connected: timed out after 10 s"
    assert junit_xml([result]).startswith('<?xml version="1.0" encoding="UTF-8"?>')
