"""The schedulers' reader on the Icechunk forecast store: the newest covering init time, cached metadata per
snapshot, a fresh snapshot after each commit, pinned snapshots (tag or id), and the zone-slab cache."""

from __future__ import annotations

import icechunk
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from carbonsync.forecast.export import export_forecasts
from carbonsync.forecast.reader import (
    ForecastReader,
    committed_init_times,
    latest_forecast,
    latest_zone_forecast,
    open_forecast,
    reader_for,
)
from carbonsync.forecast.store import ForecastStoreError, history, tag_snapshot
from carbonsync.forecast.synthetic import synthetic_forecast
from tests.helpers.forecast_store import INITS, PROVENANCE


def test_latest_forecast_selects_newest_covering_init(tmp_path, reference):  # noqa: F811
    store = tmp_path / "fc.zarr"
    export_forecasts(store, INITS[:4], synthetic_forecast, PROVENANCE)   # 00, 06, 12, 18 UTC; 48 h leads
    fc = latest_forecast(store, ["sahara", "iberia"], "2020-08-25T20:00", "2020-08-26T08:00")
    assert fc.attrs["init_time"] == "2020-08-25 18:00:00"
    assert fc.attrs["snapshot_id"] == history(store)[0]["id"]
    assert dict(fc.sizes) == {"time": 13, "zone": 2} and list(fc.zone.values) == ["sahara", "iberia"]
    assert pd.Timestamp(fc.time.values[0]) == pd.Timestamp("2020-08-25T20:00")
    expected = reference["zones"].sel(init_time="2020-08-25T18:00", zone=["sahara", "iberia"])
    np.testing.assert_array_equal(fc["renewable_share"].values, expected["renewable_share"].values[2:15])
    assert fc["carbon_intensity"].attrs["units"] == "gCO2eq kWh-1"
    # a window starting before the newest init takes an older one; a window ending past every forecast fails
    assert latest_forecast(store, ["iberia"], "2020-08-25T07:00", "2020-08-26T12:00").attrs["init_time"] == \
        "2020-08-25 06:00:00"
    with pytest.raises(ForecastStoreError, match="covers"):
        latest_forecast(store, ["iberia"], "2020-08-25T07:00", "2020-08-27T12:00")
    q = latest_forecast(store, ["nordics"], "2020-08-26", "2020-08-26T03:00", products=["wind_cf_quantile"])
    assert q["wind_cf_quantile"].dims == ("quantile", "time", "zone") and q.sizes["quantile"] == 3
    np.testing.assert_array_equal(q["wind_cf_quantile"].values[:, :, 0], reference["zones"]["wind_cf_quantile"]
                                  .sel(init_time=INITS[3], zone="nordics").values[:, 6:10])
    g = latest_forecast(store, None, "2020-08-26", "2020-08-26T05:00", products=["ssrd", "t2m"], group="gridded")
    assert g["ssrd"].dims == ("time", "lat", "lon") and g.sizes["time"] == 6
    np.testing.assert_array_equal(g["t2m"].values, reference["gridded"]["t2m"].sel(init_time=INITS[3]).values[6:12])
    with pytest.raises(ForecastStoreError, match="nowhere"):
        latest_forecast(store, ["nowhere"])
    with pytest.raises(ForecastStoreError, match="no_such_product"):
        latest_forecast(store, ["iberia"], products=["no_such_product"])
    with pytest.raises(ForecastStoreError, match="before its start"):
        latest_forecast(store, ["iberia"], "2020-08-26", "2020-08-25")
    with pytest.raises(ForecastStoreError, match="'zones' or 'gridded'"):
        latest_forecast(store, ["iberia"], group="nope")
    # the compatibility name returns the same thing
    xr.testing.assert_identical(latest_zone_forecast(store, ["iberia"], "2020-08-26", "2020-08-26T04:00"),
                                latest_forecast(store, ["iberia"], "2020-08-26", "2020-08-26T04:00"))


