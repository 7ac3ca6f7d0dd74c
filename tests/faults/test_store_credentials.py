"""Object-store credentials and buckets that are wrong, against nanio (which checks SigV4
signatures, unlike moto), and the secret key kept out of every message, row and log line.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from platform_assets.ingestion.database_ingestor import extract_table_incremental
from platform_assets.ingestion.errors import IngestionError
from tests.faults.support import (
    NanioServer,
    StoreWithoutBucketCheck,
    add_orders,
    assert_no_object,
    query,
    read_rows,
    runs,
    services_for,
    source_versions,
    store,
    watermark_row,
)

ACCESS_KEY = "platform-writer"
SECRET_KEY = "nanio-Secret-Key-7Qx2vLp9"
WRONG_SECRET = "Wrong-Secret-Key-k3Jd8sWq"
SOURCE = "public.orders"


@pytest.fixture(scope="module")
def nanio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NanioServer]:
    data = tmp_path_factory.mktemp("nanio") / "data"
    data.mkdir()
    server = NanioServer(data, ACCESS_KEY, SECRET_KEY)
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _checksums_when_required(monkeypatch: pytest.MonkeyPatch) -> None:
    # nanio refuses boto3's default CRC checksum headers on multipart uploads
    monkeypatch.setenv("AWS_REQUEST_CHECKSUM_CALCULATION", "when_required")


def _secrets_absent(conn: Any, logs: Any, *texts: str) -> None:
    """Neither key appears in the texts, any tracking row (every column as text) or any log line."""
    rows = [text for (text,) in query(conn, "SELECT m::text FROM data_platform.ingestion_metadata m")]
    for secret in (SECRET_KEY, WRONG_SECRET):
        for text in texts:
            assert secret not in text
        assert not [r for r in rows if secret in r]
        assert secret not in logs.text
    assert logs.lines, "nothing was logged: the capture is not working"


def _extract(services: Any, key: str, date: str = "2024-01-02") -> dict[str, Any]:
    return extract_table_incremental("orders", "public", "updated_at", key, date, services=services)


@pytest.fixture
def loaded_once(pg: Any, orders: Any, nanio: NanioServer, services: Any) -> tuple[str, dict[str, Any]]:
    """A bucket on nanio with one successful run in it, and rows waiting for the next."""
    bucket = f"bronze-{pg.dbname.replace('_', '-')}"
    add_orders(orders, 30, "2024-01-01")
    _extract(services_for(pg, store(nanio.endpoint, ACCESS_KEY, SECRET_KEY), bucket), "creds/1.parquet", "2024-01-01")
    add_orders(orders, 12, "2024-01-02")
    return bucket, watermark_row(orders, SOURCE)


def _good(nanio: NanioServer) -> Any:
    return store(nanio.endpoint, ACCESS_KEY, SECRET_KEY)


def test_wrong_secret_key(pg: Any, orders: Any, nanio: NanioServer, loaded_once: Any, debug_logs: Any) -> None:
    bucket, before = loaded_once
    wrong = services_for(pg, store(nanio.endpoint, ACCESS_KEY, WRONG_SECRET), bucket)
    with pytest.raises(IngestionError) as failure:
        _extract(wrong, "creds/2.parquet")
    message = str(failure.value)
    assert nanio.endpoint in message
    assert "403" in message and "credentials (MINIO_ACCESS_KEY/MINIO_SECRET_KEY)" in message

    failed = runs(orders, SOURCE)[-1]
    assert failed["status"] == "failed" and failed["error_message"] in message
    assert watermark_row(orders, SOURCE) == before
    good = _good(nanio)
    assert_no_object(good.client, bucket, "creds/2.parquet")
    _secrets_absent(orders, debug_logs, message, repr(failure.value))

    _extract(services_for(pg, good, bucket), "creds/2.parquet")
    loaded = [r for k in ("creds/1.parquet", "creds/2.parquet")
              for r in read_rows(good.client, bucket, k, "id", "version", "updated_at")]
    assert sorted(loaded) == source_versions(orders) and len(loaded) == 42


def test_wrong_secret_key_at_upload(pg: Any, orders: Any, nanio: NanioServer, loaded_once: Any,
                                    debug_logs: Any) -> None:
    bucket, before = loaded_once
    wrong = services_for(
        pg, store(nanio.endpoint, ACCESS_KEY, WRONG_SECRET, store_type=StoreWithoutBucketCheck), bucket
    )
    with pytest.raises(IngestionError) as failure:
        _extract(wrong, "creds/2.parquet")
    message = str(failure.value)
    # what holds already: the state and the secrecy
    assert "SignatureDoesNotMatch" in message
    assert runs(orders, SOURCE)[-1]["status"] == "failed"
    assert watermark_row(orders, SOURCE) == before
    assert_no_object(_good(nanio).client, bucket, "creds/2.parquet")
    _secrets_absent(orders, debug_logs, message, repr(failure.value))
    # what does not
    assert nanio.endpoint in message and "credentials" in message


@pytest.mark.parametrize("bucket", ["Bad_Bucket", "10.0.0.1"])
def test_bucket_that_cannot_be_created(pg: Any, orders: Any, nanio: NanioServer, debug_logs: Any,
                                       bucket: str) -> None:
    add_orders(orders, 10, "2024-01-01")
    services = services_for(pg, _good(nanio), bucket)
    with pytest.raises(IngestionError) as failure:
        _extract(services, "creds/1.parquet")
    message = str(failure.value)
    assert repr(bucket) in message and nanio.endpoint in message
    [failed] = runs(orders, SOURCE)
    assert failed["status"] == "failed" and repr(bucket) in failed["error_message"]
    assert watermark_row(orders, SOURCE) is None
    listed = _good(nanio).client.list_buckets()["Buckets"]
    assert bucket not in [b["Name"] for b in listed]
    _secrets_absent(orders, debug_logs, message, repr(failure.value))
