"""ecopatch.vector.sanitize: formula neutralisation, control characters, safe file names (pure functions)."""

from __future__ import annotations

import doctest

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ecopatch.vector import sanitize
from ecopatch.vector.sanitize import (
    for_terminal,
    is_formula_like,
    neutralise_formula,
    repair_text,
    safe_filename,
    strip_text,
    text_problem,
    unique_filenames,
)


def test_doctests():
    assert doctest.testmod(sanitize).failed == 0


@pytest.mark.parametrize("text", ["=1+1", "+1+1", "-1+1", "@SUM(A1)", "\t=1", "\r=1", "  =1", "=cmd|' /C calc'!A0",
                                  "＝1+1", "＠A1", "-", "+", "=", "+86 138 0000 0000", "-2+3", "-inf+1"])
def test_formula_like_text_is_neutralised(text):
    out = neutralise_formula(text)
    assert out == "'" + text and not is_formula_like(out)


@pytest.mark.parametrize("text", ["黄山采石场", "K-1", "YB-2024-000001", "-12.5", "+3", "-1e5", "-inf", "12%", "",
                                  "a=b", "100 m²"])
def test_ordinary_text_and_numbers_are_left_alone(text):
    assert neutralise_formula(text) == text


@given(st.text())
def test_neutralised_text_is_never_formula_like_and_keeps_the_text(text):
    out = neutralise_formula(text)
    assert not is_formula_like(out)
    assert out.endswith(text) and len(out) - len(text) in (0, 1)


@pytest.mark.parametrize("ch", ["\x00", "\x07", "\x0b", "\x0c", "\x1b", "\x7f", "\x85", "\u202e", "\u2066", "\ufeff",
                                "\ud800", "\uffff"])
def test_control_and_override_characters_are_named(ch):
    problem = text_problem(f"ab{ch}c")
    assert problem is not None and f"U+{ord(ch):04X}" in problem and "position 3" in problem


def test_line_breaks_are_allowed_in_notes_but_not_in_names():
    assert text_problem("第一行\n第二行\t完") is None
    assert "U+000A" in text_problem("李\n工", multiline=False)


def test_length_limit():
    assert "30,001 characters" in text_problem("x" * 30_001, max_chars=30_000)
    assert text_problem("x" * 30_000, max_chars=30_000) is None


@given(st.text())
def test_repaired_and_stripped_text_has_no_problem(text):
    assert text_problem(repair_text(text)) is None
    assert text_problem(strip_text(text)) is None
    assert text_problem(repair_text(text, multiline=False), multiline=False) is None
    repair_text(text).encode("utf-8")  # no lone surrogate left


def test_repair_shows_what_was_there():
    assert repair_text("a\x07b\x00c\x7fd\u202ee") == "a␇b␀c␡d\ufffde"


def test_terminal_text_cannot_drive_the_terminal():
    s = for_terminal("保护地\x1b]0;owned\x07\x1b[2J\u202e名\n下一行")
    assert "\x1b" not in s and "\x07" not in s and "\u202e" not in s
    assert "\\x1b" in s and "\n下一行" in s


# ---------------------------------------------------------------------------
# File names
# ---------------------------------------------------------------------------
def test_ledger_ids_stay_as_they_are():
    assert safe_filename("YB-2024-000001") == "YB-2024-000001"
    assert safe_filename("YH-KS-006") == "YH-KS-006"
    assert safe_filename("矿山_01") == "矿山_01"


def test_ids_that_differ_only_in_unsafe_characters_get_different_names():
    names = unique_filenames(["K/1", "K:1", "K\\1", "K 1", "K_1", "K*1", "K?1"])
    assert len(set(names.values())) == 7
    assert all("/" not in n and ":" not in n and "\\" not in n for n in names.values())


def test_names_differing_only_in_case_are_distinct_on_case_insensitive_file_systems():
    names = unique_filenames(["K1", "k1", "K2"])
    assert len({n.casefold() for n in names.values()}) == 3 and names["K2"] == "K2"


def test_long_chinese_ids_are_bounded_and_distinct():
    a, b = "矿" * 85 + "甲", "矿" * 85 + "乙"
    na, nb = safe_filename(a), safe_filename(b)
    assert len(na.encode()) <= 80 and len(nb.encode()) <= 80 and na != nb


@pytest.mark.parametrize("value", ["", ".", "..", "...hidden", "CON", "nul.txt", "a\x00b", "\u202egpj.exe", None,
                                   float("nan"), " ", "a" * 300])
def test_odd_names_become_ordinary_file_names(value):
    n = safe_filename(value)
    assert n and not n.startswith(".") and "/" not in n and "\x00" not in n
    assert n.split(".")[0].upper() not in {"CON", "NUL"} and len(n.encode()) <= 80
    assert text_problem(n, multiline=False) is None


@settings(max_examples=200)
@given(st.lists(st.text(min_size=0, max_size=120), min_size=1, max_size=30, unique=True),
       st.integers(min_value=16, max_value=120))
def test_unique_filenames_property(values, max_bytes):
    names = unique_filenames(values, max_bytes=max_bytes)
    assert list(names) == values
    folded = [n.casefold() for n in names.values()]
    assert len(set(folded)) == len(folded)
    for n in names.values():
        assert 0 < len(n.encode()) <= max_bytes + 4  # "-k" numbering only in the pathological case
        assert "/" not in n and "\\" not in n and not n.startswith(".")
        assert text_problem(n, multiline=False) is None
