"""``benchmarks/serve_load.py --quick`` runs end to end against a real server subprocess and reports no errors.

A smoke run only: no timing figure is asserted (the machine is shared and noisy).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "serve_load.py"
LATENCY = {"p50_ms", "p90_ms", "p99_ms"}


@pytest.mark.slow
def test_quick_load_run_reports_every_figure_and_no_errors() -> None:
    done = subprocess.run([sys.executable, str(SCRIPT), "--quick"], capture_output=True, text=True, timeout=120,
                          cwd=SCRIPT.parents[1])
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    assert set(result) == {"service", "direct", "ratios", "settings"}

    service = result["service"]
    assert {"requests", "requests_per_s", "errors", "statuses", "by_route"} | LATENCY <= set(service)
    assert service["requests"] > 0 and service["errors"] == 0, service.get("statuses")
    assert set(service["statuses"]) == {"200"} and not service["transport_errors"]
    assert service["server_alive_at_end"], service.get("server_log_tail")
    assert all(service["by_route"][r]["count"] > 0 for r in ("forecasts_current", "bylocations", "zone_forecast"))

    for side in ("1_thread", "n_threads"):
        direct = result["direct"][side]
        assert {"calls", "calls_per_s"} | LATENCY <= set(direct), side
        assert direct["calls"] > 0 and direct["errors"] == 0, direct["error_types"]
    assert result["direct"]["n_threads"]["threads"] == result["settings"]["clients"] == 4

    assert {"service_rps_over_direct_n_threads_rps", "service_p50_over_direct_1_thread_p50"} <= set(result["ratios"])
    assert all(v is not None for v in result["ratios"].values())
    assert result["settings"]["quick"] and result["settings"]["seconds"] == 3.0
