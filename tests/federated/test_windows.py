"""Curtailment windows: config checks, hysteresis, off-delay, provisioning, the forecast skip, records."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from carbonsync.core.errors import ConfigError
from carbonsync.federated.windows import (
    SiteInterval,
    SitePlan,
    SiteWindows,
    WindowConfig,
    oracle_forecast,
    signal_forecast,
    signal_series,
    site_plan,
)
from carbonsync.signals import ReplayClock, SignalRangeError, open_recording
from tests.helpers import requires_shared_data, shared_data_dir

DAY = "2024-05-01"


def at(hhmm: str) -> pd.Timestamp:
    return pd.Timestamp(f"{DAY}T{hhmm}")


def five_minutes(*values: float) -> pd.Series:
    """``values`` labelled every 5 minutes from midnight (naive UTC)."""
    return pd.Series(values, index=pd.date_range(DAY, periods=len(values), freq="5min"), dtype=float)


def spans(plan: SitePlan) -> list[tuple[str, str, str]]:
    """The plan's intervals as ``(HH:MM, HH:MM, state)``, easy to compare by hand."""
    return [(i.start.strftime("%H:%M"), i.end.strftime("%H:%M"), i.state) for i in plan.intervals]


# ------------------------------------------------------------------------------------- config


@pytest.mark.parametrize("options, field", [
    ({"on_level": 150.0, "off_level": 100.0}, "on_level=150.0"),                          # below: on > off inverted
    ({"direction": "above", "on_level": 100.0, "off_level": 150.0}, "on_level=100.0"),    # above: on < off inverted
    ({"direction": "sideways"}, "direction=sideways"),
    ({"off_delay_s": -1.0}, "off_delay_s=-1.0"),
    ({"provisioning_s": -5}, "provisioning_s=-5"),
    ({"min_train_s": -0.5}, "min_train_s=-0.5"),
    ({"on_level": float("nan")}, "on_level=nan"),
    ({"off_level": True}, "off_level=True"),
])
def test_window_config_errors_name_the_field(options, field):
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        WindowConfig(**options)


def test_window_config_accepts_a_band_on_either_side():
    assert WindowConfig(on_level=80, off_level=120).record()["direction"] == "below"
    above = WindowConfig(direction="above", on_level=500, off_level=300)
    assert above.clean(501) and not above.clean(500) and above.dirty(299) and not above.dirty(300)
    below = WindowConfig(on_level=80, off_level=120)
    assert below.clean(79) and not below.clean(80) and below.dirty(121) and not below.dirty(120)


def test_use_forecast_needs_a_forecast():
    with pytest.raises(ConfigError, match="use_forecast"):
        SiteWindows(WindowConfig(use_forecast=True))


# ------------------------------------------------------------------------------------- the state machine


def test_hysteresis_enters_below_on_level_and_leaves_above_off_level():
    cfg = WindowConfig(on_level=100, off_level=150, off_delay_s=600, provisioning_s=300)
    #                    00:00 00:05 00:10 00:15 00:20 00:25 00:30 00:35 00:40
    plan = site_plan("a", five_minutes(200, 120, 90, 120, 140, 160, 200, 200, 200), cfg)
    # 120 at 00:05 lies between the levels: it does not enter; 120 and 140 at 00:15/00:20 do not leave
    assert plan.band == [(at("00:10"), at("00:25"))]
    assert spans(plan) == [("00:10", "00:15", "provisioning"), ("00:15", "00:25", "train"), ("00:25", "00:35", "idle")]
    assert plan.skipped == []
    assert plan.state_at(at("00:05")) == "off" and not plan.in_band(at("00:05"))
    assert plan.state_at(at("00:12")) == "provisioning"
    assert plan.state_at(at("00:20")) == "train" and plan.in_band(at("00:20"))
    assert plan.state_at(at("00:25")) == "idle" and not plan.in_band(at("00:25"))   # [start, end)
    assert plan.state_at(at("00:35")) == "off" and plan.state_at(at("00:40")) == "off"
    assert plan.provisioned() == [(at("00:10"), at("00:35"))]


def test_a_dip_shorter_than_the_off_delay_keeps_the_node():
    cfg = WindowConfig(off_delay_s=600, provisioning_s=300)          # on = off = 100
    #                    00:00 00:05 00:10 00:15 00:20 00:25 00:30
    plan = site_plan("a", five_minutes(50, 50, 200, 200, 50, 50, 50), cfg)
    assert plan.band == [(at("00:00"), at("00:10")), (at("00:20"), at("00:35"))]
    assert spans(plan) == [("00:00", "00:05", "provisioning"), ("00:05", "00:10", "train"),
                           ("00:10", "00:20", "idle"), ("00:20", "00:35", "train")]
    assert plan.provisioned() == [(at("00:00"), at("00:35"))]        # one node, provisioned once


