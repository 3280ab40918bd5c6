r"""Text that cannot attack its reader: formula neutralisation, control characters, safe file names.

Pure functions, no I/O.  Every writer of CSV, XLSX, KML, HTML and file names
in ecopatch goes through them (:mod:`ecopatch.vector.tables`, :mod:`ecopatch.fieldcheck`,
:mod:`ecopatch.outputs.report`, :mod:`ecopatch.outputs.webmap`), and every import checks text
with :func:`text_problem`.

Three dangers, three rules:

- **Spreadsheet formulas** (CSV/formula injection, OWASP): a cell whose text
  begins with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return (or their
  full-width forms) is run as a formula by Excel, LibreOffice and WPS when the
  file is opened; ``=cmd|' /C calc'!A0`` starts a program.
  :func:`neutralise_formula` prefixes such text with an apostrophe, as OWASP
  advises, so it shows as the text it is.  Text that is just a number
  (``-12.5``, ``+86``... no: ``+86 138`` is not a number) is left alone.
- **Control characters** (``\x00``-``\x1f`` but tab, line feed and carriage
  return; ``\x7f``-``\x9f``; direction overrides such as U+202E that make text
  display other than it is stored; byte-order marks inside text; lone
  surrogates; the non-characters U+FFFE/U+FFFF): XML (XLSX, KML, GeoPackage
  readers) cannot hold most of them, terminals execute escape sequences, and
  direction overrides disguise names.  Imports refuse them
  (:func:`text_problem` says which character, where); exports repair what is
  already stored (:func:`repair_text`), so an old ledger always exports.
- **File names** made from IDs and names: :func:`unique_filenames` gives
  names that are safe on every file system, at most ``max_bytes`` long, and
  distinct even where two IDs differ only in characters a file name cannot
  hold (``K/1`` and ``K:1``) or only in letter case.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
import unicodedata
from collections.abc import Iterable
from typing import Any

__all__ = [
    "EXCEL_CELL_MAX_CHARS",
    "FORMULA_TRIGGERS",
    "SafeLogFormatter",
    "for_terminal",
    "is_formula_like",
    "neutralise_formula",
    "repair_text",
    "safe_filename",
    "strip_text",
    "text_problem",
    "unique_filenames",
]

#: First characters that make a spreadsheet treat a cell as a formula (OWASP CSV injection),
#: with the full-width forms Chinese input methods type.
FORMULA_TRIGGERS: frozenset[str] = frozenset("=+-@\t\r\uff1d\uff0b\uff0d\uff20")
#: Characters a spreadsheet cell holds at most (Excel's limit).
EXCEL_CELL_MAX_CHARS = 32_767

_NUMBER = re.compile(r"[+-]?(?:\d+(?:[.,]\d*)?|[.,]\d+)(?:[eE][+-]?\d+)?%?|[+-]?(?:inf|infinity|nan)", re.I)
# Direction embeddings/overrides/isolates: text displayed other than stored ("Trojan Source").
_BIDI = "\u202a-\u202e\u2066-\u2069"
# Never allowed in stored text: C0 but tab/LF/CR, DEL, C1, bidi controls, BOM, surrogates, non-characters.
_BAD = re.compile(f"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f{_BIDI}\ufeff\ud800-\udfff\ufffe\uffff]")
# ... and in single-line text (IDs, names) tab, LF and CR too.
_BAD_LINE = re.compile(f"[\x00-\x1f\x7f-\x9f{_BIDI}\ufeff\ud800-\udfff\ufffe\uffff]")
_C0_NAMES = ("NUL", "SOH", "STX", "ETX", "EOT", "ENQ", "ACK", "BEL", "BS", "TAB", "LF", "VT", "FF", "CR", "SO",
             "SI", "DLE", "DC1", "DC2", "DC3", "DC4", "NAK", "SYN", "ETB", "CAN", "EM", "SUB", "ESC", "FS", "GS",
             "RS", "US")


def is_formula_like(text: str) -> bool:
    """Whether a spreadsheet would take ``text`` as a formula (see :data:`FORMULA_TRIGGERS`).

    Leading spaces are skipped, as some spreadsheets skip them; plain numbers
    (``-12.5``, ``+3``, ``-inf``) are not formulas.

    Examples
    --------
    >>> is_formula_like("=1+1"), is_formula_like("  @SUM(A1)"), is_formula_like("-12.5"), is_formula_like("K-1")
    (True, True, False, False)
    """
    s = text.lstrip(" \u3000\u00a0")
    if not s or s[0] not in FORMULA_TRIGGERS:
        return False
    return _NUMBER.fullmatch(s.strip()) is None


def neutralise_formula(text: str) -> str:
    r"""``text`` made safe for a spreadsheet cell: an apostrophe before formula-like text.

    Following the OWASP advice on CSV injection, the value stays readable:
    ``=cmd|' /C calc'!A0`` becomes ``'=cmd|' /C calc'!A0``, shown as text.

    Examples
    --------
    >>> neutralise_formula("=HYPERLINK(\"http://x\")"), neutralise_formula("黄山采石场"), neutralise_formula("-3")
    ('\'=HYPERLINK("http://x")', '黄山采石场', '-3')
    """
    return "'" + text if is_formula_like(text) else text


def describe_char(ch: str) -> str:
    r"""``U+0007 (BEL)``-style name of a character, for messages.

    Examples
    --------
    >>> describe_char("\x0b"), describe_char("\u202e")
    ('U+000B (VT)', 'U+202E (RIGHT-TO-LEFT OVERRIDE)')
    """
    o = ord(ch)
    if o < 32:
        name = _C0_NAMES[o]
    elif o == 0x7F:
        name = "DEL"
    elif 0xD800 <= o <= 0xDFFF:
        name = "lone surrogate: undecodable byte"
    else:
        name = unicodedata.name(ch, "control character")
    return f"U+{o:04X} ({name})"


def text_problem(value: str, *, multiline: bool = True, max_chars: int | None = None) -> str | None:
    r"""What makes ``value`` unfit to store, in words, or None when it is fine.

    Parameters
    ----------
    value : str
    multiline : bool
        Allow tab, line feed and carriage return (notes); False for IDs and names.
    max_chars : int, optional
        Longest text allowed.

    Returns
    -------
    str or None
        E.g. ``"holds the control character U+0007 (BEL) at position 5"``.

    Examples
    --------
    >>> text_problem("李工\x07"), text_problem("李工")
    ('holds the control character U+0007 (BEL) at position 3', None)
    """
    m = (_BAD if multiline else _BAD_LINE).search(value)
    if m is not None:
        ch = m.group()
        kind = "direction-override character" if re.match(f"[{_BIDI}]", ch) else "control character"
        return f"holds the {kind} {describe_char(ch)} at position {m.start() + 1}"
    if max_chars is not None and len(value) > max_chars:
        return f"is {len(value):,} characters long (at most {max_chars:,})"
    return None


def _picture(m: re.Match[str]) -> str:
    o = ord(m.group())
    if o < 32:
        return chr(0x2400 + o)  # the Unicode control pictures: ␀ ␇ ␋ ...
    if o == 0x7F:
        return "\u2421"  # ␡
    return "\ufffd"


def repair_text(value: str, *, multiline: bool = True) -> str:
    r"""``value`` with every character :func:`text_problem` refuses made visible and harmless.

    C0 controls and DEL become their Unicode control pictures (``\x07`` →
    ``␇``), anything else refused becomes U+FFFD (�).  For text already stored
    (an old ledger): exports repair it instead of failing.

    Examples
    --------
    >>> repair_text("a\x07b\u202ec")
    'a␇b�c'
    """
    return (_BAD if multiline else _BAD_LINE).sub(_picture, value)


def for_terminal(text: str) -> str:
    r"""``text`` safe to print to a terminal: escape sequences and other controls shown, not executed.

    Line feeds and tabs are kept.

    Examples
    --------
    >>> for_terminal("case \x1b[2Jx")
    'case \\x1b[2Jx'
    """
    def esc(m: re.Match[str]) -> str:
        o = ord(m.group())
        return f"\\x{o:02x}" if o < 0x100 else f"\\u{o:04x}"

    return re.sub(f"[\x00-\x08\x0b-\x1f\x7f-\x9f{_BIDI}\ufeff\ud800-\udfff\ufffe\uffff]", esc, text)


# ---------------------------------------------------------------------------
# File names
# ---------------------------------------------------------------------------
_FILE_UNSAFE = re.compile(r"[^\w\-.]+", re.UNICODE)
_WINDOWS_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(10)), *(f"LPT{i}" for i in range(10))}


def _digest(value: str, n: int = 10) -> str:
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:n]


def _cut_bytes(s: str, max_bytes: int) -> str:
    b = s.encode("utf-8", "surrogatepass")
    if len(b) <= max_bytes:
        return s
    return b[:max_bytes].decode("utf-8", "ignore")


def safe_filename(value: Any, *, max_bytes: int = 80, always_hash: bool = False) -> str:
    """A file-name stem made from an ID or a name: safe everywhere, bounded, and telling.

    Letters (any script), digits, ``-``, ``_`` and ``.`` are kept; runs of other
    characters become ``_``; leading dots and spaces go.  When anything was
    changed or cut (or ``always_hash``), ``-`` and ten hex digits of the
    SHA-256 of the original are appended, so different IDs keep different
    names.  The result is at most ``max_bytes`` bytes of UTF-8 (file systems
    allow 255 bytes per name; the rest is left for suffixes).

    Examples
    --------
    >>> safe_filename("YB-2024-000001")
    'YB-2024-000001'
    >>> safe_filename("K/1"), safe_filename("K:1")
    ('K_1-0d8d2617c9', 'K_1-ff0fe4905d')
    >>> len(safe_filename("矿" * 86).encode())
    80
    """
    raw = "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)
    s = _FILE_UNSAFE.sub("_", repair_text(raw, multiline=False)).strip(" .")
    s = re.sub(r"__+", "_", s) or "_"
    if s.split(".")[0].upper() in _WINDOWS_RESERVED:
        s = "_" + s
    max_bytes = max(int(max_bytes), 16)
    if s == raw and not always_hash and len(s.encode("utf-8", "surrogatepass")) <= max_bytes:
        return s
    tag = "-" + _digest(raw)
    return _cut_bytes(s, max_bytes - len(tag)).rstrip(" .") + tag


def unique_filenames(values: Iterable[Any], *, max_bytes: int = 80) -> dict[Any, str]:
    """File-name stems for several IDs, distinct even on case-insensitive file systems.

    Each value gets :func:`safe_filename`; values whose names would still
    meet (``"K1"`` and ``"k1"`` on Windows or macOS) all get the hash suffix.

    Returns
    -------
    dict
        Value -> stem, in input order.

    Examples
    --------
    >>> unique_filenames(["K1", "k1", "K2"])
    {'K1': 'K1-badb728376', 'k1': 'k1-6ab9f1eb8f', 'K2': 'K2'}
    """
    vals = list(dict.fromkeys(values))
    names: dict[Any, str] = {v: safe_filename(v, max_bytes=max_bytes) for v in vals}
    for _ in range(3):
        seen: dict[str, list[Any]] = {}
        for v, n in names.items():
            seen.setdefault(n.casefold(), []).append(v)
        clash = [v for group in seen.values() if len(group) > 1 for v in group]
        if not clash:
            return names
        for v in clash:
            names[v] = safe_filename(v, max_bytes=max_bytes, always_hash=True)
    # pathological: equal hashes too; number them
    out: dict[Any, str] = {}
    used: set[str] = set()
    for v, n in names.items():
        k, cand = 1, n
        while cand.casefold() in used:
            k += 1
            cand = f"{n}-{k}"
        used.add(cand.casefold())
        out[v] = cand
    return out


def strip_text(value: str, *, multiline: bool = True) -> str:
    r"""``value`` without the characters :func:`text_problem` refuses (for imports that repair).

    Examples
    --------
    >>> strip_text("黄山\x0b自然保护区\u202e")
    '黄山自然保护区'
    """
    return (_BAD if multiline else _BAD_LINE).sub("", value)


class SafeLogFormatter(logging.Formatter):
    """A log formatter whose lines cannot drive a terminal: control characters are shown escaped.

    Names and notes from users' files reach log messages; an escape sequence
    in a reserve name must not clear the screen of whoever reads ``run.log``
    or the cron mail.
    """

    def format(self, record: logging.LogRecord) -> str:
        """The formatted record, through :func:`for_terminal`."""
        return for_terminal(super().format(record))
