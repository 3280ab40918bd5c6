"""Sample inputs and figure-sanity helpers shared by the map, font and report tests.

The golden scene comes from ``ecopatch.data.datasets`` (the committed ``sample_data/``
when present, else written once per session); assessment and detection run
once per session on it.
"""

from __future__ import annotations

import datetime as dt
import io
import logging
import warnings
from dataclasses import dataclass
from typing import Any

import pytest

from ecopatch.outputs.fonts import find_cjk_font, has_cjk

#: Reference date of the test ledger's colour codes.
TODAY = dt.date(2024, 11, 1)


@dataclass(frozen=True)
class Inputs:
    before: Any
    after: Any
    drone: Any
    mines: Any
    reserves: Any
    assessment: Any
    patches: Any


# Test modules import these fixtures, so pytest sees one definition per module; the cache
# makes the sample and the analyses run once per session all the same.
_CACHE: dict[str, Any] = {}


@pytest.fixture(scope="session")
def sample(tmp_path_factory):
    from ecopatch.data.datasets import load_sample_data, make_sample_data
    from ecopatch.errors import InputDataError

    if "sample" not in _CACHE:
        try:
            _CACHE["sample"] = load_sample_data()
        except InputDataError:
            _CACHE["sample"] = make_sample_data(tmp_path_factory.mktemp("sample"), size="small", drone=True)
    return _CACHE["sample"]


@pytest.fixture(scope="session")
def inputs(sample) -> Inputs:
    if "inputs" not in _CACHE:
        _CACHE["inputs"] = _analyse(sample)
    return _CACHE["inputs"]


def _analyse(sample) -> Inputs:
    import ecopatch
    from ecopatch.data.datasets import SAMPLE_MIN_AREA_M2

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # repaired geometry, low coverage: not what these tests check
        before = ecopatch.open_scene(sample.products["before"])
        after = ecopatch.open_scene(sample.products["after"])
        drone = ecopatch.open_scene(sample.drone) if sample.drone is not None else None
        mines = ecopatch.read_patches(sample.mines, id_field="矿山编号")
        reserves = ecopatch.read_patches(sample.reserves)
        assessment = ecopatch.assess_restoration(before, after, mines)
        # the golden scene's encroachments run from 400 m² in every zone: the unit it was made
        # for (and its ecopatch.toml's); the defaults (1000 m² on 10 m imagery, 400 m² in core
        # zones) are tested in tests/analyses/test_encroachment.py
        patches = ecopatch.detect_changes(before, after, reserves=reserves, min_area_m2=SAMPLE_MIN_AREA_M2)
    return Inputs(before, after, drone, mines, reserves, assessment, patches)


@pytest.fixture(scope="session")
def ledger(inputs, tmp_path_factory):
    """A ledger with the sample's patches: one confirmed (overdue: red), one false alarm, the rest new."""
    import ecopatch

    led = ecopatch.Ledger(tmp_path_factory.mktemp("ledger") / "ledger.gpkg")
    led.add_detections(inputs.patches, run_id="2024-09", today=dt.date(2024, 9, 20))
    ids = list(led.cases(today=dt.date(2024, 9, 20))["case_id"])
    led.advance(ids[0], "dispatch", today=dt.date(2024, 9, 21))
    led.advance(ids[0], "confirm", today=dt.date(2024, 9, 25), deadline="2024-10-10", responsible_unit="云溪镇")
    led.advance(ids[1], "dispatch", today=dt.date(2024, 9, 21))
    led.advance(ids[1], "dismiss", today=dt.date(2024, 9, 25))
    return led


@pytest.fixture(scope="session")
def cjk():
    """The installed CJK font; tests of Chinese rendering skip cleanly without one."""
    font = find_cjk_font()
    if font is None:
        pytest.skip("no CJK-capable font installed (apt-get install fonts-wqy-microhei or fonts-noto-cjk)")
    return font


def render(fig) -> bytes:
    """Draw ``fig`` to PNG, with missing-glyph warnings and matplotlib font-fallback logs as errors."""
    records: list[logging.LogRecord] = []

    class _Catch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = _Catch(level=logging.WARNING)
    fm_log = logging.getLogger("matplotlib.font_manager")
    fm_log.addHandler(handler)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("error", message=r".*[Gg]lyph.*missing")
            warnings.filterwarnings("error", message=r".*missing from (current )?font")
            buf = io.BytesIO()
            fig.savefig(buf, format="png", dpi=60)
    finally:
        fm_log.removeHandler(handler)
    assert not records, [r.getMessage() for r in records]
    data = buf.getvalue()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return data


def texts(fig) -> list[Any]:
    """Every non-empty text artist of a figure (titles, labels, legends, tables, ticks)."""
    from ecopatch.outputs.fonts import all_texts

    return [t for t in all_texts(fig) if t.get_text().strip() and t.get_visible()]


def all_text(fig) -> str:
    return "\n".join(t.get_text() for t in texts(fig))


def assert_cjk_font(fig, font) -> int:
    """Every text with Chinese characters resolves to ``font``; returns how many there are."""
    from matplotlib.font_manager import findfont

    n = 0
    for t in texts(fig):
        if has_cjk(t.get_text()):
            n += 1
            if font.registered:  # named in the family list; else the text names the font's file
                assert t.get_fontfamily()[0] == font.name, (t.get_text(), t.get_fontfamily())
            assert findfont(t.get_fontproperties()) == str(font.path), t.get_text()
    return n


def by_gid(fig, gid: str) -> list[Any]:
    return [a for a in fig.findobj(lambda a: a.get_gid() == gid)]


def legend_labels(fig) -> list[str]:
    out = []
    for leg in [*fig.legends, *(ax.get_legend() for ax in fig.axes)]:
        if leg is not None:
            out += [t.get_text() for t in leg.get_texts()]
    return out
