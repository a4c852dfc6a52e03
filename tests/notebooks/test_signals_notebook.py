"""notebooks/05_grid_signals.ipynb runs headless on the shared grid-signal recordings and prints its numbers."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

from tests.helpers import REPO_ROOT, requires_shared_data
from tests.helpers.notebooks import write_kernel_spec

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOK = REPO_ROOT / "notebooks" / "05_grid_signals.ipynb"
KERNEL_NAME = "carbonsync-signals-tests"
NUMBER = r"(-?\d+(?:\.\d+)?|nan|inf)"


@requires_shared_data
def test_signals_notebook_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_kernel_spec(tmp_path, KERNEL_NAME, "CarbonSync signals")
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.delenv("CARBONSYNC_NOTEBOOK_SIZE", raising=False)

    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(nb, kernel_name=KERNEL_NAME, timeout=300, resources={"metadata": {"path": str(tmp_path)}}).execute()

    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "missing" not in text and "skipped" not in text, text
    assert "Electricity Maps: provider electricitymaps-file" in text
    assert "zones ['CAISO_NORTH', 'SPP_TX', 'NEM_SA', 'DE']" in text
    assert "zone 'caiso' resolves to ['TH_NP15_GEN-APND']" in text
    assert "causal at every step: True (17 steps checked)" in text
    assert sum("image/png" in o.get("data", {}) for o in outputs) == 2

    first = re.search(rf"MAE at the first lead \((\d+) min\): forecast {NUMBER} g/kWh, persistence {NUMBER} g/kWh", text)
    assert first, text
    assert first.group(1) == "5"
    assert math.isfinite(float(first.group(2))) and float(first.group(2)) > 0
    assert math.isfinite(float(first.group(3))) and float(first.group(3)) > 0

    summary = re.search(rf"WattTime forecast MAE at 30 min: {NUMBER} g/kWh vs persistence {NUMBER} g/kWh", text)
    assert summary, text
    assert all(math.isfinite(float(v)) and float(v) > 0 for v in summary.groups())
