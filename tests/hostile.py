"""Hostile and careless text for the hardening tests, and scanners that look through written outputs.

``scan_outputs(folder)`` opens every file a run or an export wrote and returns the
problems found: a formula cell or a formula-like text in a workbook, a CSV field
that starts a formula, markup from the hostile names unescaped in HTML, KML or
JavaScript, a file that does not parse (XML, JSON), a control character.
"""

from __future__ import annotations

import csv
import io
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

#: Names a hostile or careless user could give mines, reserves, units and people.
FORMULAS = ["=cmd|' /C calc'!A0", "+SUM(1,2)", "-2+3", "@SUM(A1)", "=HYPERLINK(\"http://evil.example\",\"点我\")",
            "\t=1+1", "＝1+1"]
MARKUP = ["<img src=x onerror=alert(1)>", "<script>alert('xss')</script>", "\"><svg onload=alert(2)>",
          "]]><script>alert(3)</script>"]
#: The dangerous part of each markup string: must never appear unescaped in HTML/KML/JS.
MARKUP_CORES = ["<img src=x", "<script>alert(", "<svg onload", "<script>alert(3"]
OTHER = ["黄山\x0b自然保护区", "铃\x07声", "空\x00字", "\u202e区护保", "$\\foo$", "矿" * 86, "K/1", "K:1", "k/1",
         "CON", "../../etc/passwd", "\ufeff带BOM", "🦊 emoji", "a" * 300]
TRIGGERS = tuple("=+-@\t\r\uff1d\uff0b\uff0d\uff20")


_NUMBER = re.compile(r"[+-]?(\d+([.,]\d*)?|[.,]\d+)([eE][+-]?\d+)?%?|[+-]?inf", re.I)


def _formula_like(text: str) -> bool:
    """What a spreadsheet would run (written here independently of ecopatch.vector.sanitize, which it checks)."""
    s = text.lstrip(" \u3000\u00a0")
    return bool(s) and s[0] in TRIGGERS and not _NUMBER.fullmatch(s.strip())


def scan_outputs(folder: Path) -> list[str]:
    """Every problem in the files under ``folder`` (see the module docstring); [] when clean."""
    problems: list[str] = []
    for p in sorted(folder.rglob("*")):
        if not p.is_file():
            continue
        suffix = p.suffix.lower()
        try:
            if suffix == ".xlsx":
                problems += _scan_xlsx(p)
            elif suffix == ".csv":
                problems += _scan_csv(p)
            elif suffix in (".html", ".htm", ".js"):
                problems += _scan_markup(p, p.read_text(encoding="utf-8"))
            elif suffix == ".kml":
                problems += _scan_kml(p)
            elif suffix in (".json", ".geojson"):
                # data, not a page: it must parse (strict JSON has no raw control characters); web pages
                # that show it (the web map) are scanned as HTML
                json.loads(p.read_text(encoding="utf-8"))
            elif suffix in (".log", ".txt"):
                text = p.read_text(encoding="utf-8")
                if "\x1b" in text or "\x07" in text:
                    problems.append(f"{p}: raw control characters in a log")
        except Exception as exc:  # noqa: BLE001 - a file that does not parse is a finding
            problems.append(f"{p}: cannot be read back ({type(exc).__name__}: {exc})")
    return problems


def _scan_xlsx(p: Path) -> list[str]:
    import openpyxl

    out = []
    wb = openpyxl.load_workbook(p)  # not read-only: every cell with its data type
    for ws in wb.worksheets:
        for row in ws.iter_rows():
            for c in row:
                if c.data_type == "f":
                    out.append(f"{p}[{ws.title}!{c.coordinate}]: a formula cell {c.value!r}")
                elif isinstance(c.value, str) and _formula_like(c.value):
                    out.append(f"{p}[{ws.title}!{c.coordinate}]: formula-like text {c.value!r}")
    return out


def _scan_csv(p: Path) -> list[str]:
    raw = p.read_bytes()
    text = raw.decode("utf-8-sig")
    out = []
    for i, row in enumerate(csv.reader(io.StringIO(text, newline=""))):
        for f in row:
            if _formula_like(f):
                out.append(f"{p}: record {i + 1}: field {f!r} starts a formula")
            if any(ch in f for ch in "\x00\x07\x0b\x1b"):
                out.append(f"{p}: record {i + 1}: raw control character in {f!r}")
    return out


def _scan_markup(p: Path, text: str) -> list[str]:
    out = []
    # JavaScript string escapes hide markup from a plain search (folium writes "<" as \u003c in the page's
    # data; the browser decodes it before innerHTML sees it): search the decoded text too
    decoded = re.sub(r"\\u([0-9a-fA-F]{4})", lambda m: chr(int(m.group(1), 16)), text)
    for core in MARKUP_CORES:
        if core in text or core in decoded:
            out.append(f"{p}: unescaped markup {core!r}")
    if "</script" in text.lower():
        # our own pages hold script blocks; a hostile name must not close one early
        for m in MARKUP:
            if m in text:
                out.append(f"{p}: hostile markup {m!r} verbatim")
    return out


def _scan_kml(p: Path) -> list[str]:
    out = _scan_markup(p, p.read_text(encoding="utf-8"))
    root = ET.parse(p).getroot()  # must be well-formed XML
    for el in root.iter():
        if el.tag.endswith("description") and el.text:
            for core in MARKUP_CORES:
                if core in el.text:  # after XML parsing: HTML a balloon would render
                    out.append(f"{p}: description renders markup {core!r}")
    return out
