"""The zone-explorer notebook runs headless on the session's tiny run and shows what it promises.

It draws the zone's weather, physical / learned / observed capacity factors, a forecast and the irradiance
maps; with the shared real data present it also compares an ERA5 point near Berlin with OPSD output.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from tests.helpers import REPO_ROOT, shared_data_dir
from tests.helpers.notebooks import write_kernel_spec

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOK = REPO_ROOT / "notebooks" / "04_zone_explorer.ipynb"
KERNEL_NAME = "carbonsync-zone-tests"
REAL_DATA = [shared_data_dir() / "era5" / "feedinlib_berlin_2017.nc",
             shared_data_dir() / "opsd" / "de_2017_hourly_generation.csv"]


def _kernel(root: Path) -> Path:
    write_kernel_spec(root, KERNEL_NAME, "CarbonSync")
    return root


def _text(outputs: list) -> str:
    parts = []
    for o in outputs:
        if o.output_type == "stream":
            parts.append(o.text)
        elif o.output_type in ("execute_result", "display_data"):
            parts.append(o.get("data", {}).get("text/plain", ""))
            parts.append(o.get("data", {}).get("text/html", ""))
    return "\n".join(parts)


def test_notebook_is_clean() -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code)
    assert 'os.environ.get("CARBONSYNC_RUN_DIR")' in code[0].source


@pytest.mark.slow
def test_zone_notebook_runs(tiny_run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    jupyter = _kernel(tmp_path / "jupyter")
    monkeypatch.setenv("JUPYTER_PATH", os.pathsep.join(filter(None, [str(jupyter), os.environ.get("JUPYTER_PATH")])))
    monkeypatch.setenv("CARBONSYNC_RUN_DIR", str(tiny_run.run_dir))
    monkeypatch.setenv("CARBONSYNC_NOTEBOOK_SIZE", "tiny")
    monkeypatch.setenv("CARBONSYNC_ZONE", "iberia")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    work = tmp_path / "work"
    work.mkdir()
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(nb, kernel_name=KERNEL_NAME, timeout=300,
                            resources={"metadata": {"path": str(work)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = _text(outputs)
    assert "zone iberia (Iberia)" in text and "reusing the run" in text
    assert "physical RMSE" in text and "learned RMSE" in text  # physical vs learned against observed
    assert "coverage_10_90" in text  # the head's calibration on test hindcasts
    assert "clear_sky_x_clearness" in text and "linear_time" in text  # the irradiance report
    figures = [o for o in outputs if o.output_type == "display_data" and "image/png" in o.get("data", {})]
    real = all(p.exists() for p in REAL_DATA)
    assert len(figures) == 4 + real, [len(figures), real]
    if real:
        assert re.search(r"ERA5 point 52.4[78]N 13.35E against OPSD Germany 2017, (\d{4}) hours", text), text[-2000:]
    else:
        assert "real data not found" in text
    assert not (work / "outputs").exists(), "the notebook ran the pipeline instead of reusing the tiny run"
