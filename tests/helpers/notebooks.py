"""A Jupyter kernel spec that runs this interpreter, for the notebook tests."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def write_kernel_spec(root: Path, name: str, display_name: str = "CarbonSync") -> Path:
    """Write ``root/kernels/<name>/kernel.json`` running this interpreter (the venv's), so notebooks use this
    environment's carbonsync and ipykernel whatever kernels the user has; returns ``root`` (for JUPYTER_PATH)."""
    spec = root / "kernels" / name
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": display_name, "language": "python"}))
    return root