def test_a_dip_as_long_as_the_off_delay_releases_the_node():
    cfg = WindowConfig(off_delay_s=600, provisioning_s=300)
    #                    00:00 00:05 00:10 00:15 00:20 00:25 00:30 00:35
    plan = site_plan("a", five_minutes(50, 50, 200, 200, 200, 50, 50, 50), cfg)
    assert spans(plan) == [("00:00", "00:05", "provisioning"), ("00:05", "00:10", "train"), ("00:10", "00:20", "idle"),
                           ("00:25", "00:30", "provisioning"), ("00:30", "00:40", "train")]
    assert plan.provisioned() == [(at("00:00"), at("00:20")), (at("00:25"), at("00:40"))]
    assert plan.state_at(at("00:22")) == "off"


def test_the_machine_reports_its_events_in_order():
    machine = SiteWindows(WindowConfig(off_delay_s=600, provisioning_s=300))
    events = [machine.update(t, v) for t, v in five_minutes(200, 50, 50, 200, 200, 200, 200).items()]
    assert events == [[], ["window_open", "provision"], ["ready"], ["window_close"], [], ["release"], []]


def test_provisioning_takes_provisioning_s_even_between_labels():
    cfg = WindowConfig(provisioning_s=420)                           # 7 minutes: ready between two labels
    plan = site_plan("a", five_minutes(200, 50, 50, 50, 50), cfg)
    assert spans(plan) == [("00:05", "00:12", "provisioning"), ("00:12", "00:25", "train")]
    provisioning = plan.intervals[0]
    assert provisioning.seconds == 420.0


def test_a_window_that_closes_while_provisioning_leaves_the_node_idle_once_ready():
    cfg = WindowConfig(off_delay_s=600, provisioning_s=600)
    #                    00:00 00:05 00:10 00:15 00:20 00:25
    plan = site_plan("a", five_minutes(200, 50, 200, 200, 200, 200), cfg)
    assert plan.band == [(at("00:05"), at("00:10"))]
    # out of band since 00:10: ready at 00:15, released at 00:20 (600 s after the band closed)
    assert spans(plan) == [("00:05", "00:15", "provisioning"), ("00:15", "00:20", "idle")]


def test_zero_provisioning_trains_at_once():
    plan = site_plan("a", five_minutes(200, 50, 50, 200), WindowConfig(provisioning_s=0, off_delay_s=0))
    assert spans(plan) == [("00:05", "00:15", "train")]


def test_a_missing_value_keeps_the_band_as_it_was():
    plan = site_plan("a", five_minutes(50, np.nan, 50, np.nan, 200), WindowConfig(provisioning_s=300))
    assert plan.band == [(at("00:00"), at("00:20"))]
    assert spans(plan)[:2] == [("00:00", "00:05", "provisioning"), ("00:05", "00:20", "train")]


def test_the_last_value_holds_until_end():
    plan = site_plan("a", five_minutes(200, 50, 50), WindowConfig(provisioning_s=300), end=at("01:00"))
    assert plan.band == [(at("00:05"), at("01:00"))]
    assert spans(plan) == [("00:05", "00:10", "provisioning"), ("00:10", "01:00", "train")]


def test_an_empty_series_names_the_site():
    with pytest.raises(ConfigError, match="site 'north'"):
        site_plan("north", pd.Series([], index=pd.DatetimeIndex([]), dtype=float), WindowConfig())


def test_curtailment_mw_is_clean_above_the_on_level():
    cfg = WindowConfig(direction="above", on_level=500, off_level=300, off_delay_s=600, provisioning_s=300)
    #                    00:00 00:05 00:10 00:15 00:20 00:25 00:30 00:35
    plan = site_plan("a", five_minutes(100, 400, 600, 450, 250, 250, 250, 250), cfg)
    assert plan.band == [(at("00:10"), at("00:20"))]                 # 400 does not enter, 450 does not leave
    assert spans(plan) == [("00:10", "00:15", "provisioning"), ("00:15", "00:20", "train"), ("00:20", "00:30", "idle")]


# ------------------------------------------------------------------------------------- the forecast skip

#             00:00 00:05 00:10 00:15 00:20 00:25 00:30 | 00:35 ... 01:10 (8 labels) | 01:15 ... 01:30
SHORT_THEN_LONG = five_minutes(200, 50, 50, 200, 200, 200, 200, *[50] * 8, 200, 200, 200, 200)


def test_the_forecast_skips_a_window_shorter_than_provisioning_plus_min_train():
    cfg = WindowConfig(off_delay_s=600, provisioning_s=300, min_train_s=600, use_forecast=True)
    plan = site_plan("a", SHORT_THEN_LONG, cfg, forecast=oracle_forecast(SHORT_THEN_LONG))
    # 00:05-00:15 lasts 600 s < 300 + 600: skipped; 00:35-01:15 lasts 2400 s: provisioned
    assert plan.band == [(at("00:05"), at("00:15")), (at("00:35"), at("01:15"))]
    assert plan.skipped, "the short window was not recorded as skipped"
    assert plan.skipped[0] == (at("00:05"), "forecast window shorter than provisioning")
    assert all(at("00:05") <= t < at("00:15") for t, _ in plan.skipped)
    assert spans(plan) == [("00:35", "00:40", "provisioning"), ("00:40", "01:15", "train"), ("01:15", "01:25", "idle")]
    assert plan.state_at(at("00:07")) == "off"


