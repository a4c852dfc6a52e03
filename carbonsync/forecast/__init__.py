"""Forecasts: the rollout chain and the forecast store (an Icechunk repository) that schedulers read."""

from carbonsync.forecast.export import ExportReport, export_forecasts, write_forecast_store
from carbonsync.forecast.reader import (
    ForecastReader,
    committed_init_times,
    latest_forecast,
    latest_zone_forecast,
    open_forecast,
    reader_for,
)
from carbonsync.forecast.store import GROUPS, ZONE_PRODUCTS, ForecastStoreError, StoreLocation, history, tag_snapshot

__all__ = [
    "GROUPS",
    "ZONE_PRODUCTS",
    "ExportReport",
    "ForecastReader",
    "ForecastStoreError",
    "StoreLocation",
    "committed_init_times",
    "export_forecasts",
    "history",
    "latest_forecast",
    "latest_zone_forecast",
    "open_forecast",
    "reader_for",
    "tag_snapshot",
    "write_forecast_store",
]

# --- the forecast chain: its parts behind protocols, the one rollout, the Forecaster that runs them
from carbonsync.forecast.chain import (  # noqa: E402
    ChainPartError,
    Damping,
    PackagePrognostic,
    PackageSsrd,
    PackageZoneHead,
    PhysicalZoneHead,
    PrognosticModel,
    SsrdDiagnostic,
    ZoneHead,
    load_part,
    register_part,
    rollout_states,
)
from carbonsync.forecast.rollout import Forecaster  # noqa: E402

__all__ += [
    "ChainPartError",
    "Damping",
    "Forecaster",
    "PackagePrognostic",
    "PackageSsrd",
    "PackageZoneHead",
    "PhysicalZoneHead",
    "PrognosticModel",
    "SsrdDiagnostic",
    "ZoneHead",
    "load_part",
    "register_part",
    "rollout_states",
]
