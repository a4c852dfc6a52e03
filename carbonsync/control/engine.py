"""The decision engine: price and carbon in, GREEN / YELLOW / RED out, with hysteresis, a minimum dwell time,
forecast awareness, a deadline guard and a plain-words reason for every decision. Pure: no I/O, no clock.

**Score.** ``score = alpha * price_norm + beta * carbon_norm`` (weights normalised to sum 1; a missing
signal drops out). Each ``*_norm`` is the current value's mid-rank percentile among that signal's values over
the past ``window`` (default a week): 0 the lowest of the week, 1 the highest. Thresholds therefore mean the
same in every market and unit (0.7 = "dearer/dirtier than 70 % of the past week"), whether the price is in
USD or EUR and the carbon signal average or marginal. With no history yet the norm is 0.5.

**States.** GREEN below ``green`` (full power), RED above ``red`` (pause, or minimum power when the profile
does not pause), YELLOW between (a power cap). Each threshold has a hysteresis band: RED is entered above
``red + band`` and left below ``red - band``; GREEN entered below ``green - band`` and left above
``green + band``. No state lasts less than ``min_dwell`` unless the deadline forces full power.

**Forecasts** (optional, ``Observation.forecast``): with a deadline, each decision solves a small programme
(:func:`cheapest_schedule`) over the forecast slots up to the deadline (the fraction of each slot in each state,
released once the work is done; energy weighed by price and carbon relative to their means over the past week;
the remaining work done in time) and takes
its first slot's state (receding horizon; reason ``forecast_plan``). Without a deadline, a pause is skipped
(capped instead) when the forecast says the spike ends within ``min_pause`` (pausing and resuming would cost
more than it saves), and a resume is skipped when the forecast says the dip ends within ``min_run``.

**Deadline.** A state other than GREEN is chosen only if, after holding it for ``max(min_dwell, interval)``
(the longest it can last before the next chance to change; the longest gap seen between decisions if that is
longer), the remaining work still fits before the deadline at full power, pause overhead included. So as long
as decisions come at least that often, a deadline that is feasible at the start is never missed.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.sparse import csr_array, hstack, identity, kron, vstack

from carbonsync.control.decision import Action, Decision, Reason, State
from carbonsync.core.errors import ConfigError

__all__ = ["Engine", "EngineConfig", "JobState", "Observation", "PowerProfile", "RollingHistory", "cheapest_schedule",
           "percentile"]

HOUR = pd.Timedelta(hours=1)


@dataclass(frozen=True)
class PowerProfile:
    """A job's power levels: the cap (W) and throughput (work units per hour) in each state.

    ``pause=True``: RED pauses the loop (throughput 0, the GPUs draw ``idle_w``) and costs ``pause_overhead_h``
    hours of full-power work per pause-resume cycle; ``pause=False``: RED runs at ``red_w`` and ``red_rate``.
    """

    green_w: float = 250.0
    green_rate: float = 1.0
    yellow_w: float = 175.0
    yellow_rate: float = 0.85
    red_w: float = 100.0
    red_rate: float = 0.0
    idle_w: float = 60.0
    pause: bool = True
    pause_overhead_h: float = 0.02

    def __post_init__(self) -> None:
        if not self.green_rate > 0:
            raise ConfigError(f"PowerProfile.green_rate={self.green_rate}: full power must make progress")
        if not 0 <= self.yellow_rate <= self.green_rate:
            raise ConfigError(f"PowerProfile.yellow_rate={self.yellow_rate}: must lie in [0, green_rate]")
        if self.pause_overhead_h < 0:
            raise ConfigError(f"PowerProfile.pause_overhead_h={self.pause_overhead_h}: must be >= 0")

    def watts(self, state: State) -> float:
        return {State.GREEN: self.green_w, State.YELLOW: self.yellow_w,
                State.RED: self.idle_w if self.pause else self.red_w}[state]

    def rate(self, state: State) -> float:
        return {State.GREEN: self.green_rate, State.YELLOW: self.yellow_rate,
                State.RED: 0.0 if self.pause else self.red_rate}[state]


@dataclass(frozen=True)
class EngineConfig:
    """Thresholds are on the score's [0, 1] scale (see the module docstring)."""

    alpha: float = 0.5                  # weight of the price
    beta: float = 0.5                   # weight of the carbon signal
    green: float = 0.35
    red: float = 0.65
    band: float = 0.05
    window: pd.Timedelta = field(default=pd.Timedelta(days=7))
    min_dwell: pd.Timedelta = field(default=pd.Timedelta(minutes=30))
    interval: pd.Timedelta = field(default=pd.Timedelta(minutes=5))   # the longest gap between decisions
    min_pause: pd.Timedelta = field(default=pd.Timedelta(hours=1))    # shorter spikes are capped, not paused
    min_run: pd.Timedelta = field(default=pd.Timedelta(hours=1))      # shorter dips do not resume a pause
    use_forecast: bool = True
    deadline_margin: pd.Timedelta = field(default=pd.Timedelta(0))

    def __post_init__(self) -> None:
        if self.alpha < 0 or self.beta < 0 or self.alpha + self.beta <= 0:
            raise ConfigError(f"EngineConfig.alpha={self.alpha}, beta={self.beta}: weights must be >= 0, not both 0")
        if not 0 <= self.green - self.band < self.green <= self.red < self.red + self.band <= 1:
            raise ConfigError(f"EngineConfig.green={self.green}, red={self.red}, band={self.band}: need "
                              "0 <= green - band < green <= red < red + band <= 1")
        for name in ("window", "min_dwell", "interval", "min_pause", "min_run", "deadline_margin"):
            if pd.Timedelta(getattr(self, name)) < pd.Timedelta(0):
                raise ConfigError(f"EngineConfig.{name}={getattr(self, name)}: must not be negative")
        if pd.Timedelta(self.interval) <= pd.Timedelta(0):
            raise ConfigError(f"EngineConfig.interval={self.interval}: must be positive")


