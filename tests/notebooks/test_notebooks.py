"""Every notebook in ``notebooks/`` runs headless against the session's tiny run and draws its figures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.helpers import REPO_ROOT
from tests.helpers.notebooks import write_kernel_spec

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOK_DIR = REPO_ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
KERNEL_NAME = "carbonsync-tests"
CELL_TIMEOUT_S = 300


@pytest.fixture(scope="session")
def kernel_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Jupyter data directory with a kernel spec that runs this interpreter (the venv's), so the
    notebooks use this environment's carbonsync and ipykernel whatever kernels the user has installed."""
    root = tmp_path_factory.mktemp("jupyter")
    write_kernel_spec(root, KERNEL_NAME, "CarbonSync tests")
    return root


def test_notebooks_exist() -> None:
    assert [p.name for p in NOTEBOOKS][:2] == ["01_quickstart.ipynb", "02_forecast_and_placement.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_clean(path: Path) -> None:
    """Valid nbformat 4, committed without outputs, and starting with the parameters cell."""
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code), f"{path.name} has outputs; clear them"
    assert 'os.environ.get("CARBONSYNC_RUN_DIR")' in code[0].source
    assert 'os.environ.get("CARBONSYNC_NOTEBOOK_SIZE", "default")' in code[0].source


# notebooks whose own test file runs them with stronger checks (test_zone_notebook.py, test_signals_notebook.py,
# test_curtailment_notebook.py)
OWN_TEST = {"04_zone_explorer", "05_grid_signals", "06_curtailment"}


@pytest.mark.slow
@pytest.mark.parametrize("path", [p for p in NOTEBOOKS if p.stem not in OWN_TEST], ids=lambda p: p.stem)
def test_notebook_runs(path: Path, tiny_run, kernel_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    jupyter_path = os.environ.get("JUPYTER_PATH")
    monkeypatch.setenv("JUPYTER_PATH", os.pathsep.join(filter(None, [str(kernel_path), jupyter_path])))
    monkeypatch.setenv("CARBONSYNC_RUN_DIR", str(tiny_run.run_dir))
    monkeypatch.setenv("CARBONSYNC_NOTEBOOK_SIZE", "tiny")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("WANDB_MODE", "offline")

    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, kernel_name=KERNEL_NAME, timeout=CELL_TIMEOUT_S,
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError, with the traceback, on the first failing cell

    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    errors = [f"{o.ename}: {o.evalue}" for o in outputs if o.output_type == "error"]
    assert not errors, f"{path.name}: {errors}"
    figures = [o for o in outputs if o.output_type == "display_data" and "image/png" in o.get("data", {})]
    assert figures, f"{path.name} drew no figures"
    assert not (tmp_path / "outputs").exists(), f"{path.name} ran the pipeline instead of reusing {tiny_run.run_dir}"
