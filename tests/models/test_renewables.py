"""The renewables model family: the design contract, learners, shrinkage, lead-calibrated quantiles, rolling
origin without leakage, and selection over folds."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from carbonsync.models.renewables import (
    LEARNERS,
    Design,
    DesignError,
    RenewablesConfig,
    RenewablesError,
    RenewablesModel,
    build_learner,
    monthly_origins,
    register_learner,
    rmse,
    rolling_origin,
    select,
)

LEADS = np.arange(1, 25)


def synthetic(days: int = 120, seed: int = 0, signal: float = 0.2, noise_per_lead: float = 0.004,
              start: str = "2021-01-01") -> Design:
    """Daily issues at 00 UTC, leads 1-24: y = prior + signal * sin(3 x) + noise growing with lead."""
    rng = np.random.default_rng(seed)
    issue = np.repeat(pd.date_range(start, periods=days, freq="D"), len(LEADS))
    lead = np.tile(LEADS, days)
    x = rng.uniform(-1, 1, len(issue))
    prior = rng.uniform(0.2, 0.8, len(issue))
    y = prior + signal * np.sin(3 * x) + rng.normal(0, noise_per_lead * lead)
    frame = pd.DataFrame({"issue_time": issue, "time": issue + pd.to_timedelta(lead, "h"), "lead_h": lead,
                          "zone": "Z", "x": x, "noise": rng.normal(size=len(issue)), "prior_cf": prior, "cf": y})
    return Design(frame, ("cf",), ("x", "noise"), {"cf": (0.0, 1.0)}, source="synthetic")


def test_design_names_what_breaks_the_contract():
    frame = synthetic(days=3).frame
    with pytest.raises(DesignError, match=r"lacks column\(s\) \['prior_share'\]"):
        Design(frame, ("share",), ("x",))
    bad = frame.assign(lead_h=frame["lead_h"] + 1)
    with pytest.raises(DesignError, match="lead_h is not time - issue_time"):
        Design(bad, ("cf",), ("x",))
    early = frame.assign(time=frame["issue_time"] - pd.Timedelta(hours=1), lead_h=-1)
    with pytest.raises(DesignError, match="is before its issue"):
        Design(early, ("cf",), ("x",))
    Design(frame.assign(time=frame["issue_time"], lead_h=0).drop_duplicates(["issue_time", "zone"]), ("cf",), ("x",))
    with pytest.raises(DesignError, match="repeats"):
        Design(pd.concat([frame, frame.iloc[:1]]), ("cf",), ("x",))
    with pytest.raises(DesignError, match="are keys or targets"):
        Design(frame, ("cf",), ("x", "cf"))
    with pytest.raises(DesignError, match="infinite"):
        Design(frame.assign(x=np.inf), ("cf",), ("x",))


def test_learners_are_chosen_by_name_and_unknown_names_are_refused():
    assert {"prior", "ridge", "lightgbm", "mlp"} <= set(LEARNERS)
    with pytest.raises(RenewablesError, match="unknown learner 'forest'"):
        build_learner("forest")
    register_learner("mean_residual", MeanResidual)
    try:
        model = RenewablesModel(RenewablesConfig(learner="mean_residual", shrink=False)).fit(synthetic(days=40))
        assert model.describe()["targets"]["cf"]["learner"] == "mean_residual"
    finally:
        del LEARNERS["mean_residual"]


class MeanResidual:
    def fit(self, x, y, sample_weight=None):
        self.mean = float(np.mean(y))
        return self

    def predict(self, x):
        return np.full(len(x), self.mean)

    def state(self):
        return {"mean": np.array([self.mean])}

    def load_state(self, arrays):
        self.mean = float(arrays["mean"][0])
        return self


@pytest.mark.parametrize("learner", ["ridge", "lightgbm", "mlp"])
def test_the_learned_part_corrects_the_prior_out_of_sample(learner):
    train, test = synthetic(days=120, seed=1), synthetic(days=30, seed=2, start="2021-06-01")
    model = RenewablesModel(RenewablesConfig(learner=learner)).fit(train)
    predicted = model.predict(test)["cf"].to_numpy()
    gain = 1 - rmse(test.observed("cf"), predicted) / rmse(test.observed("cf"), test.prior("cf"))
    assert gain > (0.05 if learner == "ridge" else 0.2)        # ridge sees only the linear part of sin(3x)
    assert predicted.min() >= 0.0 and predicted.max() <= 1.0   # the target's bounds


def test_prior_learner_returns_the_prior_and_shrinkage_rejects_a_useless_correction():
    train, test = synthetic(days=90, seed=3, signal=0.0), synthetic(days=20, seed=4, signal=0.0, start="2021-06-01")
    prior_only = RenewablesModel(RenewablesConfig(learner="prior")).fit(train).predict(test)
    np.testing.assert_allclose(prior_only["cf"], np.clip(test.prior("cf"), 0, 1))
    shrunk = RenewablesModel(RenewablesConfig(learner="lightgbm", params={"min_child_samples": 5})).fit(train)
    raw = RenewablesModel(RenewablesConfig(learner="lightgbm", params={"min_child_samples": 5}, shrink=False)).fit(train)
    assert shrunk.parts["cf"].scale < 0.5 and raw.parts["cf"].scale == 1.0
    y = test.observed("cf")
    assert rmse(y, shrunk.predict(test)["cf"].to_numpy()) < rmse(y, raw.predict(test)["cf"].to_numpy())


def test_quantiles_are_calibrated_in_each_lead_bucket_and_widen_with_lead():
    config = RenewablesConfig(learner="ridge", levels=(0.1, 0.5, 0.9), lead_edges_h=(6, 12, 18))
    model = RenewablesModel(config).fit(synthetic(days=200, seed=5, signal=0.0, noise_per_lead=0.003))
    test = synthetic(days=100, seed=6, signal=0.0, noise_per_lead=0.003, start="2022-01-01")
    out = model.predict(test)
    y, lead = test.observed("cf"), test.lead_h
    widths = []
    for low, high in ((1, 6), (7, 12), (13, 18), (19, 24)):
        rows = (lead >= low) & (lead <= high)
        inside = np.mean((y[rows] >= out["cf_q0.1"][rows]) & (y[rows] <= out["cf_q0.9"][rows]))
        assert 0.72 < inside < 0.88, (low, high, inside)
        widths.append(float(np.mean(out["cf_q0.9"][rows] - out["cf_q0.1"][rows])))
    assert widths == sorted(widths) and widths[-1] > 2.5 * widths[0]
    assert (out["cf_q0.1"] <= out["cf_q0.5"]).all() and (out["cf_q0.5"] <= out["cf_q0.9"]).all()


def test_inactive_rows_return_the_prior_for_point_and_quantiles():
    design = synthetic(days=60, seed=7)
    frame = design.frame.assign(active=design.frame["lead_h"] % 2 == 0)
    design = Design(frame, design.targets, design.features, design.bounds)
    out = RenewablesModel(RenewablesConfig(learner="ridge")).fit(design).predict(design)
    off = ~design.active("cf")
    np.testing.assert_allclose(out["cf"][off], design.prior("cf")[off])
    np.testing.assert_allclose(out["cf_q0.9"][off], design.prior("cf")[off])
    # a target's own column wins over the shared one
    own = Design(frame.assign(active_cf=True), design.targets, design.features, design.bounds)
    assert own.active("cf").all()


class TimeRecorder:
    """A learner that records the latest target time it was trained on (passed as a feature)."""

    seen: list[float] = []

    def fit(self, x, y, sample_weight=None):
        TimeRecorder.seen.append(float(x["time_h"].max()))
        return self

    def predict(self, x):
        return np.zeros(len(x))


def test_rolling_origin_fits_each_block_only_on_rows_observed_before_it():
    design = synthetic(days=120, seed=8)
    hours = (design.times - pd.Timestamp("2021-01-01")) / pd.Timedelta(hours=1)
    design = Design(design.frame.assign(time_h=np.asarray(hours, float)), design.targets, ("x", "time_h"),
                    design.bounds)
    register_learner("time_recorder", TimeRecorder)
    TimeRecorder.seen.clear()
    try:
        origins = monthly_origins("2021-03-01", "2021-05-01")
        out = rolling_origin(design, lambda: RenewablesModel(RenewablesConfig(learner="time_recorder")), origins)
    finally:
        del LEARNERS["time_recorder"]
    final_fits = TimeRecorder.seen[1::2]                      # each fit: calibration part, then all rows
    for origin, seen in zip(origins[:-1], final_fits, strict=True):
        assert seen < (origin - pd.Timestamp("2021-01-01")) / pd.Timedelta(hours=1)
    issued = pd.DatetimeIndex(out["issue_time"])
    assert issued.min() == pd.Timestamp("2021-03-01") and issued.max() < pd.Timestamp("2021-05-01")
    assert sorted(out["fold"].unique()) == [0, 1]
    with pytest.raises(RenewablesError, match="at least one whole month"):
        monthly_origins("2021-03-05", "2021-03-20")


def test_select_prefers_the_learner_when_it_helps_and_the_prior_when_nothing_can_be_learned():
    origins = monthly_origins("2021-03-01", "2021-05-01")
    candidates = [RenewablesConfig(learner="prior"), RenewablesConfig(learner="lightgbm")]
    chosen, report = select(synthetic(days=120, seed=9), candidates, origins)
    assert chosen["cf"].learner == "lightgbm"
    scores = report["targets"]["cf"]["candidates"]
    assert len(scores[0]["fold_scores"]) == 2 and scores[1]["mean"] < scores[0]["mean"]
    constant = synthetic(days=120, seed=9, signal=0.0)
    flat = constant.with_prior("cf", constant.observed("cf"))   # a perfect prior: nothing to learn
    chosen, _ = select(flat, candidates, origins)
    assert chosen["cf"].learner == "prior"


def test_config_refuses_levels_and_buckets_out_of_order():
    with pytest.raises(RenewablesError, match="levels"):
        RenewablesConfig(levels=(0.9, 0.1))
    with pytest.raises(RenewablesError, match="lead_edges_h"):
        RenewablesConfig(lead_edges_h=(12, 6))
    with pytest.raises(RenewablesError, match="not fitted"):
        RenewablesModel().predict(synthetic(days=3))


@pytest.mark.parametrize("learner", ["prior", "ridge", "lightgbm", "mlp"])
def test_a_fitted_model_round_trips_through_json_and_arrays_with_identical_predictions(learner):
    train, test = synthetic(days=60, seed=5), synthetic(days=10, seed=6, start="2021-06-01")
    model = RenewablesModel(RenewablesConfig(learner=learner, params={"epochs": 3} if learner == "mlp" else {}))
    meta, arrays = model.fit(train).state()
    json.dumps(meta)  # plain JSON, and only numeric or byte arrays: nothing that needs pickle
    assert all(isinstance(v, np.ndarray) and v.dtype != object for v in arrays.values())
    restored = RenewablesModel.from_state(json.loads(json.dumps(meta)), {k: v.copy() for k, v in arrays.items()})
    pd.testing.assert_frame_equal(restored.predict(test), model.predict(test))
    assert restored.describe() == model.describe()


def test_a_state_that_lacks_an_array_is_refused_by_name():
    meta, arrays = RenewablesModel(RenewablesConfig(learner="ridge")).fit(synthetic(days=40)).state()
    del arrays["cf/learner.coef"]
    with pytest.raises(RenewablesError, match=r"lacks array\(s\) \['coef'\]"):
        RenewablesModel.from_state(meta, arrays)
    with pytest.raises(RenewablesError, match="not fitted"):
        RenewablesModel().state()
