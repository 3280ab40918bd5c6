"""Maps from the sample data: panels, legends, outlines, furniture, fonts, decimated reads."""

from __future__ import annotations

import logging
import math
import os
import time
import warnings

import numpy as np
import pytest

from ecopatch.errors import ConfigError, FontWarning, InputDataError
from ecopatch.fieldcheck import export_package
from ecopatch.outputs.fonts import has_cjk
from ecopatch.outputs.maps import (
    MapFigure,
    MapFrame,
    case_chips,
    change_map,
    mine_card,
    overview_map,
    robust_stretch,
    stretch_limits,
    true_north_angle,
)
from ecopatch.outputs.maps._overview import GID_CASES, GID_MINES, GID_RESERVES
from ecopatch.outputs.maps.furniture import _nice_length
from ecopatch.outputs.maps.style import GID_IMAGE, GID_NODATA, GID_NORTH, GID_OUTLINES, GID_SCALEBAR
from ecopatch.vocabulary import CHANGE_TYPE_ZH
from tests import mapdata
from tests.mapdata import TODAY, all_text, assert_cjk_font, by_gid, legend_labels, render, texts

# shared session fixtures (the golden sample, its assessment and detection, a ledger, the CJK font)
sample, inputs, ledger, cjk = mapdata.sample, mapdata.inputs, mapdata.ledger, mapdata.cjk

MAX_PX = 60_000


def _map_axes(fig):
    return [ax for ax in fig.axes if any(a.get_gid() == GID_IMAGE for a in ax.get_images())]


def _outline_counts(ax):
    return [len(c.get_paths()) for c in ax.collections if c.get_gid() == GID_OUTLINES]


# ----------------------------------------------------------------------------- change map
@pytest.fixture(scope="module")
def change_fig(inputs, cjk):
    return change_map(inputs.before, inputs.after, inputs.patches, max_pixels=MAX_PX)


def test_change_map_panels_and_outlines(change_fig, inputs):
    fig = change_fig
    assert isinstance(fig, MapFigure)
    maps = _map_axes(fig)
    assert len(maps) == 3  # before, after, difference
    assert len(fig.axes) == 5  # + the colour bar and the footer (legend, CRS)
    for ax in maps:
        assert _outline_counts(ax) == [len(inputs.patches)]
        assert [a.get_gid() for a in ax.artists].count(GID_SCALEBAR) == 1
        assert [a.get_gid() for a in ax.artists].count(GID_NORTH) == 1
        assert any(p.get_gid() == GID_NODATA for p in ax.patches)
    titles = [ax.get_title() for ax in maps]
    assert "2021-09-18" in titles[0] and "前时相" in titles[0]
    assert "2024-09-12" in titles[1] and "后时相" in titles[1]
    assert "NDVI" in titles[2]
    assert "ΔNDVI" in [ax.get_ylabel() for ax in fig.axes]


def test_change_map_legend_and_crs(change_fig, inputs):
    labels = legend_labels(change_fig)
    for t, n in inputs.patches["change_type"].value_counts().items():
        assert f"{CHANGE_TYPE_ZH[t]} ({n})" in labels
    assert "云 / 无数据" in labels
    text = all_text(change_fig)
    assert "EPSG:32650" in text and "米" in text
    assert "东坐标 X（米）" in text


def test_change_map_fonts_and_glyphs(change_fig, cjk):
    assert assert_cjk_font(change_fig, cjk) >= 10
    png = render(change_fig)
    assert len(png) > 10_000


def test_change_map_cloud_is_transparent(change_fig, sample):
    """The after date has a cloud over the patches' area: transparent pixels, hatched below."""
    after_ax = _map_axes(change_fig)[1]
    rgba = after_ax.get_images()[0].get_array()
    alpha = np.asarray(rgba)[..., 3]
    assert 0.01 < (alpha == 0).mean() < 0.9
    before_ax = _map_axes(change_fig)[0]
    assert np.asarray(before_ax.get_images()[0].get_array())[..., 3].mean() > 0.9


