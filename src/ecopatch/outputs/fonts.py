"""Fonts for Chinese map labels: find an installed CJK font, use it for ecopatch figures only.

Bureaus read maps and cards labelled in Chinese (前时相, 疑似图斑, 修复率 ...).
Matplotlib's default font (DejaVu Sans) has no Chinese glyphs and draws
empty boxes in their place, so every ecopatch figure looks for an installed
font that really has the glyphs (checked in the font's character map, not
guessed from its name) and uses it through an :func:`font_context` around
the figure's construction.  Nothing changes matplotlib's global ``rcParams``
or its font list: a font matplotlib's cache does not list is used through its
file, not registered.  Only whether a font file covers the sample is remembered.

When no such font is installed and Chinese labels were asked for, a
:class:`~ecopatch.errors.FontWarning` says how to install one
(:data:`INSTALL_HINT`) and the figure falls back to English labels, so no
figure is ever drawn with boxes in place of characters.

Examples
--------
>>> from ecopatch.outputs.fonts import font_context
>>> with font_context("en") as fs:
...     fs.lang
'en'
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ecopatch.errors import ConfigError, FontWarning

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from matplotlib.font_manager import FontProperties

__all__ = [
    "CJK_FAMILIES",
    "CJK_SAMPLE",
    "INSTALL_HINT",
    "LANGS",
    "CJKFont",
    "FontSetup",
    "all_texts",
    "apply_fonts",
    "check_lang",
    "find_cjk_font",
    "font_context",
    "has_cjk",
    "has_glyphs",
]

log = logging.getLogger(__name__)

#: Label languages of ecopatch figures and reports.
LANGS: tuple[str, ...] = ("zh", "en")

#: Characters a font must have to count as able to draw ecopatch's Chinese labels.
CJK_SAMPLE = "矿山修复图斑疑似变化前后时相核查亩红黄绿码已销号"

#: Preferred CJK font families, best first (simplified-Chinese faces before others).
CJK_FAMILIES: tuple[str, ...] = (
    "Noto Sans CJK SC",
    "Noto Sans SC",
    "Source Han Sans SC",
    "Source Han Sans CN",
    "Noto Sans CJK JP",
    "Noto Sans CJK TC",
    "WenQuanYi Micro Hei",
    "WenQuanYi Zen Hei",
    "Microsoft YaHei",
    "SimHei",
    "PingFang SC",
    "Hiragino Sans GB",
    "Heiti SC",
    "STHeiti",
    "Sarasa Gothic SC",
    "Droid Sans Fallback",
    "Noto Serif CJK SC",
    "Source Han Serif SC",
    "AR PL UMing CN",
    "AR PL UKai CN",
    "SimSun",
)

#: How to install a CJK font, per platform (quoted in the FontWarning).
INSTALL_HINT = (
    "install a CJK font: Debian/Ubuntu `sudo apt-get install fonts-noto-cjk` (or the smaller "
    "`fonts-wqy-microhei`); Fedora `sudo dnf install google-noto-sans-cjk-fonts`; conda "
    "`conda install -c conda-forge font-ttf-noto-cjk`; macOS `brew install --cask "
    "font-noto-sans-cjk` (or use the system's PingFang SC); Windows ships Microsoft YaHei "
    "(微软雅黑) and SimHei. Then restart Python; no matplotlib cache needs deleting"
)

#: Latin fallback used after the CJK font (symbols some CJK fonts lack).
_LATIN = "DejaVu Sans"


@dataclass(frozen=True)
class CJKFont:
    """An installed font that can draw ecopatch's Chinese labels.

    Attributes
    ----------
    name : str
        Family name as matplotlib knows it (e.g. ``"Noto Sans CJK SC"``).
    path : Path
        The font file (``.ttf``, ``.otf`` or ``.ttc``).
    registered : bool
        True when matplotlib's font list knows the font by ``name``; False
        for a font installed after matplotlib's cache was built, which
        figures then use by ``path``.
    """

    name: str
    path: Path
    registered: bool = True


def has_cjk(text: object) -> bool:
    """True if ``text`` contains CJK ideographs or full-width punctuation.

    Examples
    --------
    >>> has_cjk("矿山 A-1"), has_cjk("Mine A-1"), has_cjk(None)
    (True, False, False)
    """
    if text is None:
        return False
    return any(ord(ch) >= 0x2E80 for ch in str(text))


def _charmap(path: str, index: int = 0) -> Mapping[int, int]:
    from matplotlib.ft2font import FT2Font

    try:
        font = FT2Font(path, face_index=index)
    except TypeError:  # matplotlib < 3.10 has no face_index; face 0
        font = FT2Font(path)
    return font.get_charmap()


def has_glyphs(path: str | Path, text: str = CJK_SAMPLE, *, index: int = 0) -> bool:
    """True if the font file has a glyph for every non-space character of ``text``.

    Parameters
    ----------
    path : str or Path
        A font file FreeType can read (``.ttf``, ``.otf``, ``.ttc``).
    text : str
        Characters to look up in the font's character map.
    index : int
        Face index within a font collection (``.ttc``).

    Returns
    -------
    bool
        False also when the file cannot be read as a font, or when it maps
        distinct characters to one glyph (placeholder fonts such as
        matplotlib's bundled "Last Resort", which draws boxes).
    """
    try:
        st = Path(path).stat()
    except OSError:
        return False
    return _covers(str(path), index, st.st_mtime_ns, st.st_size, "".join(sorted(set(text))))


@lru_cache(maxsize=1024)
def _covers(path: str, index: int, mtime_ns: int, size: int, text: str) -> bool:
    """:func:`has_glyphs` of one version of a font file (its size and time are in the key).

    A fact about the file, remembered so that each figure does not read every
    installed font's character map again (63 fonts per search here, 0.11 s a
    search under the profiler).  Nothing outside ecopatch sees it.
    """
    try:
        cmap = _charmap(path, index)
    except (OSError, RuntimeError, ValueError):
        return False
    chars = {ord(ch) for ch in text if not ch.isspace()}
    if not all(c in cmap for c in chars):
        return False
    # placeholder fonts ("Last Resort") map a whole Unicode block to one box glyph
    return len({cmap[c] for c in chars}) == len(chars)


def find_cjk_font(*, sample: str = CJK_SAMPLE) -> CJKFont | None:
    """Find an installed font with glyphs for every character of ``sample``.

    Looks, in order, for the families of :data:`CJK_FAMILIES` among the fonts
    matplotlib knows, then for any other font it knows whose character map
    covers ``sample``, then for system font files that matplotlib's font
    cache does not list yet (a font installed after the cache was built).
    Such a file is not registered with matplotlib's font manager: figures
    use it through its path (:meth:`FontSetup.prop`, :func:`apply_fonts`),
    so matplotlib's global font list stays as it was.  The search runs at
    every call (a font installed meanwhile is found); whether a given
    version of a font file covers ``sample`` is remembered.

    Parameters
    ----------
    sample : str
        Characters the font must have.

    Returns
    -------
    CJKFont or None
        None when no installed font has the glyphs.
    """
    found = _search(sample)
    if found is None:
        log.debug("no CJK-capable font found (checked %d preferred families)", len(CJK_FAMILIES))
    else:
        log.debug("CJK font: %s (%s)", found.name, found.path)
    return found


def _search(sample: str) -> CJKFont | None:
    from matplotlib import font_manager as fm

    entries = list(fm.fontManager.ttflist)
    rank = {name.lower(): i for i, name in enumerate(CJK_FAMILIES)}
    preferred = sorted((e for e in entries if e.name.lower() in rank), key=lambda e: rank[e.name.lower()])
    others = sorted((e for e in entries if e.name.lower() not in rank), key=lambda e: e.name)
    checked: set[tuple[str, int]] = set()
    for e in [*preferred, *others]:
        key = (e.fname, getattr(e, "index", 0))
        if key in checked:
            continue
        checked.add(key)
        if has_glyphs(e.fname, sample, index=key[1]):
            return CJKFont(e.name, Path(e.fname))
    # fonts installed after matplotlib built its cache: used by path, not registered
    known = {e.fname for e in entries}
    for path in sorted(fm.findSystemFonts()):
        if path in known or not has_glyphs(path, sample):
            continue
        try:
            name = fm.FontProperties(fname=path).get_name()
        except (OSError, RuntimeError, ValueError) as exc:  # pragma: no cover - broken font file
            log.debug("cannot read font %s: %s", path, exc)
            continue
        log.info("CJK font %s (%s) was installed after matplotlib's font cache was built; used by its path",
                 name, path)
        return CJKFont(name, Path(path), registered=False)
    return None


def check_lang(lang: str) -> str:
    """Validate a label language (``"zh"`` or ``"en"``).

    Raises
    ------
    ConfigError
        Naming the valid values.
    """
    key = str(lang).strip().lower()
    if key not in LANGS:
        raise ConfigError(f"lang={lang!r}; use one of {list(LANGS)}")
    return key


@dataclass(frozen=True)
class FontSetup:
    """The fonts and label language in force for one figure.

    Attributes
    ----------
    lang : str
        Language the labels are drawn in: ``"zh"`` only if a CJK font was found.
    requested : str
        Language asked for.
    font : CJKFont or None
        The CJK font used (also for Chinese data values in English figures).
    family : tuple of str
        Font family list for text (CJK font first, then DejaVu Sans for
        symbols it may lack).
    bold : str
        Font weight for emphasis: "bold" when the font has a bold face,
        else "normal" (matplotlib would log a warning and draw it normal).
    """

    lang: str
    requested: str
    font: CJKFont | None
    family: tuple[str, ...]
    bold: str = "bold"

    @property
    def cjk(self) -> bool:
        """True if Chinese characters can be drawn."""
        return self.font is not None

    def can_draw(self, text: object) -> bool:
        """True if ``text`` can be drawn without missing glyphs."""
        return self.cjk or not has_cjk(text)

    def text(self, value: object, fallback: object = "") -> str:
        r"""``value`` as a string if it can be drawn, else ``fallback``; safe to draw either way.

        Text from users' files is drawn as it is written: control characters
        are shown as control pictures and ``$`` is escaped, so that a name
        such as ``$\foo$`` is not parsed as mathtext (which fails the figure).
        """
        from ecopatch.vector.sanitize import repair_text

        s = "" if value is None else repair_text(str(value))
        out = s if self.can_draw(s) else str(fallback)
        return out.replace("$", r"\$")

    def prop(self, size: float | str | None = None, weight: str | None = None) -> FontProperties:
        """Font properties for a text artist (family list, optional size and weight).

        For a CJK font matplotlib does not list by name (see
        :attr:`CJKFont.registered`), the properties name its file.
        """
        from matplotlib.font_manager import FontProperties

        if self.font is not None and not self.font.registered:
            return FontProperties(fname=str(self.font.path), size=size, weight=weight)
        return FontProperties(family=list(self.family), size=size, weight=weight)

    def rc(self) -> dict[str, Any]:
        """Settings (``rcParams``) for an ``rc_context`` around figure construction."""
        return {"font.family": list(self.family)}


def _setup(lang: str, *, warn: bool, stacklevel: int) -> FontSetup:
    want = check_lang(lang)
    font = find_cjk_font()
    eff = want
    if font is None and want == "zh":
        if warn:
            warnings.warn(
                "no installed font can draw Chinese labels; drawing English labels instead "
                f"(lang='en'). To get Chinese labels, {INSTALL_HINT}",
                FontWarning,
                stacklevel=stacklevel,
            )
        eff = "en"
    if font is not None and font.registered:
        return FontSetup(eff, want, font, (font.name, _LATIN), "bold" if _has_bold(font.name) else "normal")
    return FontSetup(eff, want, font, (_LATIN,), "bold" if _has_bold(_LATIN) else "normal")


def _has_bold(name: str) -> bool:
    from matplotlib import font_manager as fm

    for e in fm.fontManager.ttflist:
        if e.name != name:
            continue
        w = e.weight if isinstance(e.weight, (int, float)) else fm.weight_dict.get(str(e.weight), 400)
        if w >= 600:
            return True
    return False


@contextlib.contextmanager
def font_context(lang: str = "zh", *, warn: bool = True, stacklevel: int = 4) -> Iterator[FontSetup]:
    """Fonts for figures built inside the block, without touching global settings.

    Inside the block, matplotlib's ``font.family`` is the CJK font (if any)
    followed by DejaVu Sans, through :func:`matplotlib.rc_context`; text
    artists keep the family they were created with, so figures built inside
    render correctly anywhere later (``savefig``, Jupyter).

    Parameters
    ----------
    lang : {"zh", "en"}
        Label language asked for.
    warn : bool
        Issue a :class:`~ecopatch.errors.FontWarning` when ``lang="zh"`` and
        no CJK font is installed (labels then fall back to English).
    stacklevel : int
        Passed to :func:`warnings.warn` so the warning points at user code.

    Yields
    ------
    FontSetup
        The language actually used and the fonts.

    Raises
    ------
    ConfigError
        If ``lang`` is not ``"zh"`` or ``"en"``.
    """
    import matplotlib as mpl

    setup = _setup(lang, warn=warn, stacklevel=stacklevel)
    with mpl.rc_context(setup.rc()):  # type: ignore[arg-type]  # a valid rc key, typed as str
        yield setup


def apply_fonts(fig: Figure, setup: FontSetup, texts: Iterable[Any] | None = None) -> None:
    """Give every text artist of ``fig`` that holds CJK characters the setup's font family.

    A safety net after construction: text created outside :func:`font_context`
    (by a user adding to the figure, say) still gets a font with the glyphs.
    """
    if not setup.cjk:
        return
    if texts is None:
        texts = all_texts(fig)
    by_path = setup.font is not None and not setup.font.registered
    for t in texts:
        if has_cjk(t.get_text()):
            if by_path:
                t.set_fontproperties(setup.prop(t.get_fontsize(), t.get_fontweight()))
            else:
                t.set_fontfamily(list(setup.family))


def all_texts(fig: Figure) -> list[Any]:
    """Every text artist of a figure, table cells included (``findobj`` does not reach those).

    The axes of an axes drawn without axes (``axis("off")``: image panels,
    tables) are not walked: asking an axis for its children makes it build
    tick artists that are never drawn (a third of a mine card's build time).
    """
    from matplotlib.axes import Axes
    from matplotlib.axis import Axis
    from matplotlib.text import Text

    out: list[Any] = []
    stack: list[Any] = [fig]
    while stack:
        a = stack.pop()
        if isinstance(a, Text):
            out.append(a)
        kids = a.get_children()
        if isinstance(a, Axes) and not a.axison:
            kids = [k for k in kids if not isinstance(k, Axis)]
        stack.extend(reversed(kids))
    for ax in fig.axes:
        for tab in getattr(ax, "tables", ()):
            out += [cell.get_text() for cell in tab.get_celld().values()]
    return out
