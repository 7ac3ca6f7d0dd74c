"""The object store fails: down before the run, or failing in the middle of a multipart upload.

Each case checks what is left behind: the run's tracking row, the watermark, the
(absent) object at the key, and that a retry loads exactly the rows still owed.
"""

from __future__ import annotations

from typing import Any

import pytest

from platform_assets.ingestion.database_ingestor import extract_table_incremental
from platform_assets.ingestion.errors import IngestionError, TransientError
from platform_assets.ingestion.sink import upload as upload_module
from platform_resources import object_store as object_store_module
from platform_resources.object_store import ObjectStore
from tests.faults.support import (
    FaultProxy,
    MotoServer,
    StoreWithoutBucketCheck,
    add_orders,
    assert_no_object,
    read_rows,
    runs,
    services_for,
    source_versions,
    store,
    success_union,
    watermark_row,
)

SOURCE = "public.orders"
COLUMNS = ("id", "version", "updated_at")


def _extract(services: Any, key: str, date: str) -> dict[str, Any]:
    return extract_table_incremental("orders", "public", "updated_at", key, date, services=services)


# --------------------------------------------------------------------------- 1. store down


@pytest.mark.parametrize("stage", ["bucket_check", "upload"])
def test_store_down_then_back_on_the_same_port(pg: Any, orders: Any, services: Any, stage: str) -> None:
    bucket = services.bronze_bucket
    server = MotoServer().start()
    try:
        add_orders(orders, 50, "2024-01-01")
        first = _extract(services_for(pg, store(server.endpoint), bucket), "orders/1.parquet", "2024-01-01")
        assert first["row_count"] == 50
        add_orders(orders, 30, "2024-01-02")
        before = watermark_row(orders, SOURCE)

        server.stop()  # the port now refuses connections
        store_type = ObjectStore if stage == "bucket_check" else StoreWithoutBucketCheck
        down = services_for(pg, store(server.endpoint, store_type=store_type), bucket)
        with pytest.raises(TransientError) as failure:  # unreachable: worth retrying
            _extract(down, "orders/2.parquet", "2024-01-02")
        message = str(failure.value)
        assert server.endpoint in message
        assert "Failed to ingest" in message

        failed = runs(orders, SOURCE)[-1]
        assert failed["status"] == "failed"
        assert server.endpoint in failed["error_message"] and failed["error_message"] in message
        assert failed["finished_at"] is not None
        assert failed["row_count"] is None and failed["watermark_after"] is None
        assert watermark_row(orders, SOURCE) == before

        server.start()  # same port, same buckets
        healthy = store(server.endpoint)
        assert_no_object(healthy.client, bucket, "orders/2.parquet")
        retry = _extract(services_for(pg, healthy, bucket), "orders/2.parquet", "2024-01-02")
        assert retry["row_count"] == 30
        assert retry["watermark_before"] == before["watermark_value"]

        assert [r["status"] for r in runs(orders, SOURCE)] == ["success", "failed", "success"]
        every = success_union(orders, healthy.client, bucket, SOURCE, *COLUMNS)
        assert len(every) == len(set(every))  # nothing loaded twice
        assert every == source_versions(orders)  # nothing lost
        assert read_rows(healthy.client, bucket, "orders/2.parquet", "id") == [
            (i,) for i in range(51, 81)
        ]
    finally:
        server.stop()


# --------------------------------------------------------------------------- 2. down mid-upload

PART_BYTES = 5 * 1024 * 1024  # S3's smallest part


def _fail_second_part(action: str):
    def fault(method: str, path: str, params: dict[str, list[str]]) -> str | None:
        if method == "PUT" and params.get("partNumber") == ["2"] and "uploadId" in params:
            return action
        return None

    return fault


def _big_increment(orders: Any) -> None:
    """~100k rows of incompressible text: a Parquet file of 3 parts of 5 MiB."""
    add_orders(orders, 100_000, "2024-01-02", payload_bytes=128)


@pytest.mark.parametrize("action", ["drop", "500"])
def test_store_fails_mid_multipart_upload(
    pg: Any, orders: Any, services: Any, s3_endpoint: str, monkeypatch: pytest.MonkeyPatch, action: str
) -> None:
    monkeypatch.setattr(object_store_module, "MULTIPART_BYTES", PART_BYTES)
    monkeypatch.setattr(upload_module, "GROWING_PART_BYTES", PART_BYTES)
    bucket = services.bronze_bucket
    direct = services.store.client  # straight to moto, not through the proxy
    proxy = FaultProxy(s3_endpoint).start()
    try:
        add_orders(orders, 20, "2024-01-01")
        _extract(services_for(pg, store(proxy.endpoint), bucket), "big/1.parquet", "2024-01-01")
        _big_increment(orders)
        before = watermark_row(orders, SOURCE)

        proxy.fault = _fail_second_part(action)
        with pytest.raises(IngestionError) as failure:
            _extract(services_for(pg, store(proxy.endpoint), bucket), "big/2.parquet", "2024-01-02")
        message = str(failure.value)
        assert "big/2.parquet" in message
        # every attempt at part 2 failed; the multipart upload was really used
        failed_parts = [s for s in proxy.requests("PUT", "partNumber") if s[3] == action]
        assert len(failed_parts) >= 2, proxy.seen
        # CreateMultipartUpload: the upload streamed while the file was written (when it
        # got that far), then the whole-file upload it falls back to
        assert 1 <= len(proxy.requests("POST", "uploads")) <= 2

        failed = runs(orders, SOURCE)[-1]
        assert failed["status"] == "failed" and failed["error_message"] in message
        assert failed["row_count"] is None
        assert watermark_row(orders, SOURCE) == before
        assert_no_object(direct, bucket, "big/2.parquet")
        # the upload was aborted: no parts left behind in the bucket
        assert direct.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []

        proxy.fault = None  # the store recovers
        retry = _extract(services_for(pg, store(proxy.endpoint), bucket), "big/2.parquet", "2024-01-02")
        assert retry["row_count"] == 100_000
        assert retry["file_size_bytes"] > 2 * PART_BYTES
        every = success_union(orders, direct, bucket, SOURCE, *COLUMNS)
        assert len(every) == len(set(every)) == 100_020
        assert every == source_versions(orders)
    finally:
        proxy.stop()
    assert proxy.endpoint in message
    assert isinstance(failure.value, TransientError)


def _fail_upload_with_500(pg: Any, orders: Any, services: Any, s3_endpoint: str) -> tuple[IngestionError, str]:
    proxy = FaultProxy(s3_endpoint, _fail_second_part("500")).start()
    try:
        _big_increment(orders)
        with pytest.raises(IngestionError) as failure:
            _extract(services_for(pg, store(proxy.endpoint), services.bronze_bucket), "big/1.parquet", "2024-01-02")
    finally:
        proxy.stop()
    return failure.value, proxy.endpoint


def test_upload_error_reply_names_the_endpoint(
    pg: Any, orders: Any, services: Any, s3_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(object_store_module, "MULTIPART_BYTES", PART_BYTES)
    error, endpoint = _fail_upload_with_500(pg, orders, services, s3_endpoint)
    assert endpoint in str(error)


def test_upload_error_reply_5xx_is_transient(
    pg: Any, orders: Any, services: Any, s3_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(object_store_module, "MULTIPART_BYTES", PART_BYTES)
    error, _ = _fail_upload_with_500(pg, orders, services, s3_endpoint)
    assert isinstance(error, TransientError)
