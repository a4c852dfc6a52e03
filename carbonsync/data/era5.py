"""ERA5 in, canonical store out.

- :func:`open_arco` / :func:`open_wb2` open the ARCO-ERA5 and WeatherBench2 Zarr stores lazily (dask),
  select variables, times and a region, and normalise the layout (``lat`` north to south, ``lon`` 0..360).
- :func:`regrid` interpolates to a training :class:`~carbonsync.physics.grid.Grid` with periodic longitude
  and pole handling, staying lazy.
- :func:`prepare_canonical` chains lexicon → regrid → validation → canonical store → statistics.
- :func:`read_era5_file` reads local ERA5 NetCDF (old and new CDS layouts) and GRIB files.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import xarray as xr

from carbonsync.core import settings
from carbonsync.core.logs import on_terminal
from carbonsync.core.optional import optional_import
from carbonsync.data import lexicon
from carbonsync.data.store import compute_stats, write_canonical, write_stats
from carbonsync.data.validation import (
    CANONICAL_DIMS,
    WeatherDataError,
    _check_values,
    check_times,
    validate_weather,
)
from carbonsync.physics.grid import Grid, GridError

ARCO_ERA5_URL = "gs://gcp-public-data-arco-era5/ar/full_37-1h-0p25deg-chunk-1.zarr-v3"
WB2_ERA5_URL = "gs://weatherbench2/datasets/era5/1959-2023_01_10-6h-64x32_equiangular_conservative.zarr"
ENSEMBLE_DIM = "number"
REGRID_METHODS = ("linear", "nearest", "cubic")
POLE_METHODS = ("nearest", "mean")
LEVEL_DIMS = ("level", "isobaricInhPa", "pressure_level")
_LAT_NAMES = ("latitude", "lat")
_LON_NAMES = ("longitude", "lon")
_MAX_VARS_LISTED = 30

TimeSelection = slice | str | Sequence[Any] | None


class Region(NamedTuple):
    """A lat/lon box in degrees; as in :class:`~carbonsync.physics.zones.Zone`, ``lon_max`` may pass 360."""

    lat_min: float
    lat_max: float
    lon_min: float
    lon_max: float


# --------------------------------------------------------------------------------------------- Zarr sources


def open_arco(
    url_or_path: str | Path = ARCO_ERA5_URL,
    variables: Iterable[str] = ("u100", "v100", "t2m", "ssrd"),
    time: TimeSelection = None,
    region: Region | tuple[float, float, float, float] | Any | None = None,
    chunks: Mapping[str, int] | str | None = "auto",
    storage_options: Mapping[str, Any] | None = None,
) -> xr.Dataset:
    """Open ARCO-ERA5 lazily, keeping the ARCO variable names of the canonical ``variables``.

    Pressure-level variables keep their ``level`` dim, reduced to the levels requested. ``time`` is a
    slice, a single time or a list of times; ``region`` a :class:`Region` (or a Zone).
    """
    return _open_era5_zarr(url_or_path, "arco", variables, time, region, chunks, storage_options)


def open_wb2(
    url_or_path: str | Path = WB2_ERA5_URL,
    variables: Iterable[str] = ("t2m", "z500", "t850"),
    time: TimeSelection = None,
    region: Region | tuple[float, float, float, float] | Any | None = None,
    chunks: Mapping[str, int] | str | None = "auto",
    storage_options: Mapping[str, Any] | None = None,
) -> xr.Dataset:
    """Open a WeatherBench2 ERA5 store lazily; as :func:`open_arco` (WB2 latitudes come south to north)."""
    return _open_era5_zarr(url_or_path, "wb2", variables, time, region, chunks, storage_options)


def _open_era5_zarr(
    url_or_path: str | Path,
    source: str,
    variables: Iterable[str],
    time: TimeSelection,
    region: Any,
    chunks: Mapping[str, int] | str | None,
    storage_options: Mapping[str, Any] | None,
) -> xr.Dataset:
    what = f"{source.upper()} store '{url_or_path}'"
    ds = _open_zarr(url_or_path, chunks, storage_options)
    ds = _select_source_variables(ds, source, list(variables), what)
    ds = _normalise_layout(ds, what)
    ds = select_time(ds, time, what)
    if region is not None:
        ds = select_region(ds, region, what)
    ds.attrs.update(source=source, source_path=str(url_or_path))
    return ds


def _open_zarr(
    url_or_path: str | Path, chunks: Mapping[str, int] | str | None, storage_options: Mapping[str, Any] | None
) -> xr.Dataset:
    """Open a local or remote (fsspec URL) Zarr store; remote filesystems are imported only when used."""
    url = str(url_or_path)
    protocol = url.split("://", 1)[0] if "://" in url else "file"
    chunks = dict(chunks) if isinstance(chunks, Mapping) else chunks
    if protocol == "file":
        path = Path(url.removeprefix("file://")).expanduser()
        if not path.exists():
            raise FileNotFoundError(f"Zarr store '{path}' does not exist")
        return xr.open_zarr(path, chunks=chunks)
    optional_import("fsspec", "era5")
    options = dict(storage_options or {})
    if protocol in ("gs", "gcs"):
        optional_import("gcsfs", "era5")
        options.setdefault("token", "anon")  # both public buckets allow anonymous reads
    return xr.open_zarr(url, chunks=chunks, storage_options=options)


def _level_dim(obj: xr.Dataset | xr.DataArray) -> str | None:
    return next((d for d in LEVEL_DIMS if d in obj.dims), None)


def _list_vars(ds: xr.Dataset) -> str:
    names = sorted(map(str, ds.data_vars))
    more = f" ... ({len(names)} in all)" if len(names) > _MAX_VARS_LISTED else ""
    return ", ".join(names[:_MAX_VARS_LISTED]) + more


def _select_source_variables(ds: xr.Dataset, source: str, variables: list[str], what: str) -> xr.Dataset:
    """Keep the source variables behind the canonical ``variables`` and only the levels they need."""
    if not variables:
        raise WeatherDataError(f"{what}: no variables requested")
    keep: list[str] = []
    levels: dict[str, set[float]] = {}
    for name in variables:
        var = lexicon.get(name)
        src = lexicon.source_name(name, source)
        if src not in ds.data_vars:
            raise WeatherDataError(
                f"{what}: variable '{name}' (called '{src}' in {source}) is missing; it has: {_list_vars(ds)}"
            )
        if src not in keep:
            keep.append(src)
        if var.level_hpa is None:
            continue
        dim = _level_dim(ds[src])
        if dim is None:
            raise WeatherDataError(
                f"{what}: variable '{name}' needs level {var.level_hpa} hPa but '{src}' has no level dim "
                f"(dims {tuple(ds[src].dims)})"
            )
        available = np.asarray(ds[dim].values, dtype=float)
        if not np.isclose(available, var.level_hpa).any():
            raise WeatherDataError(
                f"{what}: variable '{name}' needs level {var.level_hpa} hPa of '{src}'; "
                f"levels available: {ds[dim].values.tolist()}"
            )
        levels.setdefault(dim, set()).add(float(available[np.isclose(available, var.level_hpa)][0]))
    ds = ds[keep]
    for dim, wanted in levels.items():
        ds = ds.sel({dim: sorted(wanted)})
    return ds


def _normalise_layout(ds: xr.Dataset, what: str = "dataset") -> xr.Dataset:
    """``latitude/longitude`` → ``lat/lon``, lat north to south, lon in [0, 360) ascending, dims ordered."""
    renames = {}
    for names, target in ((_LAT_NAMES, "lat"), (_LON_NAMES, "lon")):
        found = next((n for n in names if n in ds.dims or n in ds.coords), None)
        if found is None:
            raise WeatherDataError(f"{what}: no {target} coordinate (looked for {', '.join(names)})")
        if found != target:
            renames[found] = target
    ds = ds.rename(renames)
    lon = np.mod(np.asarray(ds["lon"].values, dtype=float), 360.0)
    if not np.array_equal(lon, ds["lon"].values):
        ds = ds.assign_coords(lon=ds["lon"].copy(data=lon))
    if not ds.indexes["lon"].is_monotonic_increasing or ds.indexes["lon"].has_duplicates:
        _, first = np.unique(lon, return_index=True)  # sorted; drops 360 ≡ 0 and -180 ≡ 180 duplicates
        ds = ds.isel(lon=first)
    lat_index = ds.indexes["lat"]
    if not lat_index.is_monotonic_decreasing:
        ascending = lat_index.is_monotonic_increasing
        ds = ds.isel(lat=slice(None, None, -1)) if ascending else ds.sortby("lat", ascending=False)
    for coord, units in (("lat", "degrees_north"), ("lon", "degrees_east")):
        ds[coord].attrs.update(units=units, standard_name="latitude" if coord == "lat" else "longitude")
    leading = [d for d in (ENSEMBLE_DIM, "time") if d in ds.dims]
    return ds.transpose(*leading, ..., "lat", "lon")


def select_time(ds: xr.Dataset, time: TimeSelection, what: str = "dataset") -> xr.Dataset:
    """Select ``time`` (a slice, one time or a list) after checking that times are sorted and unique."""
    if "time" not in ds.dims:
        raise WeatherDataError(f"{what}: no 'time' dim (dims {tuple(ds.dims)})")
    index = check_times(ds["time"], what)
    if time is None:
        selected = ds
    elif isinstance(time, slice):
        selected = ds.sel(time=time)
    else:
        wanted = pd.DatetimeIndex(np.atleast_1d(np.asarray(time, dtype="datetime64[ns]")))
        missing = wanted.difference(index)
        if len(missing):
            raise WeatherDataError(
                f"{what}: {len(missing)} requested time(s) are not in the data, e.g. {missing[0].isoformat()}"
            )
        selected = ds.sel(time=wanted)
    if selected.sizes["time"] == 0:
        span = f"{index[0].isoformat()} to {index[-1].isoformat()}" if len(index) else "no times"
        raise WeatherDataError(f"{what}: time selection {time} selects no times; the data covers {span}")
    return selected


def _as_region(region: Any) -> Region:
    if all(hasattr(region, k) for k in Region._fields):
        region = tuple(getattr(region, k) for k in Region._fields)
    try:
        out = Region(*(float(v) for v in region))
    except (TypeError, ValueError):
        raise WeatherDataError(
            f"region {region!r} is neither (lat_min, lat_max, lon_min, lon_max) "
            "nor an object with those fields"
        ) from None
    if not (-90 <= out.lat_min <= out.lat_max <= 90) or not (0 <= out.lon_max - out.lon_min <= 360):
        raise WeatherDataError(
            f"region {tuple(out)}: need -90 <= lat_min <= lat_max <= 90 "
            "and lon_min <= lon_max <= lon_min + 360"
        )
    return out


def select_region(ds: xr.Dataset, region: Any, what: str = "dataset") -> xr.Dataset:
    """The grid points inside ``region`` (edges included); boxes across 0° E keep lon in 0..360 order."""
    box = _as_region(region)
    lat = np.asarray(ds["lat"].values, dtype=float)
    lon = np.asarray(ds["lon"].values, dtype=float)
    lat_in = np.flatnonzero((lat >= box.lat_min) & (lat <= box.lat_max))
    lon_in = np.flatnonzero(np.mod(lon - box.lon_min, 360.0) <= box.lon_max - box.lon_min)
    if not len(lat_in) or not len(lon_in):
        raise WeatherDataError(
            f"{what}: region {tuple(box)} contains no grid point (lat {lat.min():g}..{lat.max():g}, "
            f"lon {lon.min():g}..{lon.max():g})"
        )
    return ds.isel(lat=lat_in, lon=lon_in)


# ------------------------------------------------------------------------------------------------- regrid


def _is_dask(ds: xr.Dataset) -> bool:
    return any(v.chunks is not None for v in ds.data_vars.values())


def regrid(ds: xr.Dataset, grid: Grid, method: str = "linear", pole: str = "nearest") -> xr.Dataset:
    """Interpolate global ``ds`` (dims ``..., lat, lon``) to ``grid``, lazily when ``ds`` is dask-backed.

    Longitude is periodic (wrap columns are padded before interpolation). When the source stops short of
    a pole (e.g. WeatherBench2's offset grids), a pole row is added: a copy of the nearest row
    (``pole='nearest'``, right for vector components) or its zonal mean (``pole='mean'``, right for
    scalars).
    """
    if method not in REGRID_METHODS:
        raise ValueError(f"regrid method '{method}' is not one of {REGRID_METHODS}")
    if pole not in POLE_METHODS:
        raise ValueError(f"pole method '{pole}' is not one of {POLE_METHODS}")
    ds = _normalise_layout(ds, "regrid input")
    try:
        grid.check(ds)
        return ds.assign_coords(grid.coords()).assign_attrs(grid=grid.attr())
    except GridError:
        pass
    lat = np.asarray(ds["lat"].values, dtype=float)[::-1]  # ascending from here on
    lon = np.asarray(ds["lon"].values, dtype=float)
    _check_global(lat, lon)
    src = ds.isel(lat=slice(None, None, -1))
    src = _pad_poles(src, lat, pole)
    src = _pad_lon(src, lon, npad=2)
    if _is_dask(src):
        src = src.chunk({"lat": -1, "lon": -1})
    out = src.interp(lat=grid.lat, lon=grid.lon, method=method)
    for name, da in ds.data_vars.items():
        out[name] = out[name].astype(da.dtype, copy=False).transpose(*da.dims).assign_attrs(da.attrs)
    return out.assign_coords(grid.coords()).assign_attrs({**ds.attrs, "grid": grid.attr()})


def _check_global(lat: np.ndarray, lon: np.ndarray) -> None:
    if lon.size < 4 or lat.size < 3:
        raise WeatherDataError(f"regrid needs a global source; got {lat.size} lat x {lon.size} lon points")
    gaps = np.diff(np.append(lon, lon[0] + 360.0))
    if gaps.max() > 1.5 * np.median(gaps) + 1e-6:
        raise WeatherDataError(
            f"regrid needs longitudes around the globe; the source has a {gaps.max():g} degree gap after "
            f"lon {lon[int(np.argmax(gaps))]:g} (a regional source?)"
        )
    dlat = np.diff(lat).max()
    if 90.0 - lat[-1] > 1.5 * dlat or lat[0] + 90.0 > 1.5 * dlat:
        raise WeatherDataError(
            f"regrid needs latitudes from pole to pole; the source spans {lat[0]:g} to {lat[-1]:g}"
        )


def _pad_poles(src: xr.Dataset, lat: np.ndarray, pole: str) -> xr.Dataset:
    """Add rows at -90/+90 (lat ascending) where the source stops short of the pole."""
    parts = []
    for index, pole_lat in ((0, -90.0), (-1, 90.0)):
        if np.isclose(lat[index], pole_lat):
            parts.append(None)
            continue
        row = src.isel(lat=[index])
        if pole == "mean":
            row = xr.zeros_like(row) + row.mean("lon", keep_attrs=True)
        parts.append(row.assign_coords(lat=[pole_lat]))
    pieces = [p for p in (parts[0], src, parts[1]) if p is not None]
    return _concat(pieces, "lat") if len(pieces) > 1 else src


def _pad_lon(src: xr.Dataset, lon: np.ndarray, npad: int) -> xr.Dataset:
    """Periodic padding: the last ``npad`` columns before 0 (as lon - 360) and the first after 360."""
    npad = min(npad, lon.size)
    west = src.isel(lon=slice(-npad, None)).assign_coords(lon=lon[-npad:] - 360.0)
    east = src.isel(lon=slice(0, npad)).assign_coords(lon=lon[:npad] + 360.0)
    return _concat([west, src, east], "lon")


def _concat(pieces: list[xr.Dataset], dim: str) -> xr.Dataset:
    return xr.concat(pieces, dim=dim, data_vars="minimal", coords="minimal", compat="override", join="exact")


# ---------------------------------------------------------------------------------------- canonical store


@contextmanager
def _progress(enabled: bool) -> Iterator[None]:
    if not (enabled and on_terminal()):  # dask's bar redraws with carriage returns: a terminal only
        yield
        return
    from dask.diagnostics import ProgressBar

    with ProgressBar(minimum=1.0):
        yield


def prepare_canonical(
    source_ds: xr.Dataset,
    grid: Grid,
    variables: Iterable[str],
    out_path: str | Path,
    train_period: tuple[str, str],
    *,
    source: str | None = None,
    method: str = "linear",
    pole: str = "nearest",
    chunks: dict[str, int] | None = None,
    progress: bool = True,
) -> Path:
    """Canonicalise, regrid, validate and write ``source_ds`` to ``out_path`` with training-period stats.

    ``source`` defaults to ``source_ds.attrs['source']`` (set by :func:`open_arco` / :func:`open_wb2`).
    The statistics (``normalisation.json``) use ``train_period`` only. Returns ``out_path``.
    """
    variables = list(variables)
    source = source or source_ds.attrs.get("source")
    if source not in lexicon.SOURCES:
        raise WeatherDataError(f"source '{source}' is not one of {lexicon.SOURCES}; pass source=")
    what = f"{source} data"
    ds = _normalise_layout(source_ds, what)
    ds = lexicon.to_canonical(ds, source, variables, level_dim=_level_dim(ds) or "level")
    extra = sorted(set(map(str, ds.dims)) - set(CANONICAL_DIMS))
    if extra:
        raise WeatherDataError(
            f"{what}: unexpected dim(s) {extra} after selecting variables (pick an ensemble member?)"
        )
    start, end = (pd.Timestamp(t) for t in train_period)
    check_times(ds["time"], what)
    if ds.sel(time=slice(start, end)).sizes["time"] == 0:
        raise WeatherDataError(
            f"{what}: training period {start} to {end} selects no times; data covers "
            f"{pd.Timestamp(ds.time.values[0])} to {pd.Timestamp(ds.time.values[-1])}"
        )
    ds = regrid(ds.transpose(*CANONICAL_DIMS), grid, method=method, pole=pole)
    for name in ds.variables:
        ds[name].encoding = {}
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    step = f"{stamp} carbonsync prepare_canonical: {source} -> {grid.attr()} ({method}, pole={pole})"
    history = "\n".join(h for h in (str(source_ds.attrs.get("history", "")), step) if h)
    ds.attrs = {**ds.attrs, "source": source, "grid": grid.attr(), "history": history}
    validate_weather(ds, variables, grid, check_values=False, what=what)  # layout now; values while writing
    with _progress(progress):
        write_canonical(ds, out_path, chunks)
        stats = compute_stats(xr.open_zarr(out_path), (str(start), str(end)), variables)
    write_stats(stats, out_path)
    return Path(out_path)


# ------------------------------------------------------------------------------------------- local files


def era5_sample_dir() -> Path:
    """``$CARBONSYNC_DATA_DIR/era5``, the local ERA5 samples (may not exist)."""
    return settings.data_dir() / "era5"


def _file_kind(path: Path) -> str:
    with path.open("rb") as fh:
        magic = fh.read(8)
    if magic.startswith(b"GRIB"):
        return "grib"
    if magic.startswith(b"CDF"):
        return "netcdf3"
    if magic.startswith(b"\x89HDF"):
        return "netcdf4"
    raise WeatherDataError(f"'{path}' is neither GRIB nor NetCDF (starts with {magic[:4]!r})")


def _open_file(path: Path, kind: str, chunks: Mapping[str, int] | None) -> list[xr.Dataset]:
    """Open a file as one dataset, or for GRIB with several level types, as one per hypercube."""
    opts: dict[str, Any] = {"chunks": dict(chunks)} if chunks is not None else {}
    if kind == "grib":
        cfgrib = optional_import("cfgrib", "era5")
        kwargs = {"indexpath": ""}  # never write .idx files next to (possibly read-only) data
        try:
            parts = [xr.open_dataset(path, engine="cfgrib", backend_kwargs=kwargs, **opts)]
        except cfgrib.DatasetBuildError:
            parts = cfgrib.open_datasets(str(path), backend_kwargs=kwargs, **opts)
    else:
        try:
            optional_import("netCDF4", "era5")
            engine = "netcdf4"
        except ImportError:
            engine = "scipy" if kind == "netcdf3" else "h5netcdf"
            optional_import(engine, "era5")
        parts = [xr.open_dataset(path, engine=engine, **opts)]
    if chunks is not None:
        return parts
    loaded = []
    for part in parts:
        loaded.append(part.load())
        part.close()
    return loaded


def _normalise_file(ds: xr.Dataset, member: int | None, what: str) -> xr.Dataset:
    """ERA5 file quirks → ``(number?, time, level?, lat, lon)``."""
    if "valid_time" in ds.dims and "time" not in ds.dims:  # new CDS NetCDF
        ds = ds.drop_vars("time", errors="ignore").rename(valid_time="time")
    elif "step" in ds.dims and "time" in ds.dims:  # GRIB forecasts/accumulations: (time, step) → valid time
        valid = ds["valid_time"].transpose("time", "step").values.reshape(-1)
        ds = ds.drop_vars("valid_time").stack(_valid=("time", "step"), create_index=False)
        ds = ds.drop_vars(["time", "step"]).rename(_valid="time").assign_coords(time=valid)
        filled = ds.to_dataarray().notnull().any([d for d in ds.dims if d != "time"] + ["variable"])
        ds = ds.isel(time=np.flatnonzero(filled.values & ~pd.isnull(valid))).sortby("time")  # unused steps
    elif "valid_time" in ds.coords and "time" in ds.dims:  # GRIB analyses: time + step 0
        ds = ds.assign_coords(time=ds["valid_time"].values).drop_vars("valid_time")
    if "expver" in ds.dims:  # old CDS NetCDF: ERA5 (1) and ERA5T (5) on a dim, NaN where the other applies
        combined = ds.isel(expver=0, drop=True)
        for i in range(1, ds.sizes["expver"]):
            combined = combined.combine_first(ds.isel(expver=i, drop=True))
        ds = combined
    for dim in LEVEL_DIMS:  # a single level read as a scalar coordinate
        if dim in ds.coords and ds[dim].ndim == 0:
            ds = ds.expand_dims(dim)
    if ENSEMBLE_DIM in ds.coords:
        members = np.atleast_1d(ds[ENSEMBLE_DIM].values)
        if member is not None:
            if member not in members:
                raise WeatherDataError(f"{what}: ensemble member {member} not in {members.tolist()}")
            ds = ds.sel({ENSEMBLE_DIM: member}, drop=True) if ENSEMBLE_DIM in ds.dims else ds
        elif ENSEMBLE_DIM in ds.dims and ds.sizes[ENSEMBLE_DIM] == 1:
            ds = ds.isel({ENSEMBLE_DIM: 0})
    elif member is not None:
        raise WeatherDataError(f"{what}: ensemble member {member} requested but the file has no members")
    ds = ds.drop_vars([c for c in ds.coords if c not in ds.dims])
    return _normalise_layout(ds, what)


def _available(ds: xr.Dataset) -> dict[str, str]:
    """Canonical name → ERA5 short name for every variable of ``ds`` the lexicon knows."""
    found: dict[str, str] = {}
    for src in map(str, ds.data_vars):
        dim = _level_dim(ds[src])
        if dim is None:
            try:
                found.setdefault(lexicon.canonical_name(src, "era5"), src)
            except lexicon.LexiconError:
                continue
        else:
            levels = np.asarray(ds[dim].values, dtype=float)
            for var in lexicon.VARIABLES.values():
                wanted = var.level_hpa and var.aliases.get("era5") == src
                if wanted and np.isclose(levels, var.level_hpa).any():
                    found.setdefault(var.name, src)
    return found


def _missing_message(name: str, parts: list[xr.Dataset], what: str) -> str:
    var = lexicon.get(name)
    src = var.aliases["era5"]
    for part in parts:
        if src in part.data_vars and var.level_hpa is not None:
            dim = _level_dim(part[src])
            levels = np.asarray(part[dim].values).tolist() if dim else "none (no level dim)"
            return f"{what}: variable '{name}' needs level {var.level_hpa} hPa of '{src}'; levels: {levels}"
    names = ", ".join(sorted({str(v) for p in parts for v in p.data_vars}))
    return f"{what}: variable '{name}' (ERA5 '{src}') is missing; the file has: {names}"


def read_era5_file(
    path: str | Path,
    variables: Iterable[str] | None = None,
    *,
    member: int | None = None,
    chunks: Mapping[str, int] | None = None,
    validate: bool = True,
) -> xr.Dataset:
    """Read an ERA5 NetCDF or GRIB file as canonical variables ``(number?, time, lat, lon)``.

    Handles ``valid_time``/``expver`` (new and old CDS NetCDF), GRIB ``step`` and pressure levels, and
    ensembles: ``number`` stays a leading dim unless ``member`` picks one. All known variables are read
    when ``variables`` is None. Data is loaded unless ``chunks`` is given. Point or regional data is not
    checked against a grid, but times, units, NaNs and physical ranges are (``validate``).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ERA5 file '{path}' does not exist")
    what = f"ERA5 file '{path.name}'"
    parts = [_normalise_file(p, member, what) for p in _open_file(path, _file_kind(path), chunks)]
    available = [_available(p) for p in parts]
    if variables is None:
        wanted = list(dict.fromkeys(name for found in available for name in found))
        if not wanted:
            raise WeatherDataError(f"{what}: no variable the lexicon knows; it has {_list_vars(parts[0])}")
    else:
        wanted = list(variables)
    out = []
    for name in wanted:
        lexicon.get(name)
        index = next((i for i, found in enumerate(available) if name in found), None)
        if index is None:
            raise WeatherDataError(_missing_message(name, parts, what))
        part = parts[index]
        out.append(lexicon.to_canonical(part, "era5", [name], level_dim=_level_dim(part) or "level")[name])
    ds = xr.merge(out, join="outer", compat="no_conflicts", combine_attrs="override")
    leading = [d for d in (ENSEMBLE_DIM,) if d in ds.dims]
    ds = ds.transpose(*leading, *CANONICAL_DIMS)
    ds.attrs = {"source": "era5", "source_path": str(path)}
    with suppress(GridError):  # point or regional data stays without a grid
        ds.attrs["grid"] = Grid.infer(ds).attr()
    if validate:
        check_era5(ds, what=what)
    return ds


def check_era5(ds: xr.Dataset, variables: Iterable[str] | None = None, what: str = "ERA5 data") -> None:
    """Check canonical, possibly non-global ERA5 data: dims, lexicon units, times, NaNs and ranges."""
    allowed = {ENSEMBLE_DIM, *CANONICAL_DIMS}
    for name in list(variables) if variables is not None else list(map(str, ds.data_vars)):
        if name not in ds.data_vars:
            raise WeatherDataError(f"{what}: missing variable '{name}'; it has {_list_vars(ds)}")
        da = ds[name]
        if not set(CANONICAL_DIMS) <= set(da.dims) <= allowed:
            raise WeatherDataError(
                f"{what}: variable '{name}' has dims {tuple(da.dims)}, expected {CANONICAL_DIMS}"
            )
        expected = lexicon.get(name).units
        units = da.attrs.get("units")
        if units is None or lexicon.normalise_units(units) != expected:
            raise WeatherDataError(f"{what}: variable '{name}' has units '{units}', expected '{expected}'")
        _check_values(da, what)
    check_times(ds["time"], what)
