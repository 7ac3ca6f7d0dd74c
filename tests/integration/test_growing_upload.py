"""GrowingFileUpload against the S3 server on loopback: parts sent while the file grows.

The object must always equal the final file, appear only at ``complete``, and leave
no multipart upload behind whether it completes, restarts, is aborted or falls back.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from platform_assets.ingestion.sink.upload import GrowingFileUpload
from platform_resources.object_store import ObjectStore
from tests.faults.support import FaultProxy
from tests.faults.support import store as store_at

PART = 5 * 1024 * 1024  # S3's smallest part


@pytest.fixture
def store(store_settings: Any) -> ObjectStore:
    store = ObjectStore(store_settings.client(), store_settings.endpoint_url)
    store.ensure_bucket(store_settings.buckets["bronze"])
    return store


@pytest.fixture
def bucket(store_settings: Any) -> str:
    return store_settings.buckets["bronze"]


def _write_growing(path: Path, upload: GrowingFileUpload, chunks: list[bytes]) -> bytes:
    """Append ``chunks`` to ``path``, telling the upload after each one."""
    with path.open("wb") as f:
        for chunk in chunks:
            f.write(chunk)
            f.flush()
            upload.grown(f.tell())
    return b"".join(chunks)


def _stored(store: ObjectStore, bucket: str, key: str) -> tuple[bytes, str]:
    reply = store.client.get_object(Bucket=bucket, Key=key)
    return reply["Body"].read(), reply["ETag"]


def _no_uploads_left(store: ObjectStore, bucket: str) -> bool:
    return store.client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_parts_are_sent_while_the_file_grows(store: ObjectStore, bucket: str, tmp_path: Path) -> None:
    path = tmp_path / "data.parquet"
    upload = GrowingFileUpload(store, path, bucket, "grow/a.parquet", PART)
    data = _write_growing(path, upload, [os.urandom(3 * 1024 * 1024) for _ in range(5)] + [b"footer"])
    assert store.client.list_objects_v2(Bucket=bucket, Prefix="grow/").get("KeyCount") == 0  # not yet visible
    upload.complete(len(data))
    body, etag = _stored(store, bucket, "grow/a.parquet")
    assert body == data
    # multipart: parts went while the file grew, the rest at complete (how many went
    # early depends on thread timing)
    assert etag.strip('"').rsplit("-", 1)[1] in {"2", "3"}
    assert _no_uploads_left(store, bucket)


def test_small_file_is_sent_whole(store: ObjectStore, bucket: str, tmp_path: Path) -> None:
    path = tmp_path / "small.parquet"
    upload = GrowingFileUpload(store, path, bucket, "grow/small.parquet", PART)
    data = _write_growing(path, upload, [b"x" * 1000, b"y" * 10])
    upload.complete(len(data))
    body, etag = _stored(store, bucket, "grow/small.parquet")
    assert body == data and "-" not in etag.strip('"')


def test_exact_multiple_of_the_part_size(store: ObjectStore, bucket: str, tmp_path: Path) -> None:
    path = tmp_path / "exact.parquet"
    upload = GrowingFileUpload(store, path, bucket, "grow/exact.parquet", PART)
    data = _write_growing(path, upload, [os.urandom(PART), os.urandom(PART)])
    upload.complete(len(data))
    assert _stored(store, bucket, "grow/exact.parquet")[0] == data


def test_restart_forgets_the_first_attempt(store: ObjectStore, bucket: str, tmp_path: Path) -> None:
    path = tmp_path / "restart.parquet"
    upload = GrowingFileUpload(store, path, bucket, "grow/restart.parquet", PART)
    _write_growing(path, upload, [os.urandom(PART) for _ in range(3)])
    upload.restart()  # e.g. a CSV column widened to text: the file is written again
    data = _write_growing(path, upload, [os.urandom(2 * PART), b"end"])
    upload.complete(len(data))
    assert _stored(store, bucket, "grow/restart.parquet")[0] == data
    assert _no_uploads_left(store, bucket)


def test_abort_stores_nothing(store: ObjectStore, bucket: str, tmp_path: Path) -> None:
    path = tmp_path / "abort.parquet"
    upload = GrowingFileUpload(store, path, bucket, "grow/abort.parquet", PART)
    _write_growing(path, upload, [os.urandom(PART) for _ in range(3)])
    upload.abort()
    assert store.client.list_objects_v2(Bucket=bucket, Prefix="grow/").get("KeyCount") == 0
    assert _no_uploads_left(store, bucket)


def test_a_failed_part_falls_back_to_uploading_the_whole_file(
    store_settings: Any, bucket: str, store: ObjectStore, tmp_path: Path
) -> None:
    failed: list[str] = []

    def fail_first_part_two(method: str, path: str, params: dict[str, list[str]]) -> str | None:
        if method == "PUT" and params.get("partNumber") == ["2"] and not failed:
            failed.append(params["uploadId"][0])
            return "500"
        return None

    proxy = FaultProxy(store_settings.endpoint_url, fail_first_part_two).start()
    try:
        through_proxy = store_at(proxy.endpoint)
        path = tmp_path / "fallback.parquet"
        upload = GrowingFileUpload(through_proxy, path, bucket, "grow/fallback.parquet", PART)
        data = _write_growing(path, upload, [os.urandom(PART) for _ in range(3)] + [b"end"])
        deadline = time.monotonic() + 30
        while not failed and time.monotonic() < deadline:
            time.sleep(0.05)  # on a loaded machine the upload thread may lag the writer
        upload.complete(len(data))
    finally:
        proxy.stop()
    assert failed  # the streamed upload really lost a part
    assert _stored(store, bucket, "grow/fallback.parquet")[0] == data
    assert _no_uploads_left(store, bucket)