def test_cached_reader_sees_each_new_commit(tmp_path):
    store = tmp_path / "fc.zarr"
    export_forecasts(store, INITS[:1], synthetic_forecast, PROVENANCE)
    assert latest_forecast(store, ["iberia"]).attrs["init_time"] == str(INITS[0])
    snapshot = reader_for(store).snapshot()
    assert reader_for(store).snapshot() is snapshot   # no new commit: no re-read
    export_forecasts(store, INITS[:2], synthetic_forecast, PROVENANCE)
    assert latest_forecast(store, ["iberia"]).attrs["init_time"] == str(INITS[1])
    assert reader_for(store).snapshot() is not snapshot
    assert list(reader_for(store).committed_init_times()) == list(INITS[:2])
    link = tmp_path / "link.zarr"
    link.symlink_to(store)
    assert reader_for(link) is reader_for(store)   # two names of one directory: one reader


def test_pinned_snapshot_and_tag_read_what_was_planned_on(tmp_path, reference):  # noqa: F811
    """A scheduler pins the snapshot (or tags it) it planned on; later commits do not change what it reads."""
    store = tmp_path / "fc.zarr"
    export_forecasts(store, INITS[:2], synthetic_forecast, PROVENANCE)
    planned = latest_forecast(store, ["iberia", "sahara"], "2020-08-25T12:00", "2020-08-26T00:00")
    assert planned.attrs["init_time"] == str(INITS[1])
    pinned_id = planned.attrs["snapshot_id"]
    assert tag_snapshot(store, "planned-run-1") == pinned_id
    with pytest.raises(ForecastStoreError, match="already has a tag"):
        tag_snapshot(store, "planned-run-1")
    export_forecasts(store, INITS[:4], synthetic_forecast, PROVENANCE)
    window = ("2020-08-25T12:00", "2020-08-26T00:00")
    assert latest_forecast(store, ["iberia", "sahara"], *window).attrs["init_time"] == str(INITS[2])
    for name in (pinned_id, "planned-run-1"):
        again = latest_forecast(store, ["iberia", "sahara"], *window, snapshot=name)
        xr.testing.assert_identical(again.drop_attrs(), planned.drop_attrs())
        assert again.attrs["snapshot_id"] == pinned_id
        assert committed_init_times(store, snapshot=name) == list(INITS[:2])
        assert list(open_forecast(store, "gridded", snapshot=name).init_time.values) == list(INITS[:2].values)
    with pytest.raises(ForecastStoreError, match="neither a tag"):
        latest_forecast(store, ["iberia"], snapshot="no-such-tag")
    # the same pin through icechunk and xarray alone
    repo = icechunk.Repository.open(icechunk.local_filesystem_storage(str(store)))
    session = repo.readonly_session(tag="planned-run-1")
    plain = xr.open_zarr(session.store, group="zones", consolidated=False)
    assert list(pd.DatetimeIndex(plain.init_time.values)) == list(INITS[:2])


def test_zone_slab_cache_returns_what_a_direct_read_returns(tmp_path):
    store = tmp_path / "fc.zarr"
    export_forecasts(store, INITS[:3], synthetic_forecast, PROVENANCE, workers=3)
    cached, direct = ForecastReader(store), ForecastReader(store, cache_bytes=0)
    for zones in (["iberia"], ["nordics", "north_sea"], ["north_sea", "iberia", "sahara", "nordics"], None):
        for window in ((None, None), ("2020-08-25T13:00", "2020-08-26T02:00")):
            products = ["wind_cf", "renewable_share_quantile", "carbon_intensity"]
            for _ in range(2):   # the second call is served from the cache
                xr.testing.assert_identical(cached.latest(zones, *window, products=products),
                                            direct.latest(zones, *window, products=products))
    assert cached._cache.nbytes > 0 and direct._cache is None
    small = ForecastReader(store, cache_bytes=2000)   # room for one 49 x 4 float64 slab (1568 bytes) at a time
    for name in ("wind_cf", "solar_cf", "wind_cf"):
        small.latest(["iberia"], products=[name])
    assert small._cache.nbytes == 1568 and list(small._cache._items)[0][1] == "wind_cf"


def test_reader_of_an_empty_or_missing_store(tmp_path):
    with pytest.raises(ForecastStoreError, match="does not exist"):
        latest_forecast(tmp_path / "missing.zarr", ["iberia"])
    empty = tmp_path / "empty.zarr"
    icechunk.Repository.create(icechunk.local_filesystem_storage(str(empty)))
    with pytest.raises(ForecastStoreError, match="no committed forecast yet"):
        latest_forecast(empty, ["iberia"])
    with pytest.raises(ForecastStoreError, match="no committed forecast yet"):
        open_forecast(empty)
