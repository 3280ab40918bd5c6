"""CJK font discovery: real glyphs (not placeholder boxes), no global state, clear fallback."""

from __future__ import annotations

import warnings
from pathlib import Path

import matplotlib as mpl
import pytest

import ecopatch.outputs.fonts as fonts
from ecopatch.errors import ConfigError, FontWarning
from ecopatch.outputs.fonts import (
    CJK_SAMPLE,
    INSTALL_HINT,
    check_lang,
    find_cjk_font,
    font_context,
    has_cjk,
    has_glyphs,
)
from tests import mapdata
from tests.mapdata import render

cjk = mapdata.cjk  # fixture: the installed CJK font


@pytest.fixture
def listed_cjk(cjk, monkeypatch):
    """The CJK font as matplotlib's font list knows it by name (for this test only when it does not)."""
    from matplotlib import font_manager as fm

    if cjk.registered:
        yield cjk
        return
    monkeypatch.setattr(fm.fontManager, "ttflist", list(fm.fontManager.ttflist))
    fm.fontManager.addfont(str(cjk.path))
    yield find_cjk_font()
    fm.fontManager._findfont_cached.cache_clear()  # forget lookups made with the test's list

LAST_RESORT = Path(mpl.get_data_path()) / "fonts" / "ttf" / "LastResortHE-Regular.ttf"
DEJAVU = Path(mpl.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"


def test_found_font_has_the_glyphs(cjk):
    assert has_glyphs(cjk.path, CJK_SAMPLE + "亩²°")
    from matplotlib.font_manager import fontManager

    # listed by name, or else used by its file (never added to matplotlib's list by ecopatch)
    assert (cjk.name in {e.name for e in fontManager.ttflist}) == cjk.registered


def test_dejavu_has_no_chinese():
    assert DEJAVU.exists()
    assert has_glyphs(DEJAVU, "Mine 123")
    assert not has_glyphs(DEJAVU, "矿山")


@pytest.mark.skipif(not LAST_RESORT.exists(), reason="this matplotlib ships no Last Resort font")
def test_placeholder_font_is_not_cjk():
    """matplotlib's "Last Resort" font maps every character to a box: it must not count."""
    assert not has_glyphs(LAST_RESORT, CJK_SAMPLE)
    found = find_cjk_font()
    assert found is None or "last resort" not in found.name.lower()


def test_unreadable_file_is_not_a_font(tmp_path):
    p = tmp_path / "x.ttf"
    p.write_bytes(b"not a font")
    assert not has_glyphs(p, "矿")


def test_font_context_leaves_global_settings_alone(listed_cjk):
    before = dict(mpl.rcParams)
    with font_context("zh") as fs:
        assert fs.lang == "zh" and fs.cjk
        assert mpl.rcParams["font.family"][0] == listed_cjk.name
    after = dict(mpl.rcParams)
    assert after == before


def test_text_made_in_context_keeps_its_font(listed_cjk):
    from matplotlib.figure import Figure

    with font_context("zh"):
        fig = Figure()
        t = fig.text(0.5, 0.5, "矿山修复图斑")
    assert t.get_fontfamily()[0] == listed_cjk.name
    render(fig)  # no missing-glyph warning, drawn outside the context


def test_missing_font_warns_and_falls_back(monkeypatch):
    monkeypatch.setattr(fonts, "find_cjk_font", lambda **kw: None)
    with pytest.warns(FontWarning) as rec:
        with font_context("zh") as fs:
            pass
    msg = str(rec[0].message)
    assert fs.lang == "en" and fs.requested == "zh" and not fs.cjk
    for hint in ("apt-get install fonts-noto-cjk", "fonts-wqy-microhei", "brew install --cask font-noto-sans-cjk",
                 "Microsoft YaHei"):
        assert hint in msg
    assert fs.text("余杭区茶山湾采石场", "YH-KS-008") == "YH-KS-008"
    assert fs.text("YH-KS-008") == "YH-KS-008"


def test_missing_font_english_is_silent(monkeypatch):
    monkeypatch.setattr(fonts, "find_cjk_font", lambda **kw: None)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with font_context("en") as fs:
            assert fs.lang == "en"


def test_bold_only_when_the_font_has_it(listed_cjk):
    from matplotlib.font_manager import fontManager, weight_dict

    with font_context("zh") as fs:
        pass
    weights = [e.weight if isinstance(e.weight, int) else weight_dict[e.weight]
               for e in fontManager.ttflist if e.name == listed_cjk.name]
    assert (fs.bold == "bold") == (max(weights) >= 600)


def test_lang_is_checked():
    assert check_lang(" ZH ") == "zh"
    with pytest.raises(ConfigError, match="'zh', 'en'"):
        check_lang("cn")


def test_has_cjk():
    assert has_cjk("亩") and has_cjk("（") and not has_cjk("m² ° →") and not has_cjk(None)


def test_install_hint_names_the_platforms():
    for s in ("apt-get", "brew", "conda", "Windows"):
        assert s in INSTALL_HINT


def test_font_found_by_path_is_used_without_registering_it(cjk, monkeypatch):
    """A CJK font matplotlib's font cache does not list (installed after the cache was built) is used
    through its file: the figure's Chinese text draws with it, and the global font list is left alone."""
    from matplotlib import font_manager as fm
    from matplotlib.figure import Figure

    unlisted = [e for e in fm.fontManager.ttflist if e.fname != str(cjk.path)]
    monkeypatch.setattr(fm.fontManager, "ttflist", unlisted)
    monkeypatch.setattr(fm, "findSystemFonts", lambda *a, **kw: [str(cjk.path)])
    found = find_cjk_font()
    assert found is not None and not found.registered and found.path == cjk.path
    with font_context("zh") as fs:
        assert fs.lang == "zh" and fs.cjk and cjk.name not in fs.family
        fig = Figure()
        t = fig.text(0.5, 0.5, "矿山修复图斑", fontsize=11)
        plain = fig.text(0.1, 0.1, "Mine 1")
    fonts.apply_fonts(fig, fs)
    assert t.get_fontproperties().get_file() == str(cjk.path) and t.get_fontsize() == 11
    assert plain.get_fontproperties().get_file() is None  # Latin text keeps its family
    assert fs.prop(8).get_file() == str(cjk.path)
    render(fig)  # drawn with the file's glyphs: no missing-glyph warning
    assert fm.fontManager.ttflist is unlisted and len(unlisted) == len(fm.fontManager.ttflist)


def test_no_answer_is_kept_between_calls(monkeypatch):
    """The search runs per call (no module-level cache): a font installed in a running session is found."""
    calls = []
    monkeypatch.setattr(fonts, "_search", lambda sample: calls.append(sample) or None)
    assert find_cjk_font() is None and find_cjk_font() is None
    assert len(calls) == 2
    assert not [k for k, v in vars(fonts).items() if not k.startswith("__") and isinstance(v, dict)]