def test_change_map_reads_decimated_only(inputs, cjk, monkeypatch):
    """Large rasters are never read whole: Scene.read is not used, and the display is bounded."""
    from ecopatch.raster.scene import Scene

    def boom(*a, **k):
        raise AssertionError("Scene.read called by a map")

    monkeypatch.setattr(Scene, "read", boom)
    fig = change_map(inputs.before, inputs.after, None, max_pixels=20_000, index=None)
    maps = _map_axes(fig)
    assert len(maps) == 2
    for ax in maps:
        arr = np.asarray(ax.get_images()[0].get_array())
        assert arr.shape[0] * arr.shape[1] <= 20_000 * 1.05
    assert len(fig.axes) == 3  # no difference panel, no colour bar; the footer


def test_change_map_english_false_colour(inputs):
    fig = change_map(inputs.before, inputs.after, inputs.patches, lang="en", composite="false",
                     max_pixels=MAX_PX, label_field="zone")
    text = all_text(fig)
    assert "false colour (NIR-R-G)" in text
    assert "Easting X (m)" in text and "coordinates in m" in text
    labels = legend_labels(fig)
    assert "Cloud / no data" in labels
    assert any(lab.startswith("New construction") for lab in labels)
    assert not any(has_cjk(t.get_text()) for t in texts(fig))
    render(fig)


def test_change_map_geographic_crs(inputs, cjk):
    fig = change_map(inputs.before, inputs.after, inputs.patches, crs="EPSG:4490", max_pixels=MAX_PX, index=None)
    ax = _map_axes(fig)[0]
    assert ax.get_xlabel() == "经度（°）"
    assert ax.get_ylabel() == "纬度（°）"
    assert "°E" in ax.xaxis.get_major_formatter()(119.95, 0)
    assert ax.get_aspect() == pytest.approx(1 / math.cos(math.radians(30.22)), rel=1e-2)
    assert "EPSG:4490" in all_text(fig) and "度" in all_text(fig)
    render(fig)


def test_change_map_drone_after(inputs, cjk):
    if inputs.drone is None:
        pytest.skip("sample has no drone mosaic")
    mine = inputs.assessment[inputs.assessment["patch_id"] == "YH-KS-006"]
    fig = change_map(inputs.before, inputs.drone, mine, max_pixels=MAX_PX)
    maps = _map_axes(fig)
    assert "EXG" in maps[2].get_title()  # NDVI impossible with RGB: ExG chosen
    assert "原始色彩" in maps[1].get_title()  # drone shown as delivered
    alpha = np.asarray(maps[1].get_images()[0].get_array())[..., 3]
    assert (alpha == 0).any() and (alpha == 1).any()  # black collar shown as no data
    assert "修复中 (1)" in legend_labels(fig)  # coloured by the mine's status
    render(fig)


def test_change_map_options_validated(inputs):
    with pytest.raises(ConfigError, match="composite"):
        change_map(inputs.before, inputs.after, composite="infrared")
    with pytest.raises(ConfigError, match="ndvi"):
        change_map(inputs.before, inputs.after, index="nope")
    with pytest.raises(InputDataError, match="status"):
        change_map(inputs.before, inputs.after, inputs.patches, color_by="status")
    with pytest.raises(ConfigError, match="lang"):
        change_map(inputs.before, inputs.after, lang="fr")


def test_change_map_into_given_axes(inputs):
    from matplotlib.figure import Figure

    fig = Figure()
    axes = fig.subplots(1, 2)
    out = change_map(inputs.before, inputs.after, inputs.patches, axes=axes, index=None, lang="en",
                     max_pixels=20_000)
    assert out is fig
    assert _outline_counts(axes[0]) == [len(inputs.patches)]


# ----------------------------------------------------------------------------- mine card
def test_mine_card(inputs, cjk):
    row = inputs.assessment.set_index("patch_id").loc["YH-KS-006"]
    fig = mine_card("YH-KS-006", inputs.assessment, inputs.before, inputs.after, max_pixels=MAX_PX)
    maps = _map_axes(fig)
    assert len(maps) == 3  # before, after, FVC
    assert "植被覆盖度" in maps[2].get_title()
    for ax in maps:
        assert _outline_counts(ax) == [1]
    text = all_text(fig)
    assert "一矿一卡" in text and "YH-KS-006" in text and str(row["矿山名称"]) in text
    for label in ("受损面积（前时相）", "已修复面积", "修复率", "修复方向", "修复状态"):
        assert label in text
    assert f"{row['restoration_rate']:.1%}" in text
    assert f"{row['damaged_m2']:,.0f} m²" in text
    assert row["status_zh"] in text
    fvc = np.ma.masked_invalid(np.asarray(maps[2].get_images()[0].get_array()))
    assert 0 <= fvc.min() and fvc.max() <= 1
    assert assert_cjk_font(fig, cjk) >= 20
    render(fig)


