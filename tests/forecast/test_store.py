"""Where a forecast store lives (local paths, s3/gs/az URLs, mappings -> icechunk storage objects, built
without any connection) and one exporter at a time: the lock for local stores (also through a symlink) and
Icechunk's commit-conflict detection for writers the lock cannot see."""

from __future__ import annotations

import signal

import icechunk
import pytest
import zarr

from carbonsync.forecast.export import export_forecasts
from carbonsync.forecast.reader import committed_init_times, latest_forecast
from carbonsync.forecast.store import ForecastStoreError, StoreLocation, history, open_repository
from carbonsync.forecast.synthetic import synthetic_forecast
from tests.helpers.forecast_store import INITS, PROVENANCE, check_visible, child_export, wait_for


@pytest.mark.parametrize(("location", "kind", "bucket", "prefix", "options", "text"), [
    ("s3://forecasts/carbonsync/main.icechunk?region=eu-west-1", "s3", "forecasts", "carbonsync/main.icechunk",
     {"region": "eu-west-1"}, "s3://forecasts/carbonsync/main.icechunk?region=eu-west-1"),
    ("s3://b/p?endpoint_url=http://127.0.0.1:9000&allow_http=true&force_path_style=1&anonymous=true", "s3", "b",
     "p", {"endpoint_url": "http://127.0.0.1:9000", "allow_http": True, "force_path_style": True,
           "anonymous": True}, None),
    ("gs://bucket/a/b/", "gcs", "bucket", "a/b", {}, "gs://bucket/a/b"),
    ("gcs://bucket/x", "gcs", "bucket", "x", {}, "gs://bucket/x"),
    ("az://container/fc?account=acct", "azure", "container", "fc", {"account": "acct"},
     "az://container/fc?account=acct"),
    ({"kind": "s3", "bucket": "b", "prefix": "/p/", "region": "us-east-1"}, "s3", "b", "p", {"region": "us-east-1"},
     "s3://b/p?region=us-east-1"),
    ({"kind": "azure", "container": "c", "prefix": "p", "account": "a"}, "azure", "c", "p", {"account": "a"}, None),
])
def test_object_store_locations_map_to_icechunk_storage(location, kind, bucket, prefix, options, text):
    loc = StoreLocation.parse(location)
    assert (loc.kind, loc.bucket, loc.prefix, dict(loc.options)) == (kind, bucket, prefix, options)
    assert not loc.is_local
    if text is not None:
        assert str(loc) == text and StoreLocation.parse(str(loc)) == loc   # round trip
    storage = loc.storage()   # builds the configuration only: no request is made
    assert isinstance(storage, icechunk.Storage)
    described = repr(storage)
    assert {"s3": "S3Storage", "gcs": "GcsObjectStoreBackend", "azure": "AzureObjectStoreBackend"}[kind] in described
    assert f"bucket={bucket}" in described or f"container={bucket}" in described
    assert f"prefix={prefix}" in described
    if "region" in options:
        assert f"region={options['region']}" in described
    if "endpoint_url" in options:   # (anonymous=true goes to the credentials, which the repr does not show)
        assert "endpoint_url=http://127.0.0.1:9000" in described and "allow_http=true" in described
        assert "force_path_style=true" in described
    if kind == "azure":
        assert f"account={options['account']}" in described