@dataclass(frozen=True)
class Observation:
    """What the signals say at ``time``: the current ``price`` (currency/MWh) and ``carbon`` (g CO2e/kWh),
    either may be None, and optionally a ``forecast`` frame indexed by future times with ``price`` and/or
    ``carbon`` columns."""

    time: pd.Timestamp
    price: float | None = None
    carbon: float | None = None
    forecast: pd.DataFrame | None = None


@dataclass(frozen=True)
class JobState:
    """The job's ``remaining`` work (units of :class:`PowerProfile` rates) and ``deadline`` (None: none)."""

    remaining: float
    deadline: pd.Timestamp | None = None


def percentile(value: float, history: np.ndarray) -> float:
    """Mid-rank percentile of ``value`` in ``history`` (0.5 for an empty history)."""
    if history.size == 0:
        return 0.5
    below = np.count_nonzero(history < value)
    equal = np.count_nonzero(history == value)
    return float((below + 0.5 * equal) / history.size)


class RollingHistory:
    """Values of one signal over the past window."""

    def __init__(self, window: pd.Timedelta) -> None:
        self.window = pd.Timedelta(window)
        self.items: deque[tuple[pd.Timestamp, float]] = deque()

    def add(self, time: pd.Timestamp, value: float) -> None:
        self.items.append((time, value))
        while self.items and self.items[0][0] < time - self.window:
            self.items.popleft()

    def values(self) -> np.ndarray:
        return np.fromiter((v for _, v in self.items), float, len(self.items))


