"""WattTime recordings from files: actuals, issued forecasts, the zip, and every bad file named."""

from __future__ import annotations

import zipfile

import numpy as np
import pandas as pd
import pytest

from carbonsync.signals import SignalFormatError, SignalRangeError
from carbonsync.signals.files import read_watttime_actuals, read_watttime_forecasts, watttime_recording
from carbonsync.signals.replay import ReplayClock
from tests.helpers import requires_shared_data, shared_data_dir

ACTUAL = "time,Caiso_North\n" + "".join(
    f"2023-06-08 {h:02d}:{m:02d}:00,{400 + h + m / 100:.2f}\n" for h in range(2) for m in range(0, 60, 5))


def _forecast_csv() -> str:
    rows = ["request_time,forecast_time,Caiso_North"]
    for r in pd.date_range("2023-06-08", periods=12, freq="5min"):
        for k in range(1, 4):
            rows.append(f"{r},{r + pd.Timedelta(minutes=5 * k)},{500 + k}")
    return "\n".join(rows) + "\n"


def _zip(tmp_path, actual: str = ACTUAL, forecast: str | None = None):
    path = tmp_path / "watttime2023_caiso-north.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("x_actual.csv", actual)
        archive.writestr("x_forecast.csv", forecast or _forecast_csv())
    return path


def test_actuals_and_forecasts_are_read_in_normalised_units(tmp_path):
    actual = read_watttime_actuals(ACTUAL.encode(), where="a.csv")
    assert actual.zone.values.tolist() == ["CAISO_NORTH"] and actual.sizes["time"] == 24
    assert actual.attrs["units"] == "g CO2e/kWh" and float(actual["value"][0, 0]) == 400.0
    lbs = read_watttime_actuals(ACTUAL.encode(), units="lbs_co2_per_mwh")
    np.testing.assert_allclose(lbs["value"].values, actual["value"].values * 0.45359237)
    archive = read_watttime_forecasts(_forecast_csv().encode())
    assert dict(archive.sizes) == {"issued_at": 12, "lead": 3, "zone": 1}
    assert (archive["time"].values[:, 0] - archive["issued_at"].values == np.timedelta64(5, "m")).all()


def test_a_recording_replays_its_issued_forecasts_causally(tmp_path):
    clock = ReplayClock("2023-06-08T00:31")
    signal = watttime_recording(_zip(tmp_path), clock)
    fc = signal.forecast("CAISO_NORTH", pd.Timedelta(minutes=30))
    assert pd.Timestamp(fc.issued_at.values[0]) == pd.Timestamp("2023-06-08T00:30")
    assert fc["value"].values.ravel().tolist() == [501.0, 502.0, 503.0]
    assert pd.Timestamp(signal.latest("caiso_north".upper()).time.values[0]) == pd.Timestamp("2023-06-08T00:25")


@pytest.mark.parametrize("content, message", [
    (ACTUAL.encode("utf-16"), "cannot be read as a UTF-8 CSV"),
    ("time,Caiso_North\n2023-06-08 00:00:00,Ölwert\n".encode("latin-1"), "cannot be read as a UTF-8 CSV"),
    (b"time,Caiso_North\n", "no data rows"),
    (ACTUAL.replace("Caiso_North", "Atlantis").encode(), "column 'Atlantis' is not a known WattTime region"),
    (ACTUAL.replace("2023-06-08 00:10:00", "yesterday").encode(), "column 'time' row 4: 'yesterday' is not a time"),
    (ACTUAL.replace("400.10", "4OO.1O").encode(), r"row 4: '4OO.1O' is not a number"),
    (ACTUAL.replace("2023-06-08 00:10:00", "2023-06-08 00:05:00").encode(), "00:05:00 appears twice"),
    (ACTUAL.replace("400.05", "400050.0").encode(), r"'a.csv' column 'Caiso_North' row 3: .*400050 g CO2e/kWh"),
])
def test_bad_actual_files_are_named(content, message):
    with pytest.raises((SignalFormatError, SignalRangeError), match=message):
        read_watttime_actuals(content, where="a.csv")


def test_bad_forecast_files_and_archives_are_named(tmp_path):
    bad_units = _forecast_csv().replace(",501", ",501000")
    with pytest.raises(SignalRangeError, match=r"'f.csv' column 'Caiso_North' row 2: 501000"):
        read_watttime_forecasts(bad_units.encode(), where="f.csv")
    backwards = _forecast_csv().replace("2023-06-08 00:05:00,501", "2023-06-07 23:00:00,501", 1)
    with pytest.raises(SignalFormatError, match="before its request_time"):
        read_watttime_forecasts(backwards.encode(), where="f.csv")
    with pytest.raises(SignalFormatError, match="must have columns request_time, forecast_time"):
        read_watttime_forecasts(ACTUAL.encode(), where="f.csv")
    good = _zip(tmp_path).read_bytes()
    (tmp_path / "truncated.zip").write_bytes(good[: len(good) // 2])
    with pytest.raises(SignalFormatError, match="truncated.zip' is not a readable zip archive"):
        watttime_recording(tmp_path / "truncated.zip", ReplayClock("2023-06-08"))
    with zipfile.ZipFile(tmp_path / "one.zip", "w") as archive:
        archive.writestr("x_actual.csv", ACTUAL)
    with pytest.raises(SignalFormatError, match="must hold one \\*_actual.csv and one \\*_forecast.csv"):
        watttime_recording(tmp_path / "one.zip", ReplayClock("2023-06-08"))
    with pytest.raises(SignalFormatError, match="does not exist"):
        read_watttime_actuals(tmp_path / "absent.csv")


@requires_shared_data
def test_the_shared_recording_is_served_causally():
    clock = ReplayClock("2023-06-09")
    signal = watttime_recording(shared_data_dir() / "watttime" / "watttime2023_caiso-north.zip", clock)
    rng = np.random.default_rng(0)
    for _ in range(25):
        clock.advance(pd.Timedelta(minutes=int(rng.integers(1, 600))))
        now = clock.now
        assert pd.Timestamp(signal.latest("CAISO_NORTH").time.values[0]) + pd.Timedelta(minutes=5) <= now
        fc = signal.forecast("CAISO_NORTH", pd.Timedelta(hours=1))
        assert pd.Timestamp(fc.issued_at.values[0]) < now and fc.attrs["method"] == "recorded forecast"
    moer = read_watttime_actuals(shared_data_dir() / "watttime" / "moer_4regions_2026-01-11.csv")
    assert moer.zone.values.tolist() == ["CAISO_NORTH", "SPP_TX", "NEM_SA", "DE"] and moer.sizes["time"] == 217
