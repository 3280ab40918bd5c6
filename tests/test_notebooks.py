"""The notebooks in notebooks/ run top to bottom, as a GIS analyst would run them, and are stored clean.

Each notebook is one test (parametrized), so ``pytest -n 2`` spreads them over the xdist workers;
each gets its own kernel and runs with its own temporary folder as working directory and TMPDIR, so
nothing lands in the repository.  A failing cell is reported with its number, its source and the error.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat", reason="nbformat is in the test extra: pip install -e '.[test]'")
nbclient = pytest.importorskip("nbclient", reason="nbclient is in the test extra: pip install -e '.[test]'")

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
KERNEL = "python3"
CELL_TIMEOUT_S = 180  # each notebook takes seconds; generous for slow CI machines and the sample fallback

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _require_kernel() -> None:
    """Skip, saying why, unless the Jupyter kernel the notebooks name can be started."""
    pytest.importorskip("ipykernel", reason=f"no Jupyter kernel {KERNEL!r}: pip install ipykernel")
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        KernelSpecManager().get_kernel_spec(KERNEL)
    except NoSuchKernel:
        pytest.skip(f"no Jupyter kernel {KERNEL!r} installed (python -m ipykernel install --user)")


def test_there_are_notebooks():
    assert NOTEBOOKS, f"no notebooks in {NOTEBOOK_DIR}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_stored_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    dirty = [
        i
        for i, cell in enumerate(nb.cells)
        if cell.cell_type == "code" and (cell.outputs or cell.execution_count is not None)
    ]
    assert not dirty, (
        f"{path.name}: code cells {dirty} hold outputs or execution counts; clear them before committing "
        "(Jupyter: Edit > Clear Outputs of All Cells, or jupyter nbconvert --clear-output --inplace)"
    )


@pytest.mark.slow  # seconds each: a kernel start, the sample's analyses, figures
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path, tmp_path):
    _require_kernel()
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        nb, kernel_name=KERNEL, timeout=CELL_TIMEOUT_S, resources={"metadata": {"path": str(tmp_path)}}
    )
    running: dict[str, int] = {}
    client.on_cell_execute = lambda cell, cell_index: running.update(index=cell_index)
    try:
        # the notebooks' temporary folders (tempfile.mkdtemp) land in tmp_path too, which pytest cleans up
        client.execute(env={**os.environ, "TMPDIR": str(tmp_path)})
    except (
        nbclient.exceptions.CellExecutionError,
        nbclient.exceptions.CellTimeoutError,
        nbclient.exceptions.DeadKernelError,
    ) as exc:
        pytest.fail(_failure(path, nb, running.get("index"), exc), pytrace=False)


def _failure(path: Path, nb, index: int | None, exc: Exception) -> str:
    """Which cell failed, its source, and its error (the traceback the notebook would show)."""
    cell = nb.cells[index] if index is not None else None
    errors = [out for out in cell.get("outputs", []) if out.output_type == "error"] if cell else []
    if isinstance(exc, nbclient.exceptions.CellTimeoutError):
        detail = f"no result within {CELL_TIMEOUT_S} s, the timeout per cell"
    else:
        detail = "\n".join(errors[0].traceback) if errors else str(exc)
    source = cell.source if cell else "(no cell had started)"
    return (
        f"{path.name}: cell {index} failed ({type(exc).__name__})\n"
        f"---- cell source ----\n{source}\n---- error ----\n{_ANSI.sub('', detail)}"
    )