def test_mine_card_row_english_drone(inputs, cjk):
    if inputs.drone is None:
        pytest.skip("sample has no drone mosaic")
    row = inputs.assessment[inputs.assessment["patch_id"] == "YH-KS-006"].iloc[0]
    fig = mine_card(row, inputs.assessment, inputs.before, inputs.drone, lang="en", max_pixels=MAX_PX)
    text = all_text(fig)
    assert "Mine card" in text and "Restoration rate" in text and "drone orthomosaic" in text
    render(fig)


def test_mine_card_unknown_mine(inputs):
    with pytest.raises(InputDataError, match="YH-KS-001"):
        mine_card("NOPE", inputs.assessment, inputs.before, inputs.after)


# ----------------------------------------------------------------------------- overview
def test_overview_map_with_ledger(inputs, ledger, cjk):
    cases = ledger.cases(today=TODAY)
    fig = overview_map(inputs.assessment, inputs.reserves, cases)
    ax = fig.axes[0]
    (sc,) = by_gid(fig, GID_CASES)
    assert len(sc.get_offsets()) == len(cases)  # cases as points
    (mines,) = by_gid(fig, GID_MINES)
    assert len(mines.get_paths()) == len(inputs.assessment)
    assert len([c for c in by_gid(fig, GID_RESERVES) if hasattr(c, "get_paths")]) == 2
    labels = legend_labels(fig)
    for head in ("自然保护地（功能分区）", "矿山（修复状态）", "案件（红黄绿码）"):
        assert head in labels
    n = cases["colour"].value_counts()
    for key, zh in (("red", "红码"), ("yellow", "黄码"), ("green", "绿码")):
        if n.get(key, 0):
            assert f"{zh} ({n[key]})" in labels
    for status, k in inputs.assessment["status_zh"].value_counts().items():
        assert f"{status} ({k})" in labels
    assert [a.get_gid() for a in ax.artists].count(GID_SCALEBAR) == 1
    assert [a.get_gid() for a in ax.artists].count(GID_NORTH) == 1
    assert "矿山 8 座" in fig._suptitle.get_text()
    assert assert_cjk_font(fig, cjk) > 10
    render(fig)


def test_overview_map_background_outlines_english(inputs):
    fig = overview_map(inputs.mines, inputs.reserves, inputs.patches, lang="en", background=inputs.after,
                       cases_as="outlines", max_pixels=MAX_PX)
    (cases,) = by_gid(fig, GID_CASES)
    assert len(cases.get_paths()) == len(inputs.patches)
    assert len(fig.axes[0].get_images()) == 1
    labels = legend_labels(fig)
    assert "Cloud / no data" in labels and "Mines" in labels and "Mine boundary (8)" in labels
    render(fig)


def test_overview_map_needs_something():
    with pytest.raises(InputDataError, match="needs"):
        overview_map()
    with pytest.raises(ConfigError, match="cases_as"):
        overview_map(cases_as="dots")


# ----------------------------------------------------------------------------- chips
def test_case_chips_in_field_package(inputs, ledger, tmp_path, cjk):
    chips = case_chips(inputs.before, inputs.after, size_m=300, max_pixels=20_000, dpi=80)
    cases = ledger.cases(today=TODAY)
    pkg = export_package(ledger, tmp_path / "field", cases=cases["case_id"][:2], chips=chips, today=TODAY)
    assert len(pkg.chips) == 2
    for before_png, after_png in pkg.chips.values():
        for p in (before_png, after_png):
            assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    fb, fa = chips.figures(cases.iloc[0])
    for fig, word in ((fb, "前时相"), (fa, "后时相")):
        (ax,) = _map_axes(fig)
        assert _outline_counts(ax) == [1]
        assert cases.iloc[0]["case_id"] in ax.get_title() and word in ax.get_title()
        assert "图斑边界" in legend_labels(fig)
        render(fig)


