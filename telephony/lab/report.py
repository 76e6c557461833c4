"""The HTML report of a lab run: one self-contained directory a person can open.

::

    report/
      index.html              every scenario: verdict, assertions with evidence,
                              a timeline per party, and per recording an audio
                              player, a waveform and a spectrogram
      results.json            the same verdicts for machines
      <scenario>/             record.json + one WAV per party (RunRecord.save),
                              <party>-wave.png, <party>-spec.png, ctr-<n>.json

All scenarios share one time axis per scenario (seconds since the run
started), so the waveforms of the parties line up under each other. Images are
drawn with numpy and written by the small PNG encoder below (zlib + struct; no
plotting library). Detected events are marked twice: as coloured lines in the
PNG (green: an expected sound found, red: found but wrong or too weak, grey:
marks) and as labelled HTML markers over it, with the exact times on hover.

Public API: :func:`write_report` (``out_dir``, ``results`` → ``index.html``
path), :func:`encode_png`, :func:`waveform_image`, :func:`spectrogram_image`.
"""

from __future__ import annotations

import html
import json
import re
import struct
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt

from .assertions import AssertionResult, Recording, ScenarioResult, TimelineEvent

__all__ = ["Marker", "encode_png", "spectrogram_image", "waveform_image", "write_report"]

Image = npt.NDArray[np.uint8]  # (height, width, 3) RGB

WIDTH = 960
WAVE_HEIGHT = 96
SPEC_HEIGHT = 128

_BACKGROUND = (255, 255, 255)
_OUTSIDE = (241, 243, 246)  # before the party's recording starts / after it ends
_WAVE = (59, 109, 190)
_WAVE_RMS = (31, 64, 128)
_AXIS = (214, 219, 226)
COLOURS = {
    "pass": (22, 163, 74),
    "fail": (220, 38, 38),
    "mark": (100, 116, 139),
    "banner": (124, 58, 237),
    "prompt": (217, 119, 6),
}


# -- PNG ---------------------------------------------------------------------------------------


def _chunk(kind: bytes, data: bytes) -> bytes:
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)


def encode_png(image: Image) -> bytes:
    """An 8-bit RGB PNG of ``image`` (PNG spec, ISO/IEC 15948: IHDR, one IDAT, IEND;
    every scanline with filter type 0)."""
    rgb = np.ascontiguousarray(image, dtype=np.uint8)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an (h, w, 3) image, got {rgb.shape}")
    height, width, _ = rgb.shape
    raw = np.concatenate((np.zeros((height, 1), np.uint8), rgb.reshape(height, -1)), axis=1)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(raw.tobytes(), 9))
        + _chunk(b"IEND", b"")
    )


# -- images ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Marker:
    """Something to mark on a recording's images: an instant (``end`` None) or a span."""

    t: float
    label: str
    colour: str = "mark"  # a key of COLOURS
    end: float | None = None


def _columns(total: float, width: int) -> npt.NDArray[np.float64]:
    """Run time at the left edge of each pixel column (and the right edge of the last)."""
    return np.linspace(0.0, max(total, 1e-3), width + 1)


def _x(t: float, total: float, width: int) -> int:
    return int(np.clip(round(t / max(total, 1e-3) * width), 0, width - 1))


def _draw_markers(img: Image, markers: Iterable[Marker], total: float) -> None:
    height, width, _ = img.shape
    for m in markers:
        colour = np.array(COLOURS.get(m.colour, COLOURS["mark"]), dtype=np.float64)
        if m.end is not None:
            a, b = _x(m.t, total, width), _x(m.end, total, width)
            region = img[:, a : b + 1].astype(np.float64)
            img[:, a : b + 1] = (0.82 * region + 0.18 * colour).astype(np.uint8)
        else:
            x = _x(m.t, total, width)
            if m.colour == "mark":
                img[::4, x] = colour.astype(np.uint8)  # dashed: marks are instants we chose
                img[1::4, x] = colour.astype(np.uint8)
            else:
                img[:, x] = colour.astype(np.uint8)


