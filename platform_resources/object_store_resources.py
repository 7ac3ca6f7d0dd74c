"""Dagster resources for the object store: the stock S3Resource pointed at MinIO, and layer buckets."""

from __future__ import annotations

import dagster as dg
from dagster_aws.s3 import S3Resource

from platform_resources.config import (
    DEFAULT_BUCKETS,
    OBJECT_STORE_VARIABLES,
    ObjectStoreSettings,
    is_set,
)
from platform_resources.object_store import ObjectStore


def minio_s3_resource() -> S3Resource:
    """S3Resource configured from MINIO_ENDPOINT, MINIO_ACCESS_KEY and MINIO_SECRET_KEY: each
    an EnvVar (read at run time, hidden in the UI) when set, else the local default."""
    settings = ObjectStoreSettings.from_env()
    values = {
        field: dg.EnvVar(variable) if is_set(variable) else getattr(settings, field)
        for field, variable in OBJECT_STORE_VARIABLES.items()
    }
    return S3Resource(
        endpoint_url=values["endpoint_url"],
        aws_access_key_id=values["access_key"],
        aws_secret_access_key=values["secret_key"],
        region_name=settings.region,
    )


class StorageLayersResource(dg.ConfigurableResource):
    """Bucket name of each storage layer."""

    bronze_bucket: str = DEFAULT_BUCKETS["bronze"]
    silver_bucket: str = DEFAULT_BUCKETS["silver"]
    gold_bucket: str = DEFAULT_BUCKETS["gold"]

    @classmethod
    def from_env(cls) -> StorageLayersResource:
        buckets = ObjectStoreSettings.from_env().buckets
        return cls(bronze_bucket=buckets["bronze"], silver_bucket=buckets["silver"], gold_bucket=buckets["gold"])


def object_store(s3: S3Resource) -> ObjectStore:
    return ObjectStore(s3.get_client(), s3.endpoint_url or "the default AWS endpoint")
