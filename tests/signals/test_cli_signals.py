"""`carbonsync signals list|show|fetch`: recordings, the forecast store and a live provider on loopback."""

from __future__ import annotations

import re

import pandas as pd
import pytest
import xarray as xr
from pytest_httpserver import HTTPServer

from carbonsync.cli import main
from tests.helpers.portal import portal_rows, write_portal

KEY = "em-CLI-PLANTED-KEY-77c1"


@pytest.fixture
def traces(tmp_path):
    (tmp_path / "traces").mkdir()
    write_portal(tmp_path / "traces" / "ES_2021.csv", portal_rows("2021-01-01 00:00", 72))
    return tmp_path / "traces"


def test_list_names_providers_and_formats(capsys):
    assert main(["signals", "list"]) == 0
    out = capsys.readouterr().out
    listed = out.splitlines()[0].removeprefix("providers: ").split(", ")
    assert {"caiso", "carbonsync", "electricitymaps", "entsoe", "file", "watttime"} <= set(listed)
    assert "  dacf: DACF balancing-area files" in out


def test_show_history_of_a_recording_with_a_plot(traces, tmp_path, capsys):
    figure = tmp_path / "es.png"
    code = main(["signals", "show", "--provider", "file", "--path", str(traces), "--zone", "spain",
                 "--start", "2021-01-02", "--end", "2021-01-02T06:00", "--plot", str(figure)])
    out = capsys.readouterr().out
    assert code == 0 and "carbon_intensity in g CO2e/kWh from electricitymaps-file" in out
    assert "6 value(s), 2021-01-02 00:00:00 to 2021-01-02 05:00:00; 0 estimated" in out
    assert re.search(r"2021-01-02 05:00:00\s+ES\s+129\s+False", out) and figure.stat().st_size > 5000


def test_fetch_saves_csv_and_netcdf_as_of_a_replay_time(traces, tmp_path, capsys):
    out_csv, out_nc = tmp_path / "share.csv", tmp_path / "share.nc"
    args = ["signals", "fetch", "--provider", "file", "--path", str(traces), "--zone", "ES", "--kind",
            "renewable_share", "--horizon", "3h", "--at", "2021-01-02T10:30"]
    assert main([*args, "--out", str(out_csv)]) == 0 and main([*args, "--out", str(out_nc)]) == 0
    assert "renewable_share in fractions (1) from replay:electricitymaps-file, persistence" in capsys.readouterr().out
    table = pd.read_csv(out_csv, parse_dates=["issued_at", "time"])
    assert (table["issued_at"] == pd.Timestamp("2021-01-02 10:30")).all() and table["estimated"].all()
    assert table["time"].iloc[0] == pd.Timestamp("2021-01-02 10:00")   # after the last hour published at 10:00
    with xr.open_dataset(out_nc) as saved:
        assert saved.attrs["kind"] == "renewable_share" and saved["value"].dims == ("issued_at", "time", "zone")
        assert list(saved["value"].values[0, :, 0]) == list(table["value"])


@pytest.mark.parametrize("args, message", [
    (["--provider", "file", "--zone", "ES"], "--provider file needs --path"),
    (["--provider", "nowhere", "--zone", "ES"], "no grid signal named 'nowhere'; known: caiso"),
    (["--provider", "watttime", "--zone", "caiso", "--at", "2021-01-01"], "--at replays a recording"),
])
def test_bad_requests_are_one_line_errors(args, message, capsys):
    assert main(["signals", "show", *args]) == 1
    err = capsys.readouterr().err
    assert "carbonsync: error: " in err and message in err and "Traceback" not in err


def test_an_unknown_output_suffix_writes_nothing(traces, tmp_path, capsys):
    out = tmp_path / "x.parquet"
    assert main(["signals", "fetch", "--provider", "file", "--path", str(traces), "--zone", "ES",
                 "--out", str(out)]) == 1
    assert "must end in .nc or .csv" in capsys.readouterr().err and not list(tmp_path.glob("x.parquet*"))


def test_a_live_provider_on_loopback_and_its_key_never_printed(httpserver: HTTPServer, monkeypatch, capsys):
    monkeypatch.setenv("ELECTRICITYMAPS_API_KEY", KEY)
    now = pd.Timestamp.now("UTC").floor("h").tz_localize(None)
    httpserver.expect_request("/v3/carbon-intensity/latest", headers={"auth-token": KEY}).respond_with_json(
        {"zone": "ES", "carbonIntensity": 123.0, "datetime": now.isoformat() + ".000Z", "isEstimated": True})
    assert main(["signals", "show", "--provider", "electricitymaps", "--zone", "spain",
                 "--base-url", httpserver.url_for("")]) == 0
    out = capsys.readouterr().out
    assert "1 value(s)" in out and "123" in out and "1 estimated" in out
    httpserver.clear()
    httpserver.expect_request("/v3/carbon-intensity/latest").respond_with_data(f"bad token {KEY}", status=401)
    assert main(["-v", "signals", "show", "--provider", "electricitymaps", "--zone", "ES",
                 "--base-url", httpserver.url_for("")]) == 1
    captured = capsys.readouterr()
    assert "HTTP 401" in captured.err and KEY not in captured.err + captured.out