def cheapest_schedule(weight: np.ndarray, slot_h: np.ndarray, profile: PowerProfile, need: float, *,
                      release: bool = True) -> np.ndarray | None:
    """The cheapest way to do ``need`` work units in slots of ``slot_h`` hours, each slot's energy weighed by
    ``weight``: ``x[t, s]``, the fraction of slot ``t`` in GREEN, YELLOW, RED and (with ``release``) released.

    Released means the work is done and the GPUs are handed back, drawing nothing; a binary ``z[t]`` ("done by
    the end of slot t", non-decreasing) with ``z[t-1] <= x[t, released] <= z[t]`` makes it a suffix, so a pause
    draws ``idle_w`` only before completion and finishing early is a choice the programme can make. A mixed
    integer programme on HiGHS; None when the work does not fit."""
    states = (State.GREEN, State.YELLOW, State.RED)
    watts = np.array([*(profile.watts(s) for s in states), 0.0])
    rates = np.array([*(profile.rate(s) for s in states), 0.0])
    n, k = len(slot_h), len(watts)
    if not release:
        watts, rates, k = watts[:-1], rates[:-1], k - 1
    cost = (np.asarray(weight, float)[:, None] * watts[None, :] * np.asarray(slot_h, float)[:, None]).ravel()
    work = csr_array((np.asarray(slot_h, float)[:, None] * rates[None, :]).reshape(1, -1))
    one_each = kron(identity(n, format="csr"), csr_array(np.ones((1, k))), format="csr")
    if not release:
        solved = milp(cost, constraints=[LinearConstraint(work, need, np.inf), LinearConstraint(one_each, 1, 1)],
                      bounds=Bounds(0, 1))
        return solved.x.reshape(n, k) if solved.success else None
    pick = csr_array((np.ones(n), (np.arange(n), np.arange(n) * k + k - 1)), shape=(n, n * k))   # x[t, released]
    shift = csr_array((np.ones(n - 1), (np.arange(1, n), np.arange(n - 1))), shape=(n, n))     # z[t-1]
    zeros = csr_array((1, n))
    rows = vstack([hstack([work, zeros]), hstack([one_each, csr_array((n, n))]),
                   hstack([pick, -identity(n, format="csr")]), hstack([pick, -shift])], format="csr")
    lower = np.r_[need, np.ones(n), np.full(n, -np.inf), np.zeros(n)]
    upper = np.r_[np.inf, np.ones(n), np.zeros(n), np.full(n, np.inf)]
    solved = milp(np.r_[cost, np.zeros(n)], constraints=LinearConstraint(rows, lower, upper),
                  integrality=np.r_[np.zeros(n * k), np.ones(n)], bounds=Bounds(0, 1),
                  options={"mip_rel_gap": 1e-6})
    return solved.x[: n * k].reshape(n, k) if solved.success else None


