"""What the forecast store's writer (:mod:`carbonsync.forecast.export`) and reader
(:mod:`carbonsync.forecast.reader`) share: names, the error, where a store lives, and opening it with Icechunk.

The forecast store is an `Icechunk <https://icechunk.io>`_ repository holding a Zarr v3 hierarchy (groups
``gridded`` and ``zones``, see :mod:`carbonsync.forecast.export` for the layout). Every export batch is one
Icechunk commit on branch ``main``; a reader opens a snapshot (the tip of ``main``, a tag, or a snapshot id)
and sees exactly what was committed there, never a chunk of a later or unfinished write.

**Where a store lives** (:class:`StoreLocation`): a local directory by default (``outputs/main/forecast.zarr``),
or object storage by URL, with options as query parameters; credentials come from the environment (the
providers' usual variables) unless ``anonymous=true``:

- ``s3://bucket/prefix?region=eu-west-1&endpoint_url=http://127.0.0.1:9000&allow_http=true&force_path_style=true``
  -> :func:`icechunk.s3_storage`
- ``gs://bucket/prefix`` (or ``gcs://``) -> :func:`icechunk.gcs_storage`
- ``az://container/prefix?account=NAME`` (or ``azure://``) -> :func:`icechunk.azure_storage`

The same fields can be given as a mapping (e.g. a Hydra node ``forecast.store: {kind: s3, bucket: b, prefix: p,
region: eu-west-1}``). Building a location or its :class:`icechunk.Storage` never touches the network.

**Reading it without carbonsync** (the Icechunk 1.x API)::

    import icechunk, xarray as xr
    repo = icechunk.Repository.open(icechunk.local_filesystem_storage("outputs/main/forecast.zarr"))
    session = repo.readonly_session("main")              # or tag="planned-2020-11-20", or snapshot_id="..."
    zones = xr.open_zarr(session.store, group="zones", consolidated=False)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import icechunk
import zarr
import zarr.errors

from carbonsync.core.errors import CarbonSyncError
from carbonsync.core.logs import get_logger

log = get_logger(__name__)

ZONE_PRODUCTS = ("wind_cf", "solar_cf", "renewable_share", "carbon_intensity")
GROUPS = ("gridded", "zones")
STORE_FORMAT = "carbonsync-forecast-store 3 (icechunk, one commit per export batch)"
TIME_UNITS = "minutes since 1970-01-01"
LEAD_UNITS = "minutes"
BRANCH = "main"

if "ICECHUNK_LOG" not in os.environ:
    # Icechunk warns on every local repository that the local filesystem is not safe for concurrent commits;
    # our exporter holds a lock for local stores (see carbonsync.forecast.export), so keep only its errors.
    icechunk.set_logs_filter("warn,icechunk::storage::object_store=error")


class ForecastStoreError(CarbonSyncError, ValueError):
    """A forecast store that is missing, malformed, busy or does not cover the request."""


def first_line(err: BaseException) -> str:
    """Icechunk's errors span many lines of context; their first line says what happened."""
    lines = [ln.strip(" x|`->") for ln in str(err).splitlines() if ln.strip(" x|`->")]
    return lines[0] if lines else type(err).__name__


_SCHEMES = {"s3": "s3", "gs": "gcs", "gcs": "gcs", "az": "azure", "azure": "azure", "file": "local"}
_BOOLEAN = ("allow_http", "anonymous", "force_path_style", "requester_pays", "from_env")
_OPTIONS = {
    "local": (),
    "s3": ("region", "endpoint_url", "allow_http", "anonymous", "force_path_style", "requester_pays", "from_env"),
    "gcs": ("anonymous", "from_env"),
    "azure": ("account", "from_env"),
}


