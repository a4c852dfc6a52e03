"""The signal contract: unit normalisation, range checks naming where, named errors without secrets, registry."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from carbonsync.signals import (
    GridSignal,
    SignalError,
    SignalFormatError,
    SignalRangeError,
    SignalRateLimited,
    check_signal,
    convert_units,
    get_signal,
    known_signals,
    register_signal,
    signal_dataset,
)

TIMES = pd.date_range("2024-05-01", periods=4, freq="h")


@pytest.mark.parametrize("units, kind, value, expected, normalised", [
    ("lbs_co2_per_mwh", "marginal_emissions", 1000.0, 453.59237, "g CO2e/kWh"),
    ("gCO2eq/kWh", "carbon_intensity", 321.5, 321.5, "g CO2e/kWh"),
    ("kg/MWh", "carbon_intensity", 321.5, 321.5, "g CO2e/kWh"),
    ("tCO2/MWh", "carbon_intensity", 0.3215, 321.5, "g CO2e/kWh"),
    ("%", "renewable_share", 42.0, 0.42, "1"),
    ("GW", "curtailment", 1.5, 1500.0, "MW"),
    ("EUR/MWh", "price", -12.5, -12.5, "EUR/MWh"),
    ("$/MWh", "price", 30.0, 30.0, "USD/MWh"),
])
def test_units_are_normalised_per_kind(units, kind, value, expected, normalised):
    values, got = convert_units(np.array([value]), units, kind, provider="test")
    np.testing.assert_allclose(values, [expected])
    assert got == normalised


@pytest.mark.parametrize("units, kind", [("MW", "carbon_intensity"), ("furlongs", "curtailment"),
                                          ("EUR", "price"), ("%", "marginal_emissions")])
def test_units_that_do_not_fit_the_kind_are_named(units, kind):
    with pytest.raises(SignalFormatError, match=f"provider test, zone Z: .*'{units}'"):
        convert_units(np.array([1.0]), units, kind, provider="test", zone="Z")


def test_a_signal_dataset_follows_the_contract():
    ds = signal_dataset([300, 310, 320, 330], TIMES.tz_localize("Europe/Madrid"), "ES", "carbon_intensity",
                        "gCO2eq/kWh", provider="file", estimated=[False, True, False, False],
                        retrieved_at=pd.Timestamp("2024-05-01T06:00Z"))
    assert ds["value"].dims == ("time", "zone") and ds.zone.values.tolist() == ["ES"]
    assert pd.Timestamp(ds.time.values[0]) == pd.Timestamp("2024-04-30T22:00")  # UTC, naive
    assert ds["estimated"].values[:, 0].tolist() == [False, True, False, False]
    assert ds.attrs["units"] == "g CO2e/kWh" and ds.attrs["retrieved_at"] == "2024-05-01T06:00:00"


def test_forecasts_carry_issue_times_and_an_index_stays_an_index():
    issued = pd.DatetimeIndex(["2024-05-01T00:00", "2024-05-01T00:05"])
    ds = signal_dataset(np.full((2, 4), 55.0), TIMES, "CAISO_NORTH", "marginal_emissions", "percent",
                        provider="watttime", issued_at=issued, index=True)
    assert ds["value"].dims == ("issued_at", "time", "zone") and ds.attrs["units"] == "percent"
    with pytest.raises(SignalRangeError, match="outside \\[0, 100\\]"):
        signal_dataset(np.full((2, 4), 155.0), TIMES, "CAISO_NORTH", "marginal_emissions", "percent",
                       provider="watttime", issued_at=issued, index=True)


@pytest.mark.parametrize("values, units, kind, message", [
    ([321.5e3, 1, 1, 1], "gCO2eq/kWh", "carbon_intensity", r"321500 g CO2e/kWh at 2024-05-01T00:00:00 in f.csv row 2"),
    ([0.5, 1.2, 0.1, 0.1], "1", "renewable_share", r"1.2 1 at 2024-05-01T01:00:00"),
    ([1, 1, -5, 1], "MW", "curtailment", r"-5 MW at 2024-05-01T02:00:00"),
    ([1, 1, 1, np.inf], "gCO2eq/kWh", "carbon_intensity", r"inf g CO2e/kWh at 2024-05-01T03:00:00"),
])
def test_values_outside_physical_ranges_name_where(values, units, kind, message):
    with pytest.raises(SignalRangeError, match=message):
        signal_dataset(values, TIMES, "ES", kind, units, provider="file", where="f.csv row 2")


def test_the_contract_rejects_bad_layouts():
    ds = signal_dataset([1, 2, 3, 4], TIMES, "ES", "carbon_intensity", "g/kWh", provider="file")
    with pytest.raises(SignalFormatError, match="times must be unique"):
        check_signal(ds.isel(time=[1, 0, 2, 3]))
    with pytest.raises(SignalFormatError, match="no 'estimated'"):
        check_signal(ds.drop_vars("estimated"))
    with pytest.raises(SignalFormatError, match="kind 'moer'"):
        check_signal(ds.assign_attrs(kind="moer"))
    with pytest.raises(SignalFormatError, match=r"shape \(3,\)"):
        signal_dataset([1, 2, 3], TIMES, "ES", "carbon_intensity", "g/kWh", provider="file")


def test_errors_name_provider_endpoint_zone_and_never_a_secret():
    key = "sk-live-0123456789abcdef"
    err = SignalRateLimited(f"429 from https://api.example/v3/forecast?token={key}", retry_after=30.0,
                            provider="watttime", endpoint=f"/v3/forecast?token={key}", zone="CAISO_NORTH",
                            secrets=[key])
    text = str(err) + repr(err) + err.endpoint
    assert key not in text and "***" in str(err)
    assert str(err).startswith("provider watttime, endpoint /v3/forecast?token=***, zone CAISO_NORTH: 429")
    assert isinstance(err, SignalError) and err.retry_after == 30.0


class _Constant:
    """A provider of a constant carbon intensity: the smallest GridSignal."""

    name = "constant"

    def __init__(self, value: float = 300.0) -> None:
        self.value = value

    def kinds(self) -> tuple[str, ...]:
        return ("carbon_intensity",)

    def _series(self, zone: str, times: pd.DatetimeIndex) -> xr.Dataset:
        return signal_dataset(np.full(len(times), self.value), times, zone, "carbon_intensity", "g/kWh",
                              provider=self.name)

    def latest(self, zone, kind=None):
        return self._series(zone, pd.DatetimeIndex([pd.Timestamp("2024-05-01")]))

    def history(self, zone, start, end, kind=None):
        return self._series(zone, pd.date_range(start, end, freq="h", inclusive="left"))

    def forecast(self, zone, horizon, issued_before=None, kind=None):
        return self._series(zone, pd.date_range("2024-05-01", periods=int(horizon / pd.Timedelta(hours=1)), freq="h"))


def test_registry_builds_providers_by_name():
    register_signal("test-constant", _Constant, replace=True)
    signal = get_signal("test-constant", value=250.0)
    assert isinstance(signal, GridSignal) and "test-constant" in known_signals()
    assert float(signal.history("ES", "2024-05-01", "2024-05-01T03:00")["value"].mean()) == 250.0
    with pytest.raises(ValueError, match="already registered"):
        register_signal("test-constant", _Constant)
    with pytest.raises(KeyError, match="no grid signal named 'nope'"):
        get_signal("nope")
    register_signal("test-broken", lambda: object(), replace=True)
    with pytest.raises(TypeError, match="not a GridSignal"):
        get_signal("test-broken")
