"""Prometheus metrics of the service (``GET /metrics``, prometheus_client's text format).

Read at scrape time from the decision logs and the forecast store, so they are as fresh as the scrape.
Names follow Prometheus practice: base units in the name (watts, joules, seconds; carbon intensity in grams
per kilowatt-hour and price per megawatt-hour, which have no base unit), ``_total`` on counters, and labels of
low cardinality (``job`` = one controlled training job, ``state``, ``signal``).

- ``carbonsync_controller_state{job,state}``: 1 for the job's current state, 0 for the others
- ``carbonsync_controller_running{job}``: 1 while the job trains, 0 while paused
- ``carbonsync_controller_power_cap_watts{job}``, ``carbonsync_controller_power_draw_watts{job}``
- ``carbonsync_controller_energy_joules_total{job}``: GPU energy since the controller opened its actuator
- ``carbonsync_controller_decisions_total{job,state}``: decisions read from the job's log
- ``carbonsync_controller_score{job}``, ``carbonsync_controller_last_decision_timestamp_seconds{job}``
- ``carbonsync_grid_carbon_intensity_grams_per_kilowatt_hour{job}``, ``carbonsync_grid_price_per_megawatt_hour{job}``,
  ``carbonsync_grid_signal_age_seconds{job,signal}``: the signals the last decision used, and their age then
- ``carbonsync_forecast_store_up``, ``carbonsync_forecast_init_times``,
  ``carbonsync_forecast_latest_init_time_seconds`` (Unix time), ``carbonsync_forecast_latest_init_age_seconds``
- ``carbonsync_http_request_duration_seconds{method,route,status}`` (histogram, by route template)
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pandas as pd
from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from carbonsync.serve.sources import DecisionLogs, ForecastSource

__all__ = ["ServiceCollector", "service_registry"]

STATES = ("green", "yellow", "red")
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


def _number(value: object) -> float | None:
    try:
        out = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return out if out == out else None


def _unix(value: object) -> float | None:
    try:
        return pd.Timestamp(value).tz_localize(None).value / 1e9 if value is not None else None
    except (TypeError, ValueError):
        return None


class ServiceCollector(Collector):
    """Controller and forecast-store metrics, computed at each scrape."""

    def __init__(self, logs: DecisionLogs, forecast: ForecastSource) -> None:
        self.logs, self.forecast = logs, forecast

    def collect(self) -> Iterator[Metric]:
        yield from self._controllers()
        yield from self._store()

    def _controllers(self) -> Iterator[Metric]:
        state = GaugeMetricFamily("carbonsync_controller_state", "1 for the job's current controller state",
                                  labels=["job", "state"])
        running = GaugeMetricFamily("carbonsync_controller_running", "1 while the job trains, 0 while paused",
                                    labels=["job"])
        cap = GaugeMetricFamily("carbonsync_controller_power_cap_watts", "GPU power cap the controller set",
                                labels=["job"])
        draw = GaugeMetricFamily("carbonsync_controller_power_draw_watts", "GPU power draw at the last decision",
                                 labels=["job"])
        energy = CounterMetricFamily("carbonsync_controller_energy_joules", "GPU energy since the actuator opened",
                                     labels=["job"])
        decisions = CounterMetricFamily("carbonsync_controller_decisions", "controller decisions by state",
                                        labels=["job", "state"])
        score = GaugeMetricFamily("carbonsync_controller_score", "price-carbon score of the last decision (0-1)",
                                  labels=["job"])
        last = GaugeMetricFamily("carbonsync_controller_last_decision_timestamp_seconds",
                                 "time of the last decision (Unix, signal time)", labels=["job"])
        carbon = GaugeMetricFamily("carbonsync_grid_carbon_intensity_grams_per_kilowatt_hour",
                                   "carbon signal the last decision used", labels=["job"])
        price = GaugeMetricFamily("carbonsync_grid_price_per_megawatt_hour", "price signal the last decision used",
                                  labels=["job"])
        age = GaugeMetricFamily("carbonsync_grid_signal_age_seconds", "age of the signal value the last decision used",
                                labels=["job", "signal"])
        for entry in self.logs.refresh():
            job = entry.job
            for s in STATES:
                decisions.add_metric([job, s], float(entry.by_state.get(s, 0)))
            if not entry.records:
                continue
            r = entry.records[-1]
            for s in STATES:
                state.add_metric([job, s], 1.0 if r.get("state") == s else 0.0)
            running.add_metric([job], 1.0 if r.get("run", True) else 0.0)
            inputs = r.get("inputs") or {}
            for family, value in ((cap, r.get("power_w")), (draw, r.get("draw_w")), (score, r.get("score")),
                                  (last, _unix(r.get("time"))), (carbon, inputs.get("carbon")),
                                  (price, inputs.get("price"))):
                number = _number(value)
                if number is not None:
                    family.add_metric([job], number)
            joules = _number(r.get("energy_j"))
            if joules is not None:
                energy.add_metric([job], joules)
            for name, info in (r.get("signals") or {}).items():
                seconds = _number((info or {}).get("age_s"))
                if seconds is not None:
                    age.add_metric([job, name], seconds)
        yield from (state, running, cap, draw, energy, decisions, score, last, carbon, price, age)

    def _store(self) -> Iterator[Metric]:
        status = self.forecast.status()
        up = GaugeMetricFamily("carbonsync_forecast_store_up", "1 when the forecast store has a committed init time")
        up.add_metric([], 1.0 if status["status"] == "ok" else 0.0)
        count = GaugeMetricFamily("carbonsync_forecast_init_times", "committed init times in the forecast store")
        count.add_metric([], float(status["init_times"]))
        yield from (up, count)
        if status["init_time"] is not None:
            init = _unix(status["init_time"])
            latest = GaugeMetricFamily("carbonsync_forecast_latest_init_time_seconds",
                                       "the newest committed init time (Unix)")
            latest.add_metric([], init)
            age = GaugeMetricFamily("carbonsync_forecast_latest_init_age_seconds",
                                    "seconds since the newest committed init time")
            age.add_metric([], time.time() - init)
            yield from (latest, age)


def service_registry(logs: DecisionLogs, forecast: ForecastSource) -> tuple[CollectorRegistry, Histogram]:
    """A registry of its own per app (several apps in one process do not share metrics), and its latency histogram."""
    registry = CollectorRegistry()
    registry.register(ServiceCollector(logs, forecast))
    latency = Histogram("carbonsync_http_request_duration_seconds", "time to answer an HTTP request",
                        ["method", "route", "status"], registry=registry, buckets=LATENCY_BUCKETS)
    return registry, latency
