"""Exploration for issue 15 (not a benchmark yet): post-process DACF's published day-ahead forecasts.

    pip install lightgbm      # not a dependency of the project yet
    CARBONSYNC_DATA_DIR=../shared/data python scripts/dacf_residual_experiment.py

For each DACF area, monthly rolling origin over Apr-Dec 2020 (each month predicted by a model fit on every
earlier month of 2020): LightGBM predicts the residual of the published forecast (truth - published) of the
wind+solar share and of the direct carbon intensity from the published values, yesterday's error and the last
3 days' mean error, the last observed values, lead, hour and the file's GFS columns. Prints, per area, our
share RMSE and CI MAPE against the published forecasts' on the same hours. Caveat: the GFS columns are the
00 UTC run of day D, published about 04-05 UTC, so they are not known at a 00 UTC issue; the model family of
issue 15 must move the issue time or drop them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from carbonsync.core.settings import data_dir
from carbonsync.data.observations.dacf import load_dacf_paths, products
from carbonsync.evaluate.dayahead import ci_mape, dayahead_targets, published, share_rmse

WEATHER = ["wind_speed_10m", "temperature", "dewpoint", "dswrf", "precipitation"]
PRODUCTS = ("wind_solar_share", "carbon_intensity")


def features(area, truth: pd.DataFrame, issued: pd.DataFrame, targets: pd.DataFrame) -> pd.DataFrame:
    t, issue = pd.DatetimeIndex(targets.time), pd.DatetimeIndex(targets.issue_time)
    out = pd.DataFrame(index=t)
    out["lead"], out["hour"] = targets.lead_h.to_numpy(), t.hour
    for col in PRODUCTS:
        error = truth[col] - issued[col]
        out[f"{col}_yesterday"] = truth[col].reindex(t - pd.Timedelta(days=1)).to_numpy()
        out[f"{col}_at_issue"] = truth[col].reindex(issue).to_numpy()
        out[f"{col}_published"] = issued[col].reindex(t).to_numpy()
        out[f"{col}_error_yesterday"] = error.reindex(t - pd.Timedelta(days=1)).to_numpy()
        out[f"{col}_error_3d"] = error.rolling(72).mean().reindex(issue).to_numpy()
    for name in WEATHER:
        out[name] = area.frame[name].reindex(t).to_numpy()
    return out


def main() -> None:
    import lightgbm as lgb

    for name, area in load_dacf_paths(data_dir() / "dacf").items():
        truth, issued = products(area.frame[area.generation_columns]), published(area)
        targets = dayahead_targets(pd.DatetimeIndex(truth.dropna().index))
        x = features(area, truth, issued, targets)
        months = pd.DatetimeIndex(targets.issue_time).month.to_numpy()
        predictions = {col: pd.Series(np.nan, index=x.index) for col in PRODUCTS}
        for month in range(4, 13):
            fit, score = months < month, months == month
            for col in PRODUCTS:
                residual = (truth[col].reindex(x.index) - x[f"{col}_published"]).to_numpy()
                ok = fit & np.isfinite(residual)
                model = lgb.LGBMRegressor(n_estimators=300, learning_rate=0.03, num_leaves=15, min_child_samples=40,
                                          subsample=0.8, subsample_freq=1, colsample_bytree=0.8, verbose=-1)
                model.fit(x[ok], residual[ok])
                predictions[col][score] = x[f"{col}_published"][score] + model.predict(x[score])
        held = x.index[months >= 4]
        ours_share = share_rmse(predictions["wind_solar_share"][held].clip(0, 1), truth["wind_solar_share"].reindex(held))
        ours_ci = ci_mape(predictions["carbon_intensity"][held], truth["carbon_intensity"].reindex(held))
        pub_share = share_rmse(issued["wind_solar_share"].reindex(held), truth["wind_solar_share"].reindex(held))
        pub_ci = ci_mape(issued["carbon_intensity"].reindex(held), truth["carbon_intensity"].reindex(held))
        print(f"{name}: share RMSE {ours_share:.4f} (published {pub_share:.4f}); CI MAPE {ours_ci:.2f} % "
              f"(published {pub_ci:.2f} %)")


if __name__ == "__main__":
    main()
