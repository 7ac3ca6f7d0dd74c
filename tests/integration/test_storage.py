"""The guide's "Verifying Bronze Layer Contents" snippet, with only its import changed."""

from __future__ import annotations

import contextlib
import io

from platform_assets.ingestion.database_ingestor import extract_table_full
from tests.helpers import query


def test_guide_snippet_lists_the_bronze_objects(pg_conn, services, store_settings, monkeypatch):
    monkeypatch.setenv("MINIO_ENDPOINT", store_settings.endpoint_url)
    monkeypatch.setenv("MINIO_ACCESS_KEY", store_settings.access_key)
    monkeypatch.setenv("MINIO_SECRET_KEY", store_settings.secret_key)
    monkeypatch.setenv("BRONZE_BUCKET", store_settings.buckets["bronze"])
    query(pg_conn, "CREATE TABLE orders (id int); INSERT INTO orders VALUES (1), (2)")
    result = extract_table_full(
        "orders", "public", "postgres/orders/2024-01-01/orders.parquet", "2024-01-01", services=services
    )
    extract_table_full("orders", "public", "postgres/orders/2024-01-02/orders.parquet", "2024-01-02",
                       services=services)

    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        from platform_resources.storage import StorageLayer, list_layer_objects

        objects = list_layer_objects(StorageLayer.BRONZE, prefix="postgres/orders/2024-01-01/")
        for obj in objects:
            print(f"{obj['Key']} ({obj['Size']} bytes)")

    assert printed.getvalue() == (
        f"postgres/orders/2024-01-01/orders.parquet ({result['file_size_bytes']} bytes)\n"
    )
