"""earth2studio interop: a trained SFNO package as a prognostic model, a canonical store as a data source.

With these two, earth2studio's workflows run CarbonSync models on CarbonSync data, offline::

    from earth2studio.io import ZarrBackend
    from earth2studio.run import deterministic

    model = CarbonSyncPrognostic.from_package("runs/x/packages/backbone")
    data = CanonicalStoreSource("data/canonical.zarr")
    deterministic(["2024-03-01T00:00"], 20, model, data, ZarrBackend("forecast.zarr"))

:class:`CarbonSyncPrognostic` follows earth2studio's ``PrognosticModel`` protocol the way its own models do
(``input_coords``/``output_coords`` with ``batch``, ``time``, ``lead_time``, ``variable``, ``lat``, ``lon``;
``__call__`` steps once; ``create_iterator`` yields the initial state then each step, calling ``front_hook``
and ``rear_hook`` around every step as ``PrognosticMixin`` does). Variables carry earth2studio's names
(``u100m``, ``v100m``, ``z500``, ``tcc``, ``t2m``), tensors are in physical units: the wrapper normalises and
denormalises with the package's statistics and computes the cos-zenith forcing at each step's valid time
(``time + lead_time``). Both ``__call__`` (one raw step) and ``create_iterator`` step through
:func:`carbonsync.forecast.chain.rollout_states`, the rollout :class:`carbonsync.forecast.rollout.Forecaster`
runs, on the chain part :class:`~carbonsync.forecast.chain.PackagePrognostic`: when the package carries a
damping toward climatology, ``create_iterator`` yields damped states exactly as the Forecaster reports them,
while the model steps its own undamped state. Coordinates are checked with earth2studio's handshakes at every
call and every step of the iterator.

earth2studio is imported only when these objects are used (its import takes many seconds); a missing
installation raises an ImportError that says ``pip install 'carbonsync[earth2studio]'``.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd
import torch
import xarray as xr

from carbonsync.core.errors import CarbonSyncError
from carbonsync.core.optional import optional_import
from carbonsync.data import lexicon
from carbonsync.data.store import open_canonical
from carbonsync.data.validation import WeatherDataError, check_times, validate_weather
from carbonsync.forecast import chain
from carbonsync.forecast.chain import PackagePrognostic, PrognosticModel, load_part
from carbonsync.models.inputs import FORCINGS
from carbonsync.models.package import ModelPackage, PackageError, load_package
from carbonsync.physics.grid import Grid

__all__ = ["CanonicalStoreSource", "CarbonSyncPrognostic", "CoordinateError", "e2s_names", "canonical_names"]

SOURCE = "earth2studio"  # the lexicon's source key for earth2studio names
SUPPORTED_FORCING = tuple(FORCINGS)
CoordSystem = OrderedDict  # earth2studio.utils.type.CoordSystem: OrderedDict[str, np.ndarray]


class CoordinateError(CarbonSyncError, ValueError):
    """Tensor coordinates that do not fit what a CarbonSync model expects."""


def _e2s(module: str) -> ModuleType:
    return optional_import(module, "earth2studio")


# --- names ----------------------------------------------------------------------------------------------


def e2s_names(channels: Iterable[str]) -> list[str]:
    """earth2studio names of canonical ``channels`` (``u100`` -> ``u100m``)."""
    return [lexicon.source_name(str(c), SOURCE) for c in channels]


def _e2s_to_canonical() -> dict[str, str]:
    return {v.aliases[SOURCE]: v.name for v in lexicon.VARIABLES.values() if SOURCE in v.aliases}


def canonical_names(variables: Iterable[str]) -> list[str]:
    """Canonical names of earth2studio ``variables`` (``u100m`` -> ``u100``); canonical names pass through."""
    table = _e2s_to_canonical()
    out = []
    for v in variables:
        v = str(v)
        if v in table:
            out.append(table[v])
        elif v in lexicon.VARIABLES:
            out.append(v)
        else:
            raise lexicon.LexiconError(
                f"earth2studio variable '{v}' has no CarbonSync name; known: {', '.join(sorted(table))}"
            )
    return out


# --- prognostic model -----------------------------------------------------------------------------------


def _dt64(hours: float) -> np.timedelta64:
    if float(hours).is_integer():
        return np.timedelta64(int(hours), "h")
    return np.timedelta64(int(round(hours * 3600)), "s")


def _describe(values: np.ndarray) -> str:
    values = np.asarray(values)
    if values.size == 0:
        return "none"
    if values.dtype.kind in "fiu" and values.size > 4:
        return f"{values.size} values from {values[0]:g} to {values[-1]:g}"
    return str(values.tolist() if values.dtype.kind != "m" else [str(v) for v in values])


class CarbonSyncPrognostic(torch.nn.Module):
    """A CarbonSync SFNO model package as an earth2studio prognostic model (one ``dt_hours`` step per call).

    Build it with :meth:`from_package`. It is a ``torch.nn.Module`` (``.to(device)`` moves the network) and
    has ``PrognosticMixin``'s ``front_hook``/``rear_hook`` attributes: assign ``f(x, coords) -> (x, coords)``
    to act on the state before/after every step of :meth:`create_iterator`.
    """

    def __init__(self, package: ModelPackage) -> None:
        super().__init__()
        where = f" '{package.path}'" if package.path else ""
        if package.kind != "sfno":
            raise PackageError(f"package{where} holds a '{package.kind}' model; only 'sfno' backbones are prognostic")
        if package.output_channels != package.channels:
            raise PackageError(
                f"package{where} predicts {package.output_channels} from {package.channels}; a prognostic model "
                "must predict its own input channels"
            )
        unsupported = [f for f in package.forcing_channels if f not in SUPPORTED_FORCING]
        if unsupported:
            raise PackageError(
                f"package{where} needs forcing {unsupported}; the earth2studio wrapper computes only {SUPPORTED_FORCING}"
            )
        self.package = package
        self.prognostic: PackagePrognostic = load_part(package, PrognosticModel)
        self.model = package.model  # a submodule, so .to(device) moves it
        self.channels = package.channels
        self.variables = np.array(e2s_names(self.channels))
        self.grid: Grid = package.grid
        self.dt = _dt64(package.dt_hours)

    @classmethod
    def from_package(cls, path: str | Path, map_location: str | torch.device = "cpu") -> CarbonSyncPrognostic:
        """Load the SFNO package at ``path`` (see :func:`carbonsync.models.package.load_package`)."""
        return cls(load_package(path, map_location=map_location))

    def __str__(self) -> str:
        name = self.package.path.name if self.package.path else "package"
        return f"carbonsync_sfno({name})"

    # PrognosticMixin's hooks (identity by default), without importing earth2studio at class creation
    def _default_hook(self, x: torch.Tensor, coords: CoordSystem) -> tuple[torch.Tensor, CoordSystem]:
        return x, coords

    front_hook = _default_hook
    rear_hook = _default_hook

    # -- coordinates

    def input_coords(self) -> CoordSystem:
        """``batch``, ``time`` (free), ``lead_time`` [0 h], ``variable`` (earth2studio names), ``lat``, ``lon``."""
        return OrderedDict(
            batch=np.empty(0),
            time=np.empty(0),
            lead_time=np.array([np.timedelta64(0, "h")]),
            variable=self.variables.copy(),
            lat=self.grid.lat,
            lon=self.grid.lon,
        )

    def output_coords(self, input_coords: CoordSystem) -> CoordSystem:
        """The coordinates one step after ``input_coords`` (lead time + ``dt``); raises CoordinateError if they do not fit."""
        wrapped = _e2s("earth2studio.models.batch").batch_coords()(CarbonSyncPrognostic._output_coords)
        return wrapped(self, input_coords)

    def _output_coords(self, input_coords: CoordSystem) -> CoordSystem:
        self.check_coords(input_coords)
        out = self.input_coords()
        out["batch"] = input_coords["batch"]
        out["time"] = input_coords["time"]
        out["lead_time"] = input_coords["lead_time"] + self.dt
        return out

    def check_coords(self, coords: CoordSystem) -> None:
        """Check batch-compressed ``coords`` with earth2studio's handshakes; CoordinateError says what differs."""
        utils = _e2s("earth2studio.utils.coords")
        expected = self.input_coords()
        test = OrderedDict(coords)
        if "lead_time" in test and len(test["lead_time"]):
            test["lead_time"] = np.asarray(test["lead_time"]) - np.asarray(test["lead_time"])[-1]
        for i, key in enumerate(expected):
            if key == "batch":
                continue
            try:
                utils.handshake_dim(test, key, i)
            except (KeyError, ValueError) as err:
                raise CoordinateError(
                    f"{self}: expected dims {tuple(expected)}, got {tuple(coords)} ({err})"
                ) from None
            if key == "time":
                continue
            try:
                utils.handshake_coords(test, expected, key)
            except (KeyError, ValueError) as err:
                raise CoordinateError(f"{self}: {self._mismatch(key, np.asarray(coords[key]))} ({err})") from None

    def _mismatch(self, key: str, got: np.ndarray) -> str:
        if key == "variable":
            want = self.variables.tolist()
            names = [str(v) for v in got]
            missing = [v for v in want if v not in names]
            unexpected = [v for v in names if v not in want]
            detail = ", ".join(
                part for part in (f"missing {missing}" if missing else "",
                                  f"unexpected {unexpected}" if unexpected else "") if part
            ) or "order differs"
            return f"variables {names} do not fit the package's {want} (earth2studio names of {self.channels}): {detail}"
        if key == "lead_time":
            return f"the model takes one lead time (no history), got {_describe(got)}"
        expected = getattr(self.grid, key)
        return f"'{key}' has {_describe(got)}; the package's grid {self.grid.attr()} has {_describe(expected)}"

    # -- stepping: both entry points run carbonsync.forecast.chain.rollout_states, the Forecaster's rollout

    def valid_times(self, coords: CoordSystem) -> pd.DatetimeIndex:
        """``time + lead_time`` of the (single) lead time for each time in ``coords``."""
        return pd.DatetimeIndex(np.asarray(coords["time"]) + np.asarray(coords["lead_time"])[-1])

    def _flat(self, x: torch.Tensor, coords: CoordSystem) -> tuple[torch.Tensor, pd.DatetimeIndex]:
        """The normalised state ``(B*T, C, H, W)`` of batch-compressed ``x`` and the valid time of each row."""
        shape = tuple(len(v) for v in coords.values())
        if tuple(x.shape) != shape:
            raise CoordinateError(f"{self}: tensor of shape {tuple(x.shape)} does not fit its coords {shape}")
        b, t, _, c, h, w = x.shape
        state = self.prognostic.normalise(x.reshape(b * t, c, h, w).to(torch.float32))
        valid = pd.DatetimeIndex(np.tile(self.valid_times(coords).values, b))  # b-major, as the reshape
        return state, valid

    def _unflat(self, state: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return self.prognostic.denormalise(state).reshape(like.shape).to(like.dtype)

    @torch.no_grad()
    def _forward(self, x: torch.Tensor, coords: CoordSystem) -> tuple[torch.Tensor, CoordSystem]:
        out_coords = self.output_coords(coords)
        state, valid = self._flat(x, coords)
        *_, (_, _, y) = chain.rollout_states(self.prognostic, state, valid, 1, damped=False)
        return self._unflat(y, x), out_coords

    def __call__(self, x: torch.Tensor, coords: CoordSystem) -> tuple[torch.Tensor, CoordSystem]:  # type: ignore[override]
        """One raw step (no damping): the state ``dt`` after ``x`` (dims ``[..., time, lead_time, variable, lat, lon]``)."""
        wrapped = _e2s("earth2studio.models.batch").batch_func()(CarbonSyncPrognostic._forward)
        return wrapped(self, x, coords)

    def _hook(self, name: str) -> Callable[[torch.Tensor, CoordSystem], tuple[torch.Tensor, CoordSystem]] | None:
        hook = getattr(self, name)
        return None if getattr(hook, "__func__", None) is CarbonSyncPrognostic._default_hook else hook

    @torch.no_grad()
    def _default_generator(self, x: torch.Tensor, coords: CoordSystem) -> Iterator[tuple[torch.Tensor, CoordSystem]]:
        coords = coords.copy()
        self.output_coords(coords)  # check before yielding anything
        state, valid = self._flat(x, coords)
        current = {"coords": coords}  # the coordinates of the state being stepped, advanced by the hooks below

        def run_hook(name: str, s: torch.Tensor) -> torch.Tensor:
            hook = self._hook(name)
            if hook is None:
                return s
            y, hooked = hook(self._unflat(s, x), current["coords"])
            if tuple(y.shape) != tuple(x.shape) or any(
                    not np.array_equal(np.asarray(hooked[k]), np.asarray(current["coords"][k])) for k in ("time", "lead_time")):
                raise CoordinateError(f"{self}: the {name} may change the state's values, not its shape or times")
            current["coords"] = hooked
            return self.prognostic.normalise(y.reshape(state.shape).to(torch.float32))

        def before(s: torch.Tensor, k: int) -> torch.Tensor:
            s = run_hook("front_hook", s)
            current["coords"] = self.output_coords(current["coords"])  # each step's coordinates checked
            return s

        steps = chain.rollout_states(self.prognostic, state, valid, None, damped=True, before_step=before,
                                     after_step=lambda s, k: run_hook("rear_hook", s))
        next(steps)
        yield x, coords
        for _, _, reported in steps:
            yield self._unflat(reported, x), current["coords"].copy()

    def create_iterator(self, x: torch.Tensor, coords: CoordSystem) -> Iterator[tuple[torch.Tensor, CoordSystem]]:
        """Yield the initial state, then the state after each successive step (hooks around each step).

        The steps are :func:`carbonsync.forecast.chain.rollout_states`, the rollout of
        :meth:`carbonsync.forecast.rollout.Forecaster.rollout`: yielded states are damped toward climatology
        when the package carries a damping, while the model steps its own undamped state.
        """
        wrapped = _e2s("earth2studio.models.batch").batch_func()(CarbonSyncPrognostic._default_generator)
        yield from wrapped(self, x, coords)


# --- data source ----------------------------------------------------------------------------------------


def _naive_utc(t: Any) -> pd.Timestamp:
    ts = pd.Timestamp(t)
    return ts.tz_convert("UTC").tz_localize(None) if ts.tzinfo is not None else ts


def _times(time: Any) -> pd.DatetimeIndex:
    if isinstance(time, str | datetime | np.datetime64 | pd.Timestamp):
        time = [time]
    return pd.DatetimeIndex([_naive_utc(t) for t in np.asarray(time, dtype=object).ravel()]).as_unit("ns")


class CanonicalStoreSource:
    """An earth2studio ``DataSource`` over a CarbonSync canonical store (a path) or canonical ``xr.Dataset``.

    ``source(time, variable)`` takes earth2studio variable names (canonical names are accepted too) and
    returns an ``xr.DataArray`` (time, variable, lat, lon) in float32 with the names as asked. A variable or
    time the store lacks raises a KeyError (LexiconError) or WeatherDataError naming it.
    """

    def __init__(self, store: str | Path | xr.Dataset) -> None:
        if isinstance(store, xr.Dataset):
            validate_weather(store, check_values=False, what="canonical dataset")
            self.ds, self.where = store, "canonical dataset"
        else:
            self.ds, self.where = open_canonical(store), f"canonical store '{store}'"
        self.times = check_times(self.ds["time"], self.where)

    def __repr__(self) -> str:
        return f"CanonicalStoreSource({self.where}, variables={list(map(str, self.ds.data_vars))})"

    def __call__(self, time: Any, variable: str | Sequence[str] | np.ndarray) -> xr.DataArray:
        names = [variable] if isinstance(variable, str) else [str(v) for v in np.asarray(variable).ravel()]
        canonical = canonical_names(names)
        absent = [f"'{n}'" + (f" (CarbonSync '{c}')" if c != n else "")
                  for n, c in zip(names, canonical, strict=True) if c not in self.ds.data_vars]
        if absent:
            raise lexicon.LexiconError(
                f"{self.where} has no variable {', '.join(absent)}; it has {', '.join(map(str, self.ds.data_vars))}"
            )
        times = _times(time)
        missing = times[self.times.get_indexer(times) < 0]
        if len(missing):
            raise WeatherDataError(
                f"{self.where} has no data at {', '.join(t.isoformat() for t in missing[:5])}"
                f"{' ...' if len(missing) > 5 else ''}; it covers {self.times[0].isoformat()} to {self.times[-1].isoformat()}"
            )
        data = [self.ds[c].sel(time=times.values).astype(np.float32).reset_coords(drop=True) for c in canonical]
        da = xr.concat(data, dim="variable", coords="minimal", compat="override", join="exact")
        da = da.assign_coords(time=times.values, variable=np.array(names)).transpose("time", "variable", "lat", "lon")
        da.name = None
        da.attrs = {}
        return da.load()

    async def fetch(self, time: Any, variable: str | Sequence[str] | np.ndarray) -> xr.DataArray:
        """Async form of ``__call__`` (the DataSource protocol's ``fetch``); reads are local, so it just calls it."""
        return self(time, variable)