def test_without_the_forecast_the_short_window_is_provisioned():
    cfg = WindowConfig(off_delay_s=600, provisioning_s=300, min_train_s=600)
    plan = site_plan("a", SHORT_THEN_LONG, cfg)
    assert plan.skipped == []
    assert spans(plan)[:3] == [("00:05", "00:10", "provisioning"), ("00:10", "00:15", "train"), ("00:15", "00:25", "idle")]


def test_the_oracle_forecast_sees_the_horizon_ahead():
    forecast = oracle_forecast(SHORT_THEN_LONG, "15min")
    ahead = forecast(at("00:05"))
    assert list(ahead.index) == [at("00:05"), at("00:10"), at("00:15")]
    assert ahead.tolist() == [50.0, 50.0, 200.0]


# ------------------------------------------------------------------------------------- records and signals


def test_a_plan_record_round_trips_through_json():
    cfg = WindowConfig(off_delay_s=600, provisioning_s=300, min_train_s=600, use_forecast=True)
    plan = site_plan("a", SHORT_THEN_LONG, cfg, forecast=oracle_forecast(SHORT_THEN_LONG))
    record = json.loads(json.dumps(plan.record()))
    assert record["intervals"][0] == ["2024-05-01T00:35:00", "2024-05-01T00:40:00", "provisioning"]
    back = SitePlan.from_record(record)
    assert back == plan
    assert back.intervals[1] == SiteInterval(at("00:40"), at("01:15"), "train")
    record.pop("skipped")                                                  # older records have no skips
    assert SitePlan.from_record(record).skipped == []


def signal(zones: list[str], **dims) -> xr.Dataset:
    times = pd.date_range(DAY, periods=3, freq="5min")
    values = np.arange(3 * len(zones), dtype="float32").reshape(3, len(zones))
    return xr.Dataset({"value": (("time", "zone"), values)}, coords={"time": times, "zone": zones})


def test_signal_series_takes_one_zone_as_floats():
    series = signal_series(signal(["ES", "PT"]), "PT")
    assert series.name == "PT" and series.dtype == np.float64
    assert series.tolist() == [1.0, 3.0, 5.0]
    assert series.index[0] == pd.Timestamp(DAY)


def test_signal_series_names_an_unknown_zone():
    with pytest.raises(ConfigError, match="zone 'FR' is not in the signal .*ES, PT"):
        signal_series(signal(["ES", "PT"]), "FR")


def test_signal_series_refuses_a_forecast_dataset():
    ds = signal(["ES"]).expand_dims(issued_at=[pd.Timestamp(DAY)])
    with pytest.raises(ConfigError, match="not a forecast"):
        signal_series(ds, "ES")


# ------------------------------------------------------------------------------------- forecasts from a signal


class _IssuedForecasts:
    """A GridSignal's forecast(): a forecast issued every hour, predicting 50 g/kWh for the next 90 min."""

    def forecast(self, zone, horizon, issued_before=None, kind=None):
        issued = pd.Timestamp(issued_before).floor("h")
        if issued < pd.Timestamp("2024-05-01T01:00"):
            raise SignalRangeError("nothing issued yet", provider="test")
        times = pd.date_range(issued, issued + pd.Timedelta(minutes=85), freq="5min")
        values = np.where(times < issued + pd.Timedelta(minutes=90), 50.0, 500.0)[None, :, None]
        return xr.Dataset({"value": (("issued_at", "time", "zone"), values)},
                          coords={"issued_at": [issued], "time": times, "zone": [zone]})


def test_signal_forecast_gives_the_newest_issued_forecast_or_none():
    forecast = signal_forecast(_IssuedForecasts(), "caiso", "2h")
    assert forecast(pd.Timestamp("2024-05-01T00:30")) is None                  # none issued yet
    ahead = forecast(pd.Timestamp("2024-05-01T02:20"))
    assert ahead.index[0] == pd.Timestamp("2024-05-01T02:00") and len(ahead) == 18
    assert (ahead == 50.0).all()


@requires_shared_data
def test_signal_forecast_reads_wattimes_recorded_forecasts_causally():
    path = shared_data_dir() / "watttime" / "watttime2023_caiso-north.zip"
    if not path.exists():
        pytest.skip(f"{path} is missing")
    signal = open_recording(path, ReplayClock(pd.Timestamp("2030-01-01")))
    zone = str(signal.history("CAISO_NORTH", pd.Timestamp("2023-06-10"), pd.Timestamp("2023-06-10T01:00"))["zone"].values[0])
    t = pd.Timestamp("2023-06-10T12:02")
    ahead = signal_forecast(signal, zone, "1h")(t)
    assert ahead is not None and len(ahead) >= 6
    assert ahead.index[0] <= t + pd.Timedelta(minutes=10)                       # issued at or before t
    assert np.isfinite(ahead.to_numpy()).all()
