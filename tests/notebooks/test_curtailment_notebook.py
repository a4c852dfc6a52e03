"""notebooks/06_curtailment.ipynb replays the study's trace headless (tiny setting) on real Flower processes."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

from carbonsync.federated.provisioner import FlowerError, flower_executable
from tests.helpers import REPO_ROOT, requires_shared_data, shared_data_dir
from tests.helpers.notebooks import write_kernel_spec

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
pytest.importorskip("flwr", reason="the 'federated' extra (flwr) is not installed")

NOTEBOOK = REPO_ROOT / "notebooks" / "06_curtailment.ipynb"
KERNEL_NAME = "carbonsync-curtailment-tests"
TRACE = shared_data_dir() / "watttime" / "moer_4regions_2026-01-11.csv"


def _flower_missing() -> str | None:
    try:
        for name in ("flower-superlink", "flower-supernode", "flwr"):
            flower_executable(name)
    except FlowerError as err:
        return str(err)
    return None


@requires_shared_data
@pytest.mark.skipif(_flower_missing() is not None, reason=str(_flower_missing()))
@pytest.mark.skipif(not TRACE.exists(), reason=f"{TRACE} is missing")
def test_curtailment_notebook_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_kernel_spec(tmp_path, KERNEL_NAME, "CarbonSync")
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("CARBONSYNC_NOTEBOOK_SIZE", "tiny")

    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(nb, kernel_name=KERNEL_NAME, timeout=600,
                            resources={"metadata": {"path": str(tmp_path)}}).execute()

    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "(found); 40 steps of 1200 s" in text
    assert "CAISO_NORTH: windows 17:05-19:05, 19:20-23:25" in text
    assert "NEM_SA: windows 21:40-08:10" in text
    assert sum("image/png" in o.get("data", {}) for o in outputs) == 1
    result = json.loads((tmp_path / "curtailment_replay" / "replay.json").read_text())
    runs = result["runs"]
    assert set(runs) == {"centralised", "curtailment", *(f"single_site_{z}" for z in ("CAISO_NORTH", "SPP_TX",
                                                                                          "NEM_SA", "DE"))}
    assert runs["curtailment"]["status"] == "done" and runs["curtailment"]["steps_done"] == 40
    # the curtailment run draws its energy inside windows, at a fraction of any single site's emissions
    assert runs["curtailment"]["energy_in_windows_share"] > 0.95
    assert all(r < 0.3 for r in result["curtailment_vs_single_site_emissions"].values())
    share = re.search(r"share of the curtailment run's energy inside windows: (\d\.\d+)", text)
    assert share and math.isclose(float(share.group(1)), runs["curtailment"]["energy_in_windows_share"], abs_tol=1e-3)
    assert (tmp_path / "curtailment_replay" / "schedule.png").stat().st_size > 10_000