class Engine:
    """Stateful: remembers the signals' recent values, the current state and when it was entered."""

    name = "engine"

    def __init__(self, config: EngineConfig | None = None, profile: PowerProfile | None = None) -> None:
        self.config, self.profile = config or EngineConfig(), profile or PowerProfile()
        self.history = {"price": RollingHistory(self.config.window), "carbon": RollingHistory(self.config.window)}
        self.state: State | None = None
        self.since: pd.Timestamp | None = None
        self.last: pd.Timestamp | None = None
        self.gap = pd.Timedelta(0)   # the longest gap seen between decisions (the guard assumes no longer)
        self.plan: pd.DataFrame | None = None   # the newest forecast plan (fraction of each slot per state)

    def observe(self, time: pd.Timestamp, price: float | None = None, carbon: float | None = None) -> None:
        """Add a past value to the normalisation history without deciding (warm-up from a signal's history)."""
        for name, value in (("price", price), ("carbon", carbon)):
            if value is not None and np.isfinite(value):
                self.history[name].add(pd.Timestamp(time), float(value))

    # ------------------------------------------------------------------ scores

    def _weights(self, price: float | None, carbon: float | None) -> tuple[float, float] | None:
        a = self.config.alpha if price is not None and np.isfinite(price) else 0.0
        b = self.config.beta if carbon is not None and np.isfinite(carbon) else 0.0
        return None if a + b == 0 else (a / (a + b), b / (a + b))

    def _score(self, price: float | None, carbon: float | None,
               histories: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[float | None, float | None, float | None]:
        """(score, price_norm, carbon_norm) against the current history (or ``histories``, read once by callers
        that score many values)."""
        weights = self._weights(price, carbon)
        if weights is None:
            return None, None, None
        prices, carbons = histories or (self.history["price"].values(), self.history["carbon"].values())
        pn = percentile(price, prices) if weights[0] > 0 else None
        cn = percentile(carbon, carbons) if weights[1] > 0 else None
        return weights[0] * (pn or 0.0) + weights[1] * (cn or 0.0), pn, cn

    def _forecast_scores(self, obs: Observation) -> pd.Series:
        if not self.config.use_forecast or obs.forecast is None or obs.forecast.empty:
            return pd.Series(dtype=float)
        frame = obs.forecast[obs.forecast.index > obs.time]
        histories = (self.history["price"].values(), self.history["carbon"].values())
        scores = [self._score(row.get("price"), row.get("carbon"), histories)[0] for _, row in frame.iterrows()]
        return pd.Series(scores, index=frame.index, dtype=float).dropna()

    # ------------------------------------------------------------------ states

    def _target(self, score: float) -> State:
        """The state the score asks for, with hysteresis around the current state."""
        c, current = self.config, self.state
        if current == State.RED:
            return State.RED if score >= c.red - c.band else (State.GREEN if score < c.green - c.band else State.YELLOW)
        if current == State.GREEN:
            return State.GREEN if score <= c.green + c.band else (State.RED if score > c.red + c.band else State.YELLOW)
        if score > c.red + c.band:
            return State.RED
        if score < c.green - c.band:
            return State.GREEN
        return State.YELLOW

    def _feasible(self, state: State, now: pd.Timestamp, job: JobState) -> tuple[bool, float | None]:
        """Whether holding ``state`` for the longest it can last still lets the job finish at full power;
        and the slack (hours) at full power from now."""
        if job.deadline is None:
            return True, None
        p, c = self.profile, self.config
        left_h = (pd.Timestamp(job.deadline) - now - pd.Timedelta(c.deadline_margin)) / HOUR
        resume = p.pause_overhead_h if (self.state == State.RED and p.pause) else 0.0
        slack = left_h - job.remaining / p.green_rate - resume
        if state == State.GREEN:
            return True, slack
        hold_h = max(pd.Timedelta(c.min_dwell), pd.Timedelta(c.interval), self.gap) / HOUR
        after = max(job.remaining - p.rate(state) * hold_h, 0.0)
        overhead = p.pause_overhead_h if (state == State.RED and p.pause) else resume
        return left_h - hold_h - after / p.green_rate - overhead >= 0, slack

    def _first(self, scores: pd.Series, test) -> pd.Timestamp | None:
        hits = scores[test(scores.to_numpy())]
        return None if hits.empty else pd.Timestamp(hits.index[0])

    def decide(self, obs: Observation, job: JobState) -> Decision:
        """The decision at ``obs.time`` (times must not go backwards)."""
        c, p, now = self.config, self.profile, pd.Timestamp(obs.time)
        if self.since is not None and now < self.since:
            raise ValueError(f"observation time {now} is before the current state's start {self.since}")
        if self.last is not None:
            self.gap = max(self.gap, now - self.last)
        self.last = now
        score, pn, cn = self._score(obs.price, obs.carbon)
        planned = self._plan(obs, job, now)
        self.observe(now, obs.price, obs.carbon)
        forecast = self._forecast_scores(obs)
        previous = self.state
        expected: pd.Timestamp | None = None
        if score is None:
            target, reason = State.GREEN, Reason.NO_SIGNAL
        else:
            target = self._target(score)
            reason = {State.GREEN: Reason.SCORE_BELOW_GREEN, State.YELLOW: Reason.SCORE_IN_BAND,
                      State.RED: Reason.SCORE_ABOVE_RED}[target]
            if previous is not None and target == previous and self._target_without_band(score) != previous:
                reason = Reason.HYSTERESIS
            if target == State.RED and previous != State.RED and p.pause and not forecast.empty:
                expected = self._first(forecast, lambda s: s < c.red - c.band)
                if expected is not None and expected - now < pd.Timedelta(c.min_pause):
                    target, reason = State.YELLOW, Reason.SPIKE_TOO_SHORT
            elif previous == State.RED and target != State.RED and not forecast.empty:
                expected = self._first(forecast, lambda s: s > c.red + c.band)
                if expected is not None and expected - now < pd.Timedelta(c.min_run):
                    target, reason = State.RED, Reason.DIP_TOO_SHORT
            elif target == State.RED and not forecast.empty:
                expected = self._first(forecast, lambda s: s < c.red - c.band)
            if planned is not None:
                target, reason, expected = planned[0], Reason.FORECAST_PLAN, planned[1]
        if previous is not None and target != previous and self.since is not None \
                and now - self.since < pd.Timedelta(c.min_dwell):
            target, reason = previous, Reason.DWELL
        feasible, slack = self._feasible(target, now, job)
        if not feasible:
            target, reason = State.GREEN, Reason.DEADLINE
        if previous is None:
            reason = Reason.START if reason not in (Reason.DEADLINE, Reason.NO_SIGNAL) else reason
        if target != previous:
            self.state, self.since = target, now
        action = Action.HOLD if target == previous else {State.GREEN: Action.BOOST, State.YELLOW: Action.CAP,
                                                          State.RED: Action.PAUSE}[target]
        power = {State.GREEN: p.green_w, State.YELLOW: p.yellow_w, State.RED: p.red_w}[target]
        decision = Decision(
            time=now, state=target, previous=previous, action=action, reason=reason, power_w=power,
            run=not (target == State.RED and p.pause), score=score,
            inputs={"price": obs.price, "carbon": obs.carbon, "price_norm": pn, "carbon_norm": cn},
            thresholds={"green": c.green, "red": c.red, "band": c.band},
            expected_change=expected, slack_h=slack,
        )
        return _with_sentence(decision)

    def _plan(self, obs: Observation, job: JobState, now: pd.Timestamp) -> tuple[State, pd.Timestamp | None] | None:
        """With a forecast and a deadline: :func:`cheapest_schedule` over the forecast slots up to the deadline
        (energy weighted by price and carbon relative to their means over the window, the remaining work done in
        time; released after completion only when the forecast reaches the deadline), solved anew at each decision;
        its first slot's state, and when the plan changes state. None without a forecast, a deadline or a price/carbon mean."""
        c, p = self.config, self.profile
        if not c.use_forecast or obs.forecast is None or obs.forecast.empty or job.deadline is None:
            return None
        deadline = pd.Timestamp(job.deadline) - pd.Timedelta(c.deadline_margin)
        future = obs.forecast[(obs.forecast.index > now) & (obs.forecast.index < deadline)]
        times = pd.DatetimeIndex([now, *future.index])
        if len(times) < 2:
            return None
        step = pd.Timedelta(np.median(np.diff(times.values)))
        weights = self._weights(obs.price, obs.carbon)
        if weights is None:
            return None
        cost = np.zeros(len(times))
        for w, name, current in ((weights[0], "price", obs.price), (weights[1], "carbon", obs.carbon)):
            if w == 0:
                continue
            history = self.history[name].values()
            mean = float(np.mean(history)) if history.size else float(current)
            if mean <= 0:
                return None
            values = future[name].to_numpy(float) if name in future else np.full(len(future), float(current))
            values = np.concatenate([[float(current)], np.where(np.isfinite(values), values, float(current))])
            with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
                cost += w * values / mean
        if not np.isfinite(cost).all():
            return None   # a mean too close to zero to weigh by
        slot_h = np.full(len(times), step / HOUR)
        slot_h[-1] = min(slot_h[-1], (deadline - times[-1]) / HOUR)
        left_h = (deadline - now) / HOUR
        resume = p.pause_overhead_h if (self.state == State.RED and p.pause) else 0.0
        need = job.remaining + resume * p.green_rate
        covered_h = float(slot_h.sum())
        if covered_h < left_h:   # the forecast ends before the deadline: plan its share of the work
            need *= covered_h / left_h
        x = cheapest_schedule(cost, slot_h, p, need, release=covered_h >= left_h - 1e-9)
        if x is None:
            return None   # infeasible: the deadline guard takes over
        self.plan = pd.DataFrame(x, index=times, columns=["green", "yellow", "red", "released"][: x.shape[1]])
        states = (State.GREEN, State.YELLOW, State.RED)
        chosen = [states[int(np.argmax(row[:3]))] for row in x]   # the first slot's own state, even if done in it
        done = x[:, 3] >= 0.5 if x.shape[1] == 4 else np.zeros(len(x), bool)
        later = [t for t, s, d in zip(times[1:], chosen[1:], done[1:], strict=True) if s != chosen[0] and not d]
        return chosen[0], (pd.Timestamp(later[0]) if later else None)

    def _target_without_band(self, score: float) -> State:
        c = self.config
        return State.RED if score > c.red else (State.GREEN if score < c.green else State.YELLOW)


def _pct(value: float | None) -> str:
    if value is None:
        return "n/a"
    n = round(100 * value)
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix} percentile"


