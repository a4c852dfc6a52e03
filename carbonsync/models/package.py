"""Model packages (makani-style): a self-describing directory that rebuilds a model without training configs.

Layout::

    <package>/
        weights.pt      state_dict only, read with ``torch.load(weights_only=True)``
        metadata.json   kind, model class, config, channels, grid, dt_hours, lmax/mmax, versions, data hash
        stats.json      per-channel normalisation mean/std (``{"variables": {name: {"mean", "std"}}}``)
        tensors.pt      optional named tensors inference needs besides the weights (e.g. the backbone's
                        damping toward climatology), also read with ``weights_only=True``
        hash.json       sha256 of each file above and the package hash over all of them

Packages are written into a temporary sibling directory and renamed into place, so a failed save never
leaves anything at the final path. Non-finite weights or tensors are refused (nothing is written).
:func:`load_package` recomputes the hashes first: a package whose metadata (channels, ``dt_hours`` ...),
stats, weights or tensors were edited after saving is rejected by name, before anything in it is used.
The hash guards against edits and corruption, not against someone who rewrites ``hash.json`` as well.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

import carbonsync
from carbonsync.core.errors import CarbonSyncError
from carbonsync.core.fs import atomic_path
from carbonsync.models.afno import AFNODiagnostic, IrradianceDiagnostic
from carbonsync.models.head import RenewablesHead
from carbonsync.models.sfno import SFNO
from carbonsync.physics.grid import Grid

FORMAT_VERSION = 1
WEIGHTS_FILE = "weights.pt"
METADATA_FILE = "metadata.json"
STATS_FILE = "stats.json"
TENSORS_FILE = "tensors.pt"
HASH_FILE = "hash.json"
MODEL_KINDS = ("sfno", "afno", "head")


class PackageError(CarbonSyncError, ValueError):
    """A model package that is malformed, or does not fit the data or model it is used with."""


Builder = Callable[[dict[str, Any]], nn.Module]
# kind -> {class name -> (class, builder from config dict)}
_REGISTRY: dict[str, dict[str, tuple[type[nn.Module], Builder]]] = {kind: {} for kind in MODEL_KINDS}


def register_model_class(kind: str, cls: type[nn.Module], build: Builder | None = None) -> None:
    """Make ``cls`` saveable/loadable under ``kind``.

    By default a model is rebuilt as ``cls(cls.config_class.from_dict(config))`` if the class has a
    ``config_class``, else as ``cls(**config)``; pass ``build`` to do otherwise.
    """
    if build is None:
        config_class = getattr(cls, "config_class", None)

        def build(config: dict[str, Any], _cls: type[nn.Module] = cls, _cfg: Any = config_class) -> nn.Module:
            return _cls(_cfg.from_dict(config)) if _cfg is not None else _cls(**config)

    _REGISTRY.setdefault(kind, {})[cls.__name__] = (cls, build)


register_model_class("sfno", SFNO)
register_model_class("afno", AFNODiagnostic)
register_model_class("afno", IrradianceDiagnostic)
register_model_class("head", RenewablesHead)


def _config_dict(config: Any) -> dict[str, Any]:
    if hasattr(config, "to_dict"):
        return config.to_dict()
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        return dataclasses.asdict(config)
    if isinstance(config, Mapping):
        return dict(config)
    raise PackageError(
        f"config must be a dataclass, a mapping or have to_dict(), got {type(config).__name__}"
    )


def _grid(grid: Grid | Mapping[str, Any] | str) -> Grid:
    if isinstance(grid, Grid):
        return grid
    if isinstance(grid, str):
        return Grid.from_attr(grid)
    return Grid.from_dict(grid)


def _channel_stats(stats: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    """``{name: {mean, std}}`` from either that or the store's ``{"variables": {...}}`` layout."""
    variables = stats.get("variables", stats)
    out = {}
    for name, s in variables.items():
        if not isinstance(s, Mapping) or "mean" not in s or "std" not in s:
            raise PackageError(f"stats for '{name}' need 'mean' and 'std', got {s!r}")
        mean, std = float(s["mean"]), float(s["std"])
        if not (math.isfinite(mean) and math.isfinite(std) and std > 0):
            raise PackageError(f"stats for '{name}' must be finite with std > 0, got mean={mean}, std={std}")
        out[str(name)] = {"mean": mean, "std": std}
    return out


def _jsonable(obj: Any) -> Any:
    """Plain JSON values: numpy/torch scalars and arrays unwrapped, paths and timestamps as strings.

    Non-finite floats become None (e.g. a NaN score in ``extra`` must not make a trained model unsaveable).
    """
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple | set):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, torch.Tensor | np.ndarray | np.generic):
        return _jsonable(obj.tolist())
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if obj is None or isinstance(obj, str | int | bool):
        return obj
    return str(obj)


