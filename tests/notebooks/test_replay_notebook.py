"""notebooks/03_placement_replay.ipynb runs headless on the shared Electricity Maps traces and draws its figures."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import REPO_ROOT, requires_shared_data
from tests.helpers.notebooks import write_kernel_spec

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOK = REPO_ROOT / "notebooks" / "03_placement_replay.ipynb"
KERNEL_NAME = "carbonsync-replay-tests"


@requires_shared_data
def test_replay_notebook_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_kernel_spec(tmp_path, KERNEL_NAME, "CarbonSync replay")
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.delenv("CARBONSYNC_TRACES_DIR", raising=False)

    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(nb, kernel_name=KERNEL_NAME, timeout=120, resources={"metadata": {"path": str(tmp_path)}}).execute()

    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "electricitymaps: zones ['BR', 'ES', 'NO', 'US-CAL-CISO']" in text and "SYNTHETIC" not in text
    assert "Under spatiotemporal it ran" in text and "deadline met" in text
    assert sum("image/png" in o.get("data", {}) for o in outputs) == 3
    tables = [o["data"]["text/plain"] for o in outputs if o.output_type == "execute_result"]
    assert any("oracle_savings_share" in t and "spatiotemporal" in t for t in tables)