def waveform_image(
    rec: Recording,
    total: float,
    markers: Iterable[Marker] = (),
    width: int = WIDTH,
    height: int = WAVE_HEIGHT,
) -> Image:
    """Min/max envelope (light) and RMS (dark) per pixel column over run time [0, total]."""
    img = np.empty((height, width, 3), np.uint8)
    img[:] = _BACKGROUND
    edges = _columns(total, width)
    mid = height // 2
    x = rec.samples
    for col in range(width):
        a = int((edges[col] - rec.start) * rec.rate)
        b = int((edges[col + 1] - rec.start) * rec.rate)
        if b <= 0 or a >= len(x):
            img[:, col] = _OUTSIDE
            continue
        part = x[max(0, a) : max(max(0, a) + 1, min(len(x), b))]
        lo, hi = float(part.min()), float(part.max())
        rms = float(np.sqrt(np.mean(part * part)))
        top = int(np.clip(mid - hi * (mid - 2), 0, height - 1))
        bottom = int(np.clip(mid - lo * (mid - 2), 0, height - 1))
        img[top : bottom + 1, col] = _WAVE
        r = int(rms * (mid - 2))
        img[max(0, mid - r) : min(height, mid + r + 1), col] = _WAVE_RMS
    img[mid, :] = np.where(img[mid, :] == _BACKGROUND, _AXIS, img[mid, :])
    _draw_markers(img, markers, total)
    return img


# A perceptually ordered dark-blue -> purple -> orange -> pale-yellow map (like "magma").
_MAP_STOPS = np.array(
    [(0, 0, 4), (40, 11, 84), (101, 21, 110), (159, 42, 99), (212, 72, 66), (245, 125, 21)]
    + [(250, 193, 39), (252, 253, 191)],
    dtype=np.float64,
)


def _colour_map(values: npt.NDArray[np.float64]) -> Image:
    pos = np.clip(values, 0.0, 1.0) * (len(_MAP_STOPS) - 1)
    low = np.floor(pos).astype(int)
    high = np.minimum(low + 1, len(_MAP_STOPS) - 1)
    frac = (pos - low)[..., None]
    mixed: Image = (_MAP_STOPS[low] * (1 - frac) + _MAP_STOPS[high] * frac).astype(np.uint8)
    return mixed


def spectrogram_image(
    rec: Recording,
    total: float,
    markers: Iterable[Marker] = (),
    width: int = WIDTH,
    height: int = SPEC_HEIGHT,
    floor_db: float = -90.0,
    ceiling_db: float = -10.0,
) -> Image:
    """Short-time spectrum (256-sample Hann window, 0 Hz at the bottom, Nyquist at the
    top) per pixel column, in dBFS from ``floor_db`` to ``ceiling_db``."""
    size = 256
    window = np.hanning(size)
    edges = _columns(total, width)
    centres = (edges[:-1] + edges[1:]) / 2
    idx = ((centres - rec.start) * rec.rate).astype(int) - size // 2
    inside = (idx + size > 0) & (idx < len(rec.samples))
    padded = np.concatenate((np.zeros(size), rec.samples, np.zeros(size)))
    starts = np.clip(idx + size, 0, len(padded) - size)
    frames = padded[starts[:, None] + np.arange(size)[None, :]] * window
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2 / (window.sum() ** 2 / 4)
    db = 10 * np.log10(power + 1e-15)
    norm = (db - floor_db) / (ceiling_db - floor_db)
    bins = norm.shape[1]
    rows = np.linspace(bins - 1, 0, height).round().astype(int)  # top row = highest frequency
    img = _colour_map(norm[:, rows].T)
    img[:, ~inside] = _OUTSIDE
    _draw_markers(img, markers, total)
    return img


# -- HTML --------------------------------------------------------------------------------------