def _truth(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ForecastStoreError(f"store option {key}={value!r} is not true or false")


@dataclass(frozen=True)
class StoreLocation:
    """Where a forecast store lives: ``kind`` is ``local`` (``path``), ``s3``, ``gcs`` or ``azure`` (``bucket``
    = bucket or container, ``prefix``), ``options`` the storage settings named in the module docstring."""

    kind: str
    path: str = ""
    bucket: str = ""
    prefix: str = ""
    options: tuple[tuple[str, Any], ...] = field(default_factory=tuple)

    @classmethod
    def parse(cls, location: str | os.PathLike | Mapping | StoreLocation) -> StoreLocation:
        """A location from a local path, a URL (``s3://``, ``gs://``, ``az://``, ``file://``) or a mapping
        with ``kind`` and the fields of this class (options as further keys)."""
        if isinstance(location, StoreLocation):
            return location
        if isinstance(location, Mapping):
            spec = dict(location)
            kind = str(spec.pop("kind", "local"))
            kind = _SCHEMES.get(kind, kind)
            fields = {k: str(spec.pop(k)) for k in ("path", "bucket", "prefix") if k in spec}
            if "container" in spec:
                fields["bucket"] = str(spec.pop("container"))
            return cls._checked(kind, options=spec, **fields)
        text = os.fspath(location)
        parts = urlsplit(text)
        if parts.scheme in _SCHEMES and (parts.scheme != "file" or parts.path):
            kind = _SCHEMES[parts.scheme]
            options = dict(parse_qsl(parts.query, keep_blank_values=True))
            if kind == "local":
                return cls._checked("local", path=parts.path, options=options)
            return cls._checked(kind, bucket=parts.netloc, prefix=parts.path.strip("/"), options=options)
        if "://" in text:
            raise ForecastStoreError(f"forecast store '{text}': unknown scheme '{parts.scheme}' "
                                     "(local paths, file://, s3://, gs://, az://)")
        return cls._checked("local", path=text)

    @classmethod
    def _checked(cls, kind: str, path: str = "", bucket: str = "", prefix: str = "",
                 options: Mapping[str, Any] | None = None) -> StoreLocation:
        if kind not in _OPTIONS:
            raise ForecastStoreError(f"forecast store kind '{kind}' is not one of {sorted(_OPTIONS)}")
        options = dict(options or {})
        unknown = sorted(set(options) - set(_OPTIONS[kind]))
        if unknown:
            raise ForecastStoreError(f"{kind} forecast store: unknown option(s) {unknown}; "
                                     f"allowed: {list(_OPTIONS[kind])}")
        options = {k: (_truth(k, v) if k in _BOOLEAN else str(v)) for k, v in options.items()}
        if kind == "local":
            if not path:
                raise ForecastStoreError("a local forecast store needs a path")
            path = os.path.abspath(os.path.expanduser(path))
        elif not bucket:
            raise ForecastStoreError(f"{kind} forecast store needs a bucket (container): {kind}://BUCKET/prefix")
        if kind == "azure" and not options.get("account"):
            raise ForecastStoreError("azure forecast store needs ?account=NAME: az://container/prefix?account=NAME")
        return cls(kind, path, bucket, prefix.strip("/"), tuple(sorted(options.items())))

    @property
    def is_local(self) -> bool:
        return self.kind == "local"

    def __str__(self) -> str:
        if self.is_local:
            return self.path
        scheme = {"s3": "s3", "gcs": "gs", "azure": "az"}[self.kind]
        query = f"?{urlencode(self.options)}" if self.options else ""
        return f"{scheme}://{self.bucket}/{self.prefix}{query}"

    def key(self) -> str:
        """One string per store: local paths with symlinks resolved (two names of one directory are one
        store), URLs as written."""
        return os.path.realpath(self.path) if self.is_local else str(self)

    def storage(self) -> icechunk.Storage:
        """The :class:`icechunk.Storage` for this location (no connection is made)."""
        opts = dict(self.options)
        if self.is_local:
            return icechunk.local_filesystem_storage(self.path)
        anonymous = bool(opts.pop("anonymous", False))
        from_env = bool(opts.pop("from_env", not anonymous))
        if self.kind == "s3":
            return icechunk.s3_storage(bucket=self.bucket, prefix=self.prefix or None, anonymous=anonymous or None,
                                       from_env=from_env or None, **opts)
        if self.kind == "gcs":
            return icechunk.gcs_storage(bucket=self.bucket, prefix=self.prefix or None, anonymous=anonymous or None,
                                        from_env=from_env or None)
        return icechunk.azure_storage(account=opts["account"], container=self.bucket, prefix=self.prefix,
                                      from_env=from_env or None)


Location = str | os.PathLike | Mapping | StoreLocation


def exists(location: Location) -> bool:
    """Whether an Icechunk repository is at ``location``."""
    loc = StoreLocation.parse(location)
    if loc.is_local and not Path(loc.path).exists():
        return False
    try:
        return icechunk.Repository.exists(loc.storage())
    except icechunk.IcechunkError as err:
        raise ForecastStoreError(f"forecast store '{loc}' cannot be reached: {first_line(err)}") from None


def open_repository(location: Location, create: bool = False) -> icechunk.Repository:
    """The Icechunk repository at ``location`` (created empty with ``create=True`` if there is none)."""
    loc = StoreLocation.parse(location)
    if not exists(loc):
        local = Path(loc.path) if loc.is_local else None
        if local is not None and local.exists() and (not create or not local.is_dir() or any(local.iterdir())):
            raise ForecastStoreError(
                f"'{loc}' is not an Icechunk forecast store (a plain Zarr store of an older carbonsync?): "
                "rerun `carbonsync forecast` to rewrite it, or export to a new path")
        if not create:
            raise ForecastStoreError(f"forecast store '{loc}' does not exist (run `carbonsync forecast` or "
                                     "`carbonsync export`)")
        if loc.is_local:
            Path(loc.path).parent.mkdir(parents=True, exist_ok=True)
        return icechunk.Repository.create(loc.storage())
    try:
        return icechunk.Repository.open(loc.storage())
    except icechunk.IcechunkError as err:
        raise ForecastStoreError(f"forecast store '{loc}' cannot be opened: {first_line(err)}") from None


def resolve_snapshot(repo: icechunk.Repository, snapshot: str | None, where: str = "") -> str:
    """The snapshot id ``snapshot`` names: ``None`` for the tip of ``main``, else a tag or a snapshot id
    (tags are tried first)."""
    if snapshot is None:
        return repo.lookup_branch(BRANCH)
    if snapshot in repo.list_tags():
        return repo.lookup_tag(snapshot)
    try:
        return repo.lookup_snapshot(snapshot).id
    except (icechunk.IcechunkError, ValueError):
        raise ForecastStoreError(f"forecast store {where}: '{snapshot}' is neither a tag "
                                 f"({sorted(repo.list_tags())}) nor a snapshot id") from None


def readonly_session(location: Location, snapshot: str | None = None) -> icechunk.Session:
    """A read-only Icechunk session of the store at ``snapshot`` (see :func:`resolve_snapshot`)."""
    repo = open_repository(location)
    return repo.readonly_session(snapshot_id=resolve_snapshot(repo, snapshot, f"'{location}'"))


def forecast_root(session: icechunk.Session) -> zarr.Group | None:
    """The root group of a session's snapshot if it holds a forecast (both groups), else ``None`` (a
    repository no export has committed to yet)."""
    try:
        root = zarr.open_group(session.store, mode="r")
    except zarr.errors.GroupNotFoundError:
        return None
    return root if all(name in root for name in GROUPS) else None


def tag_snapshot(location: Location, tag: str, snapshot: str | None = None) -> str:
    """Tag ``snapshot`` (default: the tip of ``main``) as ``tag`` so a reader can pin it, e.g. a scheduler
    the forecast it planned on; returns the snapshot id. Tags are immutable."""
    repo = open_repository(location)
    snapshot_id = resolve_snapshot(repo, snapshot, f"'{location}'")
    if tag in repo.list_tags():
        raise ForecastStoreError(f"forecast store '{location}' already has a tag '{tag}' "
                                 f"(snapshot {repo.lookup_tag(tag)})")
    repo.create_tag(tag, snapshot_id)
    return snapshot_id


def history(location: Location) -> list[dict[str, Any]]:
    """The commits of ``main``, newest first: ``id``, ``written_at``, ``message``, ``metadata``."""
    repo = open_repository(location)
    return [{"id": s.id, "written_at": s.written_at, "message": s.message, "metadata": s.metadata}
            for s in repo.ancestry(branch=BRANCH)]