def _check_model_fits(
    kind: str, spec: dict[str, Any], channels: list[str], forcing: list[str], grid: Grid
) -> None:
    """Cross-check the package's channel lists and grid against the model config (built-in kinds)."""
    if kind not in ("sfno", "afno"):
        return
    problems = []
    if (spec.get("nlat"), spec.get("nlon")) != (grid.nlat, grid.nlon) or spec.get(
        "grid", grid.kind
    ) != grid.kind:
        problems.append(f"config grid {spec.get('grid')} {spec.get('nlat')}x{spec.get('nlon')} != {grid.attr()}")
    n_state = spec["in_channels"] if kind == "sfno" else spec["state_channels"]
    if n_state != len(channels):
        problems.append(f"config expects {n_state} state channels, {len(channels)} named: {channels}")
    if forcing and spec.get("forcing_channels", 0) != len(forcing):
        problems.append(f"config expects {spec.get('forcing_channels')} forcing channels, got {forcing}")
    if problems:
        raise PackageError("model config does not match the package: " + "; ".join(problems))


def save_package(
    path: str | Path,
    model: nn.Module,
    kind: str,
    config: Any,
    channels: Sequence[str],
    grid: Grid | Mapping[str, Any] | str,
    dt_hours: float,
    stats: Mapping[str, Any],
    extra: Mapping[str, Any] | None = None,
    *,
    forcing_channels: Sequence[str] = (),
    output_channels: Sequence[str] | None = None,
    data_hash: str | None = None,
    tensors: Mapping[str, torch.Tensor] | None = None,
) -> Path:
    """Write ``model`` as a package directory at ``path`` (atomically) and return the path.

    ``channels`` are the state channels the model consumes, in order, and must all have ``stats``;
    ``output_channels`` (default: ``channels``) are what it predicts. ``config`` may be ``None`` to use
    ``model.config``; otherwise it must equal it.
    """
    if kind not in _REGISTRY:
        raise PackageError(f"unknown model kind '{kind}'; known: {sorted(_REGISTRY)}")
    cls_name = type(model).__name__
    if cls_name not in _REGISTRY[kind] or not isinstance(model, _REGISTRY[kind][cls_name][0]):
        known = sorted(_REGISTRY[kind]) or "none (use register_model_class)"
        raise PackageError(f"a {cls_name} cannot be saved as kind '{kind}'; classes registered: {known}")
    model_cfg = getattr(model, "config", None)
    cfg = _config_dict(config if config is not None else model_cfg)
    if model_cfg is not None and config is not None and _config_dict(model_cfg) != cfg:
        raise PackageError(f"config passed to save_package differs from the {cls_name}'s own config")
    grid = _grid(grid)
    channels, forcing = [str(c) for c in channels], [str(c) for c in forcing_channels]
    outputs = list(channels) if output_channels is None else [str(c) for c in output_channels]
    if len(set(channels)) != len(channels):
        raise PackageError(f"duplicate channel names in {channels}")
    _check_model_fits(kind, cfg, channels, forcing, grid)
    all_stats = _channel_stats(stats)
    missing = [c for c in channels if c not in all_stats]
    if missing:
        raise PackageError(f"no normalisation stats for channel(s) {missing}")
    keep = set(channels) | set(outputs) | set(forcing)
    stats_out = {k: v for k, v in stats.items() if k != "variables"} if "variables" in stats else {}
    stats_out["variables"] = {c: s for c, s in all_stats.items() if c in keep}
    dt_hours = float(dt_hours)
    if not dt_hours > 0:
        raise PackageError(f"dt_hours must be positive, got {dt_hours}")

    metadata: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "kind": kind,
        "model_class": cls_name,
        "config": cfg,
        "channels": channels,
        "output_channels": outputs,
        "forcing_channels": forcing,
        "grid": grid.to_dict(),
        "dt_hours": dt_hours,
        "carbonsync_version": carbonsync.__version__,
        "torch_version": torch.__version__,
        "data_hash": data_hash,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "n_parameters": sum(p.numel() for p in model.parameters()),
        "extra": dict(extra or {}),
    }
    for key in ("lmax", "mmax"):
        if key in cfg:
            metadata[key] = cfg[key]
    try:
        text = json.dumps(_jsonable(metadata), indent=2, allow_nan=False)
        stats_text = json.dumps(_jsonable(stats_out), indent=2, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise PackageError(f"package metadata is not JSON-serialisable: {err}") from err

    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tensors = {str(k): torch.as_tensor(v).detach().cpu().contiguous() for k, v in (tensors or {}).items()}
    _check_finite(state, f"weights of the {cls_name}")
    _check_finite(tensors, f"tensors saved with the {cls_name}")
    with atomic_path(path) as tmp:
        tmp.mkdir()
        torch.save(state, tmp / WEIGHTS_FILE)
        (tmp / METADATA_FILE).write_text(text)
        (tmp / STATS_FILE).write_text(stats_text)
        if tensors:
            torch.save(tensors, tmp / TENSORS_FILE)
        _write_hash(tmp)
    return Path(path)


def _check_finite(tensors: Mapping[str, torch.Tensor], what: str) -> None:
    bad = {k: int((~torch.isfinite(v)).sum()) for k, v in tensors.items() if v.is_floating_point() or v.is_complex()}
    bad = {k: n for k, n in bad.items() if n}
    if bad:
        total = sum(v.numel() for v in tensors.values())
        raise PackageError(f"{what}: {sum(bad.values())} of {total} values are NaN or inf (in "
                           f"{', '.join(list(bad)[:3])}{' ...' if len(bad) > 3 else ''}); not saving the package")


def _file_hashes(path: Path) -> tuple[dict[str, str], str]:
    """sha256 per package file, and the package hash over all of them (names included), in one read."""
    total = hashlib.sha256()
    files = {}
    optional = [TENSORS_FILE] if (path / TENSORS_FILE).is_file() else []
    for name in (WEIGHTS_FILE, METADATA_FILE, STATS_FILE, *optional):
        file = path / name
        if not file.is_file():
            raise PackageError(f"package '{path}' has no {name}")
        one = hashlib.sha256()
        total.update(name.encode() + b"\0")
        with file.open("rb") as f:
            for chunk in iter(lambda f=f: f.read(1 << 20), b""):
                total.update(chunk)
                one.update(chunk)
        files[name] = one.hexdigest()
    return files, total.hexdigest()


def _write_hash(path: str | Path) -> None:
    files, total = _file_hashes(Path(path))
    (Path(path) / HASH_FILE).write_text(json.dumps({"sha256": total, "files": files}, indent=2))


def verify_package(path: str | Path) -> str:
    """Check the package's files against the hashes recorded when it was saved; return the package hash.

    Raises PackageError naming the package and the file that does not match (or is missing or extra).
    """
    path = Path(path)
    record_file = path / HASH_FILE
    if not record_file.is_file():
        raise PackageError(f"model package '{path}' has no {HASH_FILE}, so its files cannot be verified "
                           "(saved by an older CarbonSync, or incomplete): retrain it or save it again")
    try:
        record = json.loads(record_file.read_text())
        recorded, total = dict(record["files"]), str(record["sha256"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
        raise PackageError(f"model package '{path}': {HASH_FILE} is not a package hash record ({err})") from None
    files, actual = _file_hashes(path)
    changed = [n for n in sorted(set(files) | set(recorded)) if files.get(n) != recorded.get(n)]
    if changed or actual != total:
        detail = ", ".join(
            f"{n} ({'not in the package' if n not in files else 'not recorded' if n not in recorded else 'changed'})"
            for n in changed) or "the package hash itself"
        raise PackageError(
            f"model package '{path}' does not match its package hash: {detail} since it was saved; "
            "refusing to load an edited or corrupted package (retrain it or save it again)"
        )
    return actual


def package_hash(path: str | Path) -> str:
    """sha256 over the package's weights, metadata, stats (and tensors) files, names included (as they are
    now; :func:`verify_package` compares it with the one recorded at saving)."""
    return _file_hashes(Path(path))[1]


@dataclass
class ModelPackage:
    """A loaded package: the model in eval mode, its metadata and normalisation stats."""

    model: nn.Module
    metadata: dict[str, Any]
    stats: dict[str, Any]
    path: Path | None = None
    tensors: dict[str, torch.Tensor] = field(default_factory=dict)
    _cache: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)

    @property
    def kind(self) -> str:
        return self.metadata["kind"]

    @property
    def channels(self) -> list[str]:
        return list(self.metadata["channels"])

    @property
    def output_channels(self) -> list[str]:
        return list(self.metadata.get("output_channels", self.metadata["channels"]))

    @property
    def forcing_channels(self) -> list[str]:
        return list(self.metadata.get("forcing_channels", []))

    @cached_property
    def grid(self) -> Grid:
        return Grid.from_dict(self.metadata["grid"])

    @property
    def dt_hours(self) -> float:
        return float(self.metadata["dt_hours"])

    @property
    def hash(self) -> str:
        if self.path is None:
            raise PackageError("package was not loaded from disk; it has no hash")
        return package_hash(self.path)

    def check_compatible(
        self,
        channels: Sequence[str],
        grid: Grid | Mapping[str, Any] | str | None = None,
        forcing_channels: Sequence[str] | None = None,
    ) -> None:
        """Raise PackageError naming the channels (and/or grid) that differ from what the model expects."""
        problems = []
        for what, expected, got in (
            ("channels", self.channels, channels),
            ("forcing channels", self.forcing_channels, forcing_channels),
        ):
            if got is None:
                continue
            got = [str(c) for c in got]
            if got == expected:
                continue
            missing = [c for c in expected if c not in got]
            unexpected = [c for c in got if c not in expected]
            detail = []
            if missing:
                detail.append(f"missing {missing}")
            if unexpected:
                detail.append(f"unexpected {unexpected}")
            if not detail:
                detail.append(f"order differs: expected {expected}, got {got}")
            problems.append(f"{what}: " + ", ".join(detail))
        if grid is not None:
            grid = _grid(grid)
            if grid != self.grid:
                problems.append(f"grid: package is on {self.grid.attr()}, data is on {grid.attr()}")
        if problems:
            where = f" '{self.path}'" if self.path else ""
            raise PackageError(f"data does not fit model package{where}: " + "; ".join(problems))

    def _mean_std(self, names: list[str], like: torch.Tensor, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
        variables = self.stats.get("variables", {})
        missing = [c for c in names if c not in variables]
        if missing:
            raise PackageError(f"package has no normalisation stats for {missing}")
        key = ",".join(names)
        if key not in self._cache:
            self._cache[key] = torch.tensor(
                [[variables[c]["mean"] for c in names], [variables[c]["std"] for c in names]],
                dtype=torch.float64,
            )
        mean, std = self._cache[key].to(device=like.device, dtype=like.dtype)
        dim = dim % like.dim()
        if like.shape[dim] != len(names):
            raise ValueError(
                f"tensor has {like.shape[dim]} entries on dim {dim}, expected {len(names)}: {names}"
            )
        shape = [1] * like.dim()
        shape[dim] = -1
        return mean.view(shape), std.view(shape)

    def normalise(self, tensor: torch.Tensor, dim: int = -3) -> torch.Tensor:
        """(x - mean) / std per input channel (``channels`` order) along ``dim``."""
        mean, std = self._mean_std(self.channels, tensor, dim)
        return (tensor - mean) / std

    def denormalise(self, tensor: torch.Tensor, dim: int = -3) -> torch.Tensor:
        """x * std + mean per output channel (``output_channels`` order) along ``dim``."""
        mean, std = self._mean_std(self.output_channels, tensor, dim)
        return tensor * std + mean


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise PackageError(f"model package file '{path}' is missing") from None
    except json.JSONDecodeError as err:
        raise PackageError(f"model package file '{path}' is not valid JSON: {err}") from None


def load_package(path: str | Path, map_location: str | torch.device = "cpu") -> ModelPackage:
    """Verify the package hash, rebuild the model from its metadata, load its weights (``weights_only=True``),
    eval mode. A package edited after saving raises PackageError (see :func:`verify_package`)."""
    path = Path(path)
    if not path.is_dir():
        raise PackageError(f"model package '{path}' does not exist or is not a directory")
    verify_package(path)  # before anything in it is read
    metadata = _read_json(path / METADATA_FILE)
    stats = _read_json(path / STATS_FILE)
    version = metadata.get("format_version")
    if version != FORMAT_VERSION:
        raise PackageError(f"model package '{path}' has format version {version}; expected {FORMAT_VERSION}")
    kind, cls_name = metadata.get("kind"), metadata.get("model_class")
    entry = _REGISTRY.get(kind, {}).get(cls_name)
    if entry is None:
        raise PackageError(
            f"model package '{path}' holds a {cls_name} of kind '{kind}', which is not registered "
            "(see register_model_class)"
        )
    try:
        model = entry[1](metadata["config"])
    except (TypeError, ValueError, KeyError) as err:
        raise PackageError(f"cannot rebuild {cls_name} from the config in '{path}': {err}") from err
    try:
        state = torch.load(path / WEIGHTS_FILE, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise PackageError(f"model package '{path}' has no {WEIGHTS_FILE}") from None
    except Exception as err:  # weights_only refuses anything but tensors and plain containers
        raise PackageError(f"cannot load '{path / WEIGHTS_FILE}' safely (weights_only=True): {err}") from err
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise PackageError(
            f"weights in '{path}' do not fit the {cls_name} its metadata describes: {err}"
        ) from err
    model.to(map_location).eval()
    tensors: dict[str, torch.Tensor] = {}
    if (path / TENSORS_FILE).is_file():
        try:
            tensors = dict(torch.load(path / TENSORS_FILE, map_location=map_location, weights_only=True))
        except Exception as err:
            raise PackageError(f"cannot load '{path / TENSORS_FILE}' safely (weights_only=True): {err}") from err
    return ModelPackage(model=model, metadata=metadata, stats=stats, path=path, tensors=tensors)