def _with_sentence(d: Decision) -> Decision:
    """``d`` with its plain-words explanation."""
    at = f"{d.time:%Y-%m-%d %H:%M}"
    verb = {State.GREEN: "full power", State.YELLOW: f"capped at {d.power_w:.0f} W",
            State.RED: "paused" if not d.run else f"minimum power {d.power_w:.0f} W"}[d.state]
    parts = []
    if d.inputs.get("price") is not None:
        parts.append(f"price {d.inputs['price']:.1f} at the {_pct(d.inputs.get('price_norm'))} of the past week")
    if d.inputs.get("carbon") is not None:
        parts.append(f"carbon {d.inputs['carbon']:.0f} g/kWh at the {_pct(d.inputs.get('carbon_norm'))}")
    signals = "; ".join(parts) or "no signal"
    score = "no score" if d.score is None else f"score {d.score:.2f}"
    why = _why(d, score, verb)
    change = ""
    if d.state == State.RED and not d.run and d.expected_change is not None and d.reason != Reason.DIP_TOO_SHORT:
        change = f"; it expects to resume about {d.expected_change:%Y-%m-%d %H:%M}"
    slack = "" if d.slack_h is None else f" Deadline slack at full power: {d.slack_h:.1f} h."
    sentence = f"{at}: {verb} ({d.action.value}) because {why} [{signals}]{change}.{slack}"
    return replace(d, sentence=sentence)