def test_chips_drawn_ahead_in_worker_processes_equal_the_figures(inputs, ledger, tmp_path):
    import io

    from PIL import Image

    from ecopatch.outputs.maps import DrawnChips

    chips = case_chips(inputs.before, inputs.after, size_m=300, max_pixels=20_000, dpi=60, lang="en")
    cases = ledger.cases(today=TODAY).iloc[:5]
    drawn = chips.drawn(cases, workers=2)  # 5 cases: drawn by two forked processes on kept figures
    assert isinstance(drawn, DrawnChips) and len(drawn.pngs) == len(cases)

    def pixels(data):
        return np.asarray(Image.open(io.BytesIO(data)).convert("RGBA"))

    one = case_chips(inputs.before, inputs.after, size_m=300, max_pixels=20_000, dpi=60, lang="en")
    for i in (0, 3):
        row = cases.iloc[i]
        want = [png for png in (_png(f, 60) for f in one.figures(row))]
        drawn(row, tmp_path / "b.png", tmp_path / "a.png")
        got = [(tmp_path / "b.png").read_bytes(), (tmp_path / "a.png").read_bytes()]
        for g, w in zip(got, want):
            np.testing.assert_array_equal(pixels(g), pixels(w))
    # a case it was not given is drawn then, as the plain writer would
    other = ledger.cases(today=TODAY).iloc[6]
    drawn(other, tmp_path / "b2.png", tmp_path / "a2.png")
    np.testing.assert_array_equal(pixels((tmp_path / "b2.png").read_bytes()), pixels(_png(one.figures(other)[0], 60)))


@pytest.mark.parametrize("uncovered", ["after", "before"])
def test_chips_drawn_ahead_with_imagery_on_one_date_only(inputs, ledger, tmp_path, uncovered):
    """A case the drone mosaic misses: "no imagery" on that date's chip only, as figures() draws it."""
    import io

    from PIL import Image

    if inputs.drone is None:
        pytest.skip("sample has no drone mosaic")
    b, a = (inputs.before, inputs.drone) if uncovered == "after" else (inputs.drone, inputs.after)
    chips = case_chips(b, a, size_m=300, max_pixels=20_000, dpi=60, lang="en")
    cases = ledger.cases(today=TODAY).iloc[:4]
    drawn = chips.drawn(cases, workers=1)  # drawn in this process, on the kept figure
    one = case_chips(b, a, size_m=300, max_pixels=20_000, dpi=60, lang="en")
    notes = 0
    for i in range(len(cases)):
        row = cases.iloc[i]
        figs = one.figures(row)
        said = ["no imagery here" in [t.get_text() for t in _map_axes(f)[0].texts] for f in figs]
        notes += said == ([False, True] if uncovered == "after" else [True, False])
        drawn(row, tmp_path / "b.png", tmp_path / "a.png")
        for path, fig in zip((tmp_path / "b.png", tmp_path / "a.png"), figs):
            got = np.asarray(Image.open(path).convert("RGBA"))
            want = np.asarray(Image.open(io.BytesIO(_png(fig, 60))).convert("RGBA"))
            np.testing.assert_array_equal(got, want)
    assert notes >= 1  # the note is on one date's chip and not on the other's


def _png(fig, dpi):
    from ecopatch.outputs.maps.render import png_bytes

    return png_bytes(fig, dpi=dpi)


def test_case_chips_bad_size(inputs):
    with pytest.raises(ConfigError, match="size_m"):
        case_chips(inputs.before, inputs.after, size_m=0)


# ----------------------------------------------------------------------------- no CJK font
def test_no_cjk_font_falls_back_to_english(inputs, monkeypatch):
    import ecopatch.outputs.fonts

    monkeypatch.setattr(ecopatch.outputs.fonts, "find_cjk_font", lambda **kw: None)
    with pytest.warns(FontWarning, match="fonts-noto-cjk"):
        fig = mine_card("YH-KS-006", inputs.assessment, inputs.before, inputs.after, max_pixels=20_000)
    assert not any(has_cjk(t.get_text()) for t in texts(fig))  # no boxes: Chinese names left out
    assert "Mine card" in all_text(fig)
    render(fig)


