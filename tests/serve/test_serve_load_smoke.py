"""benchmarks/serve_load.py runs end to end (a smoke run: no timing is asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "serve_load.py"


@pytest.mark.slow
def test_the_load_benchmark_runs_and_reports_no_errors():
    done = subprocess.run([sys.executable, str(SCRIPT), "--quick"], capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert {"service", "direct", "ratios", "settings"} <= set(result)
    assert result["service"]["requests"] > 0 and result["service"]["errors"] == 0
    assert {"p50_ms", "p99_ms", "requests_per_s"} <= set(result["direct"])
