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
import sys, time, warnings, glob, resource, inspect
warnings.simplefilter("ignore")
t0 = time.time()
import ecopatch
root, lay, job = sys.argv[1], sys.argv[2], sys.argv[3]
files = sorted(glob.glob(f"{root}/{lay}/*"))
b = ecopatch.open_scene([f for f in files if "before" in f or "2021" in f][0])
a = ecopatch.open_scene([f for f in files if "after" in f or "2024" in f][0])
zones = ecopatch.read_patches(f"{root}/src/reserves.gpkg")
mines = ecopatch.read_patches(f"{root}/src/mines.gpkg")
new = list(inspect.signature(ecopatch.assess_restoration).parameters)[0] == "before"
t = time.time()
if job == "detect":
    out = ecopatch.detect_changes(b, a, zones, progress=False); n = len(out)
elif job == "assess":
    out = ecopatch.assess_restoration(b, a, mines, progress=False) if new else ecopatch.assess_restoration(mines, b, a, progress=False)
    n = len(out)
else:
    ta, p = (ecopatch.assess_and_detect(b, a, mines, zones, progress=False) if new
             else ecopatch.assess_and_detect(mines, zones, b, a, progress=False))
    n = (len(ta), len(p))
print(f"{'new' if new else 'old'} {lay} {job} {time.time() - t:.2f} s; n={n}; peak GiB "
      f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f}", flush=True)
