"""Synthetic Electricity Maps portal exports for the observation tests."""

from __future__ import annotations

import pandas as pd

HEADER = (
    "Datetime (UTC),Country,Zone Name,Zone Id,Carbon Intensity gCO₂eq/kWh (direct),Carbon Intensity gCO₂eq/kWh (LCA),"
    "Low Carbon Percentage,Renewable Percentage,Data Source,Data Estimated,Data Estimation Method"
)


def portal_rows(start: str, hours: int, zone: str = "ES", base: float = 100.0) -> list[list]:
    times = pd.date_range(start, periods=hours, freq="h")
    return [
        [t.strftime("%Y-%m-%d %H:%M:%S"), "Spain", "Spain", zone, base + i, 1.4 * (base + i), 80.0, 50.0 + i % 10,
         "entsoe.eu", "false", ""]
        for i, t in enumerate(times)
    ]


def write_portal(path, rows, header: str = HEADER):
    lines = [header] + [",".join(map(str, r)) for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