# ----------------------------------------------------------------------------- helpers
def test_robust_stretch_clips_and_masks():
    rng = np.random.default_rng(0)
    a = rng.normal(0.1, 0.02, (50, 50)).astype(np.float32)
    a[0, 0] = 5.0  # an outlier does not set the white point
    a[1, 1] = np.nan
    img = robust_stretch([a, a, a], pct=(2, 98))
    assert img.shape == (50, 50, 4)
    assert img[1, 1, 3] == 0 and img[2, 2, 3] == 1
    assert (img[..., 0] >= 1).mean() == pytest.approx(0.02, abs=0.01)
    assert 0.4 < np.median(img[..., 0]) < 0.6
    lo, hi = stretch_limits([a])
    assert lo < 0.1 < hi < 1.0


def test_nice_scale_lengths():
    assert [_nice_length(x) for x in (0.9, 7, 260, 1234, 4999)] == [0.5, 5.0, 200.0, 1000.0, 2000.0]


@pytest.mark.parametrize(("crs", "x", "y", "expected"), [
    # UTM 50N at 119.95° E 30.22° N: convergence γ ≈ (λ − 117°)·sin φ = 1.48°; true north leans west
    ("EPSG:32650", 784_000, 3_347_000, -1.48),
    ("EPSG:4490", 119.95, 30.22, 0.0),
    ("EPSG:4549", 495_200, 3_344_000, 0.025),  # CGCS2000 GK CM 120° E, just west of it
])
def test_true_north(crs, x, y, expected):
    frame = MapFrame.around((x, y, x, y), crs, margin_m=500)
    assert true_north_angle(frame) == pytest.approx(expected, abs=0.03)


def test_frame_ground_size():
    frame = MapFrame.around((119.9, 30.2, 119.9, 30.2), "EPSG:4490", margin_m=1000, max_pixels=10_000)
    assert frame.width_m == pytest.approx(2000, rel=0.01)
    rows, cols = frame.grid.shape
    assert rows * cols <= 10_400 and abs(rows - cols) <= 1


def test_figure_shows_inline_in_a_notebook(inputs, cjk):
    """Jupyter shows the figure as a PNG even when pyplot was never imported."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    src = inputs.before.source
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(
        "import ecopatch\nfrom ecopatch.outputs.maps import change_map\n"
        f"b = ecopatch.open_scene({src!r})\n"
        "change_map(b, b, index=None, max_pixels=5000)"
    )]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nbclient.NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    data = [o.get("data", {}) for o in nb.cells[0].outputs if o.output_type == "execute_result"]
    assert data and "image/png" in data[0]


# ----------------------------------------------------------------------------- drawing many figures
def _tiny(i):
    from ecopatch.outputs.maps import MapFigure

    fig = MapFigure(figsize=(1, 1))
    fig.patch.set_facecolor((i / 10, 0.5, 0.5))
    return fig


def _fails():
    raise InputDataError("job 3 cannot be drawn")


@pytest.mark.parametrize("workers", [1, 2])
def test_render_pngs_keeps_the_order_and_raises_a_jobs_error(workers):
    import io
    from functools import partial

    from PIL import Image

    from ecopatch.outputs.maps import render_pngs

    out = render_pngs([partial(_tiny, i) for i in range(6)], dpi=20, workers=workers)
    reds = [np.asarray(Image.open(io.BytesIO(p[0])).convert("RGB"))[0, 0, 0] for p in out]
    assert reds == sorted(reds) and len(set(reds)) == 6
    jobs = [partial(_tiny, i) for i in range(6)]
    jobs[3] = _fails
    with pytest.raises(InputDataError, match="job 3"):
        render_pngs(jobs, dpi=20, workers=workers)


def _zlib_level(png: bytes) -> int:
    """The compression level a PNG's zlib stream header states (FLEVEL: 0 fastest ... 3 maximum)."""
    import struct

    pos, idat = 8, b""
    while pos < len(png):
        (n,) = struct.unpack(">I", png[pos:pos + 4])
        if png[pos + 4:pos + 8] == b"IDAT":
            idat += png[pos + 8:pos + 8 + n]
        pos += 12 + n
    return idat[1] >> 6