def _why(d: Decision, score: str, verb: str) -> str:
    t, at = d.thresholds, (f"{d.expected_change:%H:%M}" if d.expected_change is not None else "?")
    if d.reason == Reason.START:
        return f"starting {verb}"
    if d.reason == Reason.SCORE_BELOW_GREEN:
        return f"{score} is below the green threshold {t['green']:.2f}"
    if d.reason == Reason.SCORE_ABOVE_RED:
        return f"{score} is above the red threshold {t['red']:.2f} (+ band {t['band']:.2f})"
    if d.reason == Reason.SCORE_IN_BAND:
        return f"{score} lies between green {t['green']:.2f} and red {t['red']:.2f}"
    if d.reason == Reason.HYSTERESIS:
        return f"{score} crossed a threshold but not its band of {t['band']:.2f}, so the state holds"
    if d.reason == Reason.DWELL:
        return f"{score} asks for a change, but the state has not lasted its minimum dwell time"
    if d.reason == Reason.SPIKE_TOO_SHORT:
        return f"{score} is above red, but the forecast ends the spike at {at}, too soon for a pause to pay off"
    if d.reason == Reason.DIP_TOO_SHORT:
        return f"{score} fell below red, but the forecast ends the dip at {at}, too soon to resume"
    if d.reason == Reason.FORECAST_PLAN:
        nxt = f"; the plan changes state at {at}" if d.expected_change is not None else ""
        return (f"the plan over the forecast to the deadline, weighing price and carbon against their weekly means, "
                f"puts this slot in {d.state.value} ({score}){nxt}")
    if d.reason == Reason.DEADLINE:
        return "the deadline leaves no slack for anything but full power"
    return "no price or carbon signal is available, so it runs at full power"