_CSS = """
:root { --pass: #16a34a; --fail: #dc2626; --ink: #0f172a; --muted: #64748b; --line: #e2e8f0;
        --card: #ffffff; --bg: #f1f5f9; --accent: #3b6dbe; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       color: var(--ink); background: var(--bg); }
header.top { background: #0f172a; color: #fff; padding: 22px 32px; }
header.top h1 { margin: 0 0 4px; font-size: 22px; font-weight: 650; }
header.top .sub { color: #cbd5e1; font-size: 13px; }
main { max-width: 1060px; margin: 0 auto; padding: 24px 20px 60px; }
.summary { display: flex; gap: 12px; flex-wrap: wrap; margin-bottom: 22px; }
.summary a { text-decoration: none; color: inherit; }
.pill { display: inline-flex; align-items: center; gap: 6px; padding: 6px 12px;
        border-radius: 999px; background: var(--card); border: 1px solid var(--line);
        font-weight: 550; }
.badge { display: inline-block; padding: 2px 10px; border-radius: 999px; color: #fff;
         font-size: 12px; font-weight: 700; letter-spacing: .03em; }
.badge.pass { background: var(--pass); } .badge.fail { background: var(--fail); }
section.scenario { background: var(--card); border: 1px solid var(--line); border-radius: 12px;
                   margin-bottom: 28px; overflow: hidden; box-shadow: 0 1px 2px #0f172a0d; }
section.scenario > header { padding: 16px 20px; border-bottom: 1px solid var(--line);
                            border-left: 6px solid var(--pass); }
section.scenario.fail > header { border-left-color: var(--fail); }
section.scenario h2 { margin: 0; font-size: 18px; display: flex; gap: 10px; align-items: center; }
.meta { color: var(--muted); font-size: 12.5px; margin-top: 4px; }
.desc { margin: 6px 0 0; color: #334155; }
h3 { font-size: 13px; text-transform: uppercase; letter-spacing: .06em; color: var(--muted);
     margin: 18px 20px 8px; }
table { border-collapse: collapse; width: 100%; }
.assertions td { padding: 7px 10px; border-top: 1px solid var(--line); vertical-align: top; }
.assertions tr.pass td.status { color: var(--pass); } .assertions tr.fail td.status { color: var(--fail); }
.assertions tr.fail { background: #fef2f2; }
td.status { font-weight: 800; width: 28px; text-align: center; font-size: 15px; }
td.what { width: 36%; font-weight: 550; }
td.what .line { color: var(--muted); font-weight: 400; font-size: 12px; }
td.msg { color: #334155; }
details summary { cursor: pointer; color: var(--accent); font-size: 12px; margin-top: 3px; }
dl.ev { display: grid; grid-template-columns: max-content 1fr; gap: 2px 12px; margin: 6px 0 0;
        font-size: 12.5px; }
dl.ev dt { color: var(--muted); } dl.ev dd { margin: 0; font-family: ui-monospace, monospace; }
.errors { margin: 10px 20px; padding: 10px 14px; background: #fef2f2; border: 1px solid #fecaca;
          border-radius: 8px; color: #991b1b; }
.wrap { padding: 0 20px 8px; overflow-x: auto; }
.timeline { font-size: 12.5px; }
.timeline th { text-align: left; font-weight: 650; padding: 6px 8px; background: #f8fafc;
               border-bottom: 1px solid var(--line); position: sticky; top: 0; }
.timeline td { padding: 4px 8px; border-bottom: 1px solid #f1f5f9; vertical-align: top; }
.timeline td.t { font-family: ui-monospace, monospace; color: var(--muted); width: 64px;
                 text-align: right; }
.chip { display: inline-block; padding: 1px 8px; border-radius: 6px; margin: 1px 0;
        font-size: 12px; border: 1px solid transparent; white-space: nowrap; }
.chip.banner { background: #f3e8ff; color: #6b21a8; border-color: #e9d5ff; }
.chip.prompt { background: #fff7ed; color: #9a3412; border-color: #fed7aa; }
.chip.flowBlock { background: #eff6ff; color: #1e40af; border-color: #bfdbfe; }
.chip.mark { background: #f1f5f9; color: #334155; border-color: #cbd5e1; font-weight: 650; }
.chip.step { background: #ecfeff; color: #155e75; border-color: #a5f3fc; }
.chip.error { background: #fef2f2; color: #991b1b; border-color: #fecaca; }
.chip.other { background: #f8fafc; color: #475569; border-color: #e2e8f0; }
.leg { margin: 0 20px 18px; border: 1px solid var(--line); border-radius: 10px; padding: 12px; }
.leg h4 { margin: 0 0 6px; font-size: 14px; display: flex; justify-content: space-between;
          align-items: baseline; gap: 12px; }
.leg h4 span { color: var(--muted); font-weight: 400; font-size: 12px; }
.leg audio { width: 100%; height: 34px; margin: 4px 0 8px; }
.plot { position: relative; width: 100%; line-height: 0; margin-bottom: 4px; }
.plot img { width: 100%; height: auto; border-radius: 4px; image-rendering: pixelated;
            border: 1px solid var(--line); }
.plot .m { position: absolute; top: 0; transform: translateX(-50%); font-size: 10.5px;
           line-height: 1.2; padding: 1px 4px; border-radius: 4px; color: #fff; white-space: nowrap;
           opacity: .92; }
.plot .m.pass { background: var(--pass); } .plot .m.fail { background: var(--fail); }
.plot .m.mark { background: #475569; top: auto; bottom: 0; }
.axis { position: relative; height: 16px; font-size: 10.5px; color: var(--muted); }
.axis span { position: absolute; transform: translateX(-50%); }
.legend { font-size: 12px; color: var(--muted); margin: 0 20px 14px; }
.legend i { display: inline-block; width: 10px; height: 10px; border-radius: 2px;
            margin: 0 4px 0 12px; vertical-align: -1px; }
footer { color: var(--muted); font-size: 12px; text-align: center; margin-top: 30px; }
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "scenario"


def _pct(t: float, total: float) -> float:
    return max(0.0, min(100.0, t / max(total, 1e-3) * 100.0))


def _markers_for(party: str, result: ScenarioResult, total: float) -> list[Marker]:
    markers = [Marker(e.t, e.text, "mark") for e in result.record.timeline if e.kind == "mark"]
    for r in result.results:
        ev = r.evidence
        if ev.party != party:
            continue
        colour = "pass" if r.ok else "fail"
        # Only failed windows are shaded: they are where to look (and listen).
        window = ev.window
        if (
            not r.ok
            and window is not None
            and np.isfinite(window[1])
            and 0 < window[1] - window[0] < 0.9 * total
        ):
            markers.append(Marker(window[0], "", colour, window[1]))
        if ev.found is not None and r.kind not in ("banner", "banners", "ctr"):
            markers.append(Marker(ev.found.at, ev.found.label, colour))
        for other in ev.heard_instead[:1]:
            markers.append(Marker(other.at, f"instead: {other.label}", "fail"))
    unique: dict[tuple[str, float, str, float | None], Marker] = {}
    for m in markers:
        unique.setdefault((m.label, round(m.t, 2), m.colour, m.end), m)
    return list(unique.values())


def _axis(total: float) -> str:
    step = next((s for s in (0.5, 1, 2, 5, 10, 15, 30, 60, 120) if total / s <= 12), 300)
    ticks = []
    t = 0.0
    while t <= total + 1e-9:
        ticks.append(f'<span style="left:{_pct(t, total):.2f}%">{t:g} s</span>')
        t += step
    return f'<div class="axis">{"".join(ticks)}</div>'


def _plot(src: str, alt: str, markers: Sequence[Marker], total: float, labels: bool) -> str:
    spans = []
    if labels:
        row_ends: list[float] = []  # per label row: where (percent) its last label ends
        for m in sorted(markers, key=lambda m: m.t):
            if m.end is not None or not m.label:
                continue
            cls = m.colour if m.colour in ("pass", "fail") else "mark"
            left = _pct(m.t, total)
            half = len(m.label) * 0.35  # ~6.5 px per character of a 960 px plot, in percent
            row = 0
            if cls != "mark":
                row = next((i for i, end in enumerate(row_ends) if end < left - half), -1)
                if row < 0:
                    row_ends.append(0.0)
                    row = len(row_ends) - 1
                row_ends[row] = left + half
            spans.append(
                f'<span class="m {cls}" style="left:{left:.2f}%;margin-top:{row * 17}px" '
                f'title="{_e(m.label)} at {m.t:.2f} s">{_e(m.label)}</span>'
            )
    return f'<div class="plot"><img src="{_e(src)}" alt="{_e(alt)}">{"".join(spans)}</div>'


def _evidence_html(r: AssertionResult) -> str:
    ev = r.evidence
    rows: list[tuple[str, str]] = []
    if ev.party:
        rows.append(("party", ev.party))
    if ev.expected:
        rows.append(("expected", ev.expected))
    if ev.window is not None:
        rows.append(("window", f"{ev.window[0]:.2f} – {ev.window[1]:.2f} s"))
    if ev.found is not None:
        score = f", score {ev.found.score:.3f}" if ev.found.score is not None else ""
        end = f" – {ev.found.end:.2f}" if ev.found.end is not None else ""
        rows.append(("found", f"{ev.found.label} at {ev.found.at:.2f}{end} s{score}"))
    if ev.threshold is not None:
        rows.append(("threshold", f"{ev.threshold:g}"))
    for d in ev.heard_instead:
        rows.append(("heard instead", d.describe()))
    for key, value in ev.details.items():
        rows.append((key, json.dumps(value, default=str)))
    if not rows:
        return ""
    items = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in rows)
    return f'<details><summary>evidence</summary><dl class="ev">{items}</dl></details>'


def _assertions_html(results: Sequence[AssertionResult]) -> str:
    if not results:
        return '<p class="meta" style="margin:0 20px">No assertions.</p>'
    rows = []
    for r in results:
        cls = "pass" if r.ok else "fail"
        line = f' <span class="line">line {r.line}</span>' if r.line is not None else ""
        rows.append(
            f'<tr class="{cls}"><td class="status">{"✓" if r.ok else "✗"}</td>'
            f'<td class="what">{_e(r.title or r.kind)}{line}</td>'
            f'<td class="msg">{_e(r.message)}{_evidence_html(r)}</td></tr>'
        )
    return f'<div class="wrap"><table class="assertions">{"".join(rows)}</table></div>'


def _lane(event: TimelineEvent, parties: Sequence[str]) -> str | None:
    return event.party if event.party in parties else None


def _timeline_html(result: ScenarioResult) -> str:
    parties = list(result.scenario.parties)
    events = sorted(result.record.timeline, key=lambda e: e.t)
    if not events:
        return '<p class="meta" style="margin:0 20px">No events recorded.</p>'
    head = "".join(f"<th>{_e(p)}</th>" for p in parties)
    rows = []
    for e in events:
        lane = _lane(e, parties)
        kind = (
            e.kind
            if e.kind in ("banner", "prompt", "flowBlock", "mark", "step", "error")
            else "other"
        )
        if e.kind == "banner":
            text = f"{e.data.get('connection')}: {e.data.get('state')}"
        elif e.kind == "prompt":
            text = f"♪ {e.text}"
        elif e.kind == "mark":
            text = f"◆ {e.text}"
        else:
            text = e.text or e.kind
        if kind == "other":
            text = f"{e.kind}: {text}" if text != e.kind else text
        chip = f'<span class="chip {kind}" title="{_e(e.kind)}">{_e(text)}</span>'
        cells = "".join(f"<td>{chip if p == lane else ''}</td>" for p in parties)
        rest = chip if lane is None else ""
        rows.append(f'<tr><td class="t">{e.t:.2f}</td>{cells}<td>{rest}</td></tr>')
    return (
        f'<div class="wrap"><table class="timeline"><thead><tr><th>t (s)</th>{head}'
        f"<th>contact / flow</th></tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
    )


def _recordings_html(result: ScenarioResult, folder: Path, rel: str, total: float) -> str:
    record = result.record
    order = list(dict.fromkeys([*result.scenario.parties, *record.recordings]))
    legs = []
    for party in order:
        rec = record.recordings.get(party)
        if rec is None:
            continue
        stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", party).strip("_") or "party"
        markers = _markers_for(party, result, total)
        (folder / f"{stem}-wave.png").write_bytes(encode_png(waveform_image(rec, total, markers)))
        (folder / f"{stem}-spec.png").write_bytes(
            encode_png(spectrogram_image(rec, total, markers))
        )
        spec = result.scenario.parties.get(party)
        said = f" · plays {spec.plays.describe()}" if spec is not None and spec.plays else ""
        legs.append(
            f'<div class="leg" id="{_e(rel)}-{_e(_slug(party))}"><h4>{_e(party)}'
            f"<span>heard from {rec.start:.2f} s for {rec.duration:.1f} s{_e(said)}</span></h4>"
            f'<audio controls preload="none" src="{_e(rel)}/{_e(stem)}.wav"></audio>'
            + _plot(f"{rel}/{stem}-wave.png", f"{party} waveform", markers, total, True)
            + _plot(f"{rel}/{stem}-spec.png", f"{party} spectrogram", markers, total, False)
            + _axis(total)
            + "</div>"
        )
    if not legs:
        return '<p class="meta" style="margin:0 20px 16px">No recordings.</p>'
    legend = (
        '<div class="legend">Markers:<i style="background:#16a34a"></i>expected sound found'
        '<i style="background:#dc2626"></i>missing or wrong'
        '<i style="background:#475569"></i>scenario marks · shaded: the expected window</div>'
    )
    return legend + "".join(legs)


def _scenario_html(result: ScenarioResult, out: Path, index: int) -> str:
    sc = result.scenario
    rel = f"{index:02d}-{_slug(sc.name)}"
    folder = out / rel
    result.record.save(folder)
    for n, ctr in enumerate(result.record.ctrs):
        (folder / f"ctr-{n}.json").write_text(json.dumps(ctr, indent=2, default=str) + "\n")
    total = max(result.record.end, 1.0)
    passed = sum(r.ok for r in result.results)
    cls = "pass" if result.ok else "fail"
    errors = list(result.record.errors) + ([result.error] if result.error else [])
    error_html = (
        '<div class="errors"><b>The run did not go as scripted:</b><ul>'
        + "".join(f"<li>{_e(err)}</li>" for err in errors)
        + "</ul></div>"
        if errors
        else ""
    )
    ctr_links = " · ".join(
        f'<a href="{_e(rel)}/ctr-{n}.json">contact trace record {n}</a>'
        for n in range(len(result.record.ctrs))
    )
    meta = [
        _e(result.file),
        f"{passed}/{len(result.results)} assertions passed",
        f"run {result.duration:.1f} s" if result.duration else f"{total:.1f} s recorded",
    ]
    if ctr_links:
        meta.append(ctr_links)
    meta.append(f'<a href="{_e(rel)}/record.json">record.json</a>')
    return (
        f'<section class="scenario {cls}" id="{_e(rel)}"><header><h2>'
        f'<span class="badge {cls}">{"PASS" if result.ok else "FAIL"}</span>{_e(sc.name)}</h2>'
        f'<div class="meta">{" · ".join(meta)}</div>'
        + (f'<p class="desc">{_e(sc.description)}</p>' if sc.description else "")
        + "</header>"
        + error_html
        + "<h3>Assertions</h3>"
        + _assertions_html(result.results)
        + "<h3>Timeline</h3>"
        + _timeline_html(result)
        + "<h3>Recordings</h3>"
        + _recordings_html(result, folder, rel, total)
        + "</section>"
    )


def write_report(
    out_dir: str | Path, results: Sequence[ScenarioResult], title: str = "qconnect lab report"
) -> Path:
    """Write the report directory and return the path of its ``index.html``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sections = [_scenario_html(r, out, i + 1) for i, r in enumerate(results)]
    ok = sum(r.ok for r in results)
    total_assertions = sum(len(r.results) for r in results)
    passed_assertions = sum(sum(a.ok for a in r.results) for r in results)
    pills = "".join(
        f'<a href="#{i + 1:02d}-{_slug(r.scenario.name)}"><span class="pill">'
        f'<span class="badge {"pass" if r.ok else "fail"}">{"PASS" if r.ok else "FAIL"}</span>'
        f"{_e(r.scenario.name)}</span></a>"
        for i, r in enumerate(results)
    )
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    verdict = "all passed" if ok == len(results) else f"{len(results) - ok} failed"
    page = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>"
        f'<header class="top"><h1>{_e(title)}</h1><div class="sub">'
        f"{len(results)} scenario{'s' if len(results) != 1 else ''} · {verdict} · "
        f"{passed_assertions}/{total_assertions} assertions passed · {stamp}</div></header>"
        f'<main><div class="summary">{pills}</div>{"".join(sections)}'
        "<footer>qconnect · recordings are what each phone heard, on the run's clock</footer>"
        "</main></body></html>\n"
    )
    index = out / "index.html"
    index.write_text(page, encoding="utf-8")
    summary = [
        {
            "scenario": r.scenario.name,
            "file": r.file,
            "ok": r.ok,
            "errors": list(r.record.errors) + ([r.error] if r.error else []),
            "assertions": [a.to_json() for a in r.results],
        }
        for r in results
    ]
    (out / "results.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return index