@pytest.mark.parametrize("how", ["suffix", "format", "default"])
def test_map_figure_saves_png_fast_and_keeps_pixels(tmp_path, how):
    """ecopatch figures save PNGs at zlib level 1 (same pixels as PIL's default level 6), figure-scoped."""
    import io

    from matplotlib.figure import Figure
    from PIL import Image

    from ecopatch.outputs.maps import MapFigure

    def draw(cls):
        fig = cls(figsize=(2, 1.5))
        ax = fig.add_subplot()
        ax.imshow(np.random.default_rng(1).random((40, 60)))
        ax.set_title("before 2024-09-12")
        return fig

    target = {"suffix": tmp_path / "a.PNG", "format": io.BytesIO(), "default": tmp_path / "noext"}[how]
    kw = {"format": "png"} if how == "format" else {}
    draw(MapFigure).savefig(target, dpi=50, **kw)
    fast = target.getvalue() if how == "format" else target.with_suffix(target.suffix or ".png").read_bytes()
    ref = io.BytesIO()
    draw(Figure).savefig(ref, dpi=50, format="png")  # a plain Figure: matplotlib's default, untouched
    assert fast[:8] == b"\x89PNG\r\n\x1a\n" and _zlib_level(fast) == 0 and _zlib_level(ref.getvalue()) == 2
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(fast))), np.asarray(Image.open(ref)))
    level9 = io.BytesIO()
    draw(MapFigure).savefig(level9, dpi=50, format="png", pil_kwargs={"compress_level": 9})  # the caller's word
    assert _zlib_level(level9.getvalue()) == 3
    svg = io.BytesIO()
    draw(MapFigure).savefig(svg, format="svg")  # other formats as matplotlib writes them
    assert b"<svg" in svg.getvalue()[:400]


def _png_job(tag: int, hang_in_worker: bool = False):
    parent = os.getpid()

    def job():
        if hang_in_worker and os.getpid() != parent:
            time.sleep(3600)  # a worker that never returns (as one forked while a lock was held)
        import matplotlib.figure

        fig = matplotlib.figure.Figure(figsize=(1, 1))
        fig.add_subplot().set_title(str(tag))
        return fig

    return job


def test_render_pngs_draws_what_stalled_workers_did_not(monkeypatch, caplog):
    from ecopatch.outputs.maps import render

    if not render._can_fork():
        pytest.skip("no fork on this platform")
    monkeypatch.setattr(render, "STALL_S", 3.0)
    jobs = [_png_job(i, hang_in_worker=True) for i in range(4)]
    t = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="ecopatch"):
        out = render.render_pngs(jobs, dpi=20, workers=2)
    assert time.monotonic() - t < 60
    assert len(out) == 4 and all(len(pngs) == 1 and pngs[0].startswith(b"\x89PNG") for pngs in out)
    assert "no progress" in caplog.text
    ok = render.render_pngs([_png_job(i) for i in range(4)], dpi=20, workers=2)
    assert [len(p) for p in ok] == [1, 1, 1, 1]


def _gc_state() -> bytes:
    import gc

    return f"{os.getpid()} {gc.get_freeze_count()}".encode()


def test_render_pngs_workers_keep_the_inherited_heap_out_of_the_gc():
    """Forked workers freeze what they inherit (their full collections walk only their own objects); the caller's
    collector is left as it was."""
    import gc

    from ecopatch.outputs.maps import render

    if not render._can_fork():
        pytest.skip("no fork on this platform")
    frozen = gc.get_freeze_count()
    out = render.render_pngs([_gc_state for _ in range(6)], dpi=20, workers=2)
    pids, counts = zip(*(p[0].decode().split() for p in out))
    assert str(os.getpid()) not in pids  # drawn in the workers
    assert all(int(c) > 1000 for c in counts)  # the parent's objects, frozen in each worker
    assert gc.get_freeze_count() == frozen and gc.isenabled()