def test_local_locations_and_bad_ones(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    loc = StoreLocation.parse("outputs/fc.zarr")
    assert loc.is_local and loc.path == str(tmp_path / "outputs" / "fc.zarr") and str(loc) == loc.path
    assert StoreLocation.parse(tmp_path / "outputs" / "fc.zarr") == loc
    assert StoreLocation.parse(f"file://{tmp_path}/outputs/fc.zarr") == loc
    assert StoreLocation.parse({"kind": "local", "path": "outputs/fc.zarr"}) == loc
    assert "LocalFileSystem" in repr(loc.storage())
    (tmp_path / "real.zarr").mkdir()
    (tmp_path / "link.zarr").symlink_to(tmp_path / "real.zarr")
    assert StoreLocation.parse("link.zarr").key() == StoreLocation.parse("real.zarr").key()
    for bad, message in [("ftp://host/x", "unknown scheme"), ("s3:///prefix", "needs a bucket"),
                         ("az://container/p", "account=NAME"), ("s3://b/p?colour=blue", r"unknown option\(s\) \['colour'\]"),
                         ("s3://b/p?anonymous=maybe", "not true or false"), ({"kind": "hdfs"}, "is not one of")]:
        with pytest.raises(ForecastStoreError, match=message):
            StoreLocation.parse(bad)


def test_second_exporter_through_a_symlink_fails_while_the_first_holds_the_store(tmp_path, reference):  # noqa: F811
    """Two exporters at once on one local store, one by its real path (a child process, held between writing
    and committing its second batch) and one through a symlink: the second fails at once, naming the lock;
    the first's uncommitted batch stays invisible after it is killed, and a rerun completes the store."""
    store, link, marker = tmp_path / "fc.zarr", tmp_path / "alias.zarr", tmp_path / "written"
    link.symlink_to(store, target_is_directory=True)
    child = child_export(store, len(INITS), kill_batch=2, marker=marker)   # batches [0], [1, 2] <- held here
    try:
        wait_for(marker, child)
        with pytest.raises(ForecastStoreError, match=r"another export is writing to .*alias\.zarr.*lock"):
            export_forecasts(link, INITS, synthetic_forecast, PROVENANCE)
        assert committed_init_times(link) == list(INITS[:1])
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    report = export_forecasts(link, INITS, synthetic_forecast, PROVENANCE, workers=2)
    assert report.skipped == list(INITS[:1]) and report.committed == list(INITS)
    check_visible(store, reference)


def test_a_writer_the_lock_cannot_see_is_caught_by_icechunk_conflict_detection(tmp_path):
    """Another writer commits to ``main`` while an export is writing (as a second exporter on an object store,
    where there is no lock, would): the export's commit fails with a ForecastStoreError, nothing of its batch
    is visible, and the other writer's commit is kept."""
    store = tmp_path / "fc.zarr"
    export_forecasts(store, INITS[:1], synthetic_forecast, PROVENANCE)

    others: list[str] = []

    def other_writer_commits(batch):
        repo = icechunk.Repository.open(icechunk.local_filesystem_storage(str(store)))
        session = repo.writable_session("main")
        zarr.open_group(session.store, mode="r+").attrs["note"] = f"written by someone else, {len(others)}"
        others.append(session.commit("someone else"))

    with pytest.raises(ForecastStoreError, match=r"another export committed to .*fc\.zarr.*were not committed.*"
                                                 r"expected parent"):
        export_forecasts(store, INITS[:3], synthetic_forecast, PROVENANCE, before_commit=other_writer_commits)
    assert committed_init_times(store) == list(INITS[:1])
    assert [c["message"] for c in history(store)][:2] == ["someone else", "export 1 init time(s): 2020-08-25T00:00:00"]
    assert latest_forecast(store, ["iberia"]).attrs["init_time"] == str(INITS[0])
    # a replace whose main moved meanwhile does not move main back
    with pytest.raises(ForecastStoreError, match="not replaced"):
        export_forecasts(store, INITS[:2], synthetic_forecast, PROVENANCE, replace=True, workers=2,
                         before_commit=lambda batch: other_writer_commits(batch) if len(batch) == 1 else None)
    assert committed_init_times(store) == list(INITS[:1])
    assert open_repository(store).list_branches() == {"main"}
    assert open_repository(store).lookup_branch("main") == others[-1]
    # the next export starts from what is there
    assert export_forecasts(store, INITS[:3], synthetic_forecast, PROVENANCE).written == list(INITS[1:3])


def test_export_into_a_repository_nothing_was_committed_to(tmp_path, reference):  # noqa: F811
    """An export killed before its first commit leaves an empty repository; the next export fills it."""
    store = tmp_path / "fc.zarr"
    icechunk.Repository.create(icechunk.local_filesystem_storage(str(store)))
    report = export_forecasts(store, INITS[:2], synthetic_forecast, PROVENANCE)
    assert report.committed == list(INITS[:2])
    check_visible(store, reference)
