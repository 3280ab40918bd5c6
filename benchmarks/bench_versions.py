"""One analysis, timed, with whichever ecopatch is on the path: to compare two versions of the code.

Run it alternately with the old and the new code on one machine (one measurement per process)::

    python benchmarks/bench_versions.py ROOT LAYOUT JOB            # the installed code
    PYTHONPATH=/path/to/other/src python benchmarks/bench_versions.py ROOT LAYOUT JOB

``ROOT`` is a folder written by ``bench_e2e.py make`` (``ROOT/LAYOUT/*`` holds the two dates,
``ROOT/src/{mines,reserves}.gpkg`` the polygons); ``JOB`` is ``detect``, ``assess`` or ``both``.
It calls the analyses in either argument order (imagery first since issue 23, polygons first
before), so the same script times both sides of that change.  Prints the seconds of the call,
the result's size and the process's peak RSS.
"""

from __future__ import annotations

import glob
import inspect
import resource
import sys
import time
import warnings


def main(root: str, layout: str, job: str) -> None:
    import ecopatch

    files = sorted(glob.glob(f"{root}/{layout}/*"))
    before = ecopatch.open_scene([f for f in files if "before" in f or "2021" in f][0])
    after = ecopatch.open_scene([f for f in files if "after" in f or "2024" in f][0])
    zones = ecopatch.read_patches(f"{root}/src/reserves.gpkg")
    mines = ecopatch.read_patches(f"{root}/src/mines.gpkg")
    new = list(inspect.signature(ecopatch.assess_restoration).parameters)[0] == "before"
    t = time.time()
    n: object
    if job == "detect":
        n = len(ecopatch.detect_changes(before, after, zones, progress=False))
    elif job == "assess":
        args = (before, after, mines) if new else (mines, before, after)
        n = len(ecopatch.assess_restoration(*args, progress=False))
    else:
        args = (before, after, mines, zones) if new else (mines, zones, before, after)
        table, patches = ecopatch.assess_and_detect(*args, progress=False)
        n = (len(table), len(patches))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"{'new' if new else 'old'} {layout} {job} {time.time() - t:.2f} s; n={n}; peak GiB {peak:.2f}", flush=True)


if __name__ == "__main__":
    warnings.simplefilter("ignore")
    main(*sys.argv[1:4])
