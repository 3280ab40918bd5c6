"""What a ``change_map`` figure costs with almost no imagery, against the same call over a whole pair.

Issue 22 asks ``change_map`` for at most 5× a full decode of both files.  This
times ``change_map`` + ``savefig`` (PNG, 120 dpi; medians of calls 2-4 in one
process, the first call pays imports and font loading) over the whole 1000²
pair of ``bench_e2e.py`` and over a 600 m frame with at most 4096 display
pixels, where there is almost nothing to read or draw: the second figure is
what the three panels, titles, legend, scale bars and north arrows cost.

Usage (after ``python benchmarks/bench_e2e.py make --size 1000``)::

    python benchmarks/change_map_fixed_cost.py pixel_tiled_deflate [--data benchmarks/_work/e2e]

Figures: ``benchmarks/RESULTS.md``, "change_map on the 1000² pair: what the figure costs with no imagery".
"""

from __future__ import annotations

import argparse
import io
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def _times(before, after, patches, **kw) -> tuple[float, float]:  # noqa: ANN001
    from ecopatch.outputs.maps import change_map

    out = []
    for _ in range(4):
        t0 = time.perf_counter()
        fig = change_map(before, after, patches, **kw)
        t1 = time.perf_counter()
        fig.savefig(io.BytesIO(), format="png", dpi=120)
        out.append((t1 - t0, time.perf_counter() - t1))
    a = np.array(out[1:])
    return float(np.median(a[:, 0])), float(np.median(a[:, 1]))


def main(argv: list[str] | None = None) -> int:
    import bench_e2e

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("layout", help="a layout of bench_e2e.LAYOUTS, e.g. pixel_tiled_deflate")
    ap.add_argument("--data", type=Path, default=bench_e2e.DEFAULT_DATA,
                    help=f"bench_e2e.py's data folder (default {bench_e2e.DEFAULT_DATA})")
    args = ap.parse_args(argv)
    root = bench_e2e.size_dir(args.data, 1000)
    warnings.simplefilter("ignore")
    before, after = bench_e2e._pair(root, args.layout)
    _, patches = bench_e2e._ref(root)
    left, bottom, right, top = before.grid.bounds
    cx, cy = (left + right) / 2, (bottom + top) / 2
    whole = _times(before, after, patches)
    tiny = _times(before, after, patches, bounds=(cx - 300, cy - 300, cx + 300, cy + 300), max_pixels=4096)
    print(f"| {args.layout} | {whole[0]:.3f} + {whole[1]:.3f} = {sum(whole):.3f} s "
          f"| {tiny[0]:.3f} + {tiny[1]:.3f} = {sum(tiny):.3f} s |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
