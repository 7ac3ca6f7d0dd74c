"""Dagster resources for the object store: the stock S3Resource pointed at MinIO, and layer buckets."""

from __future__ import annotations

import os

import dagster as dg
from dagster_aws.s3 import S3Resource

from platform_resources.config import DEFAULT_BUCKETS, DEFAULT_ENDPOINT
from platform_resources.object_store import ObjectStore


def _secret(name: str, default: str) -> str | dg.EnvVar:
    """An EnvVar (read at run time, hidden in the UI) when set, else the local default."""
    return dg.EnvVar(name) if os.environ.get(name) else default


def minio_s3_resource() -> S3Resource:
    """S3Resource configured from MINIO_ENDPOINT, MINIO_ACCESS_KEY and MINIO_SECRET_KEY."""
    return S3Resource(
        endpoint_url=_secret("MINIO_ENDPOINT", DEFAULT_ENDPOINT),
        aws_access_key_id=_secret("MINIO_ACCESS_KEY", "minioadmin"),
        aws_secret_access_key=_secret("MINIO_SECRET_KEY", "minioadmin"),
        region_name=os.environ.get("MINIO_REGION", "us-east-1"),
    )


class StorageLayersResource(dg.ConfigurableResource):
    """Bucket name of each storage layer."""

    bronze_bucket: str = DEFAULT_BUCKETS["bronze"]
    silver_bucket: str = DEFAULT_BUCKETS["silver"]
    gold_bucket: str = DEFAULT_BUCKETS["gold"]

    @classmethod
    def from_env(cls) -> StorageLayersResource:
        return cls(
            bronze_bucket=os.environ.get("BRONZE_BUCKET", DEFAULT_BUCKETS["bronze"]),
            silver_bucket=os.environ.get("SILVER_BUCKET", DEFAULT_BUCKETS["silver"]),
            gold_bucket=os.environ.get("GOLD_BUCKET", DEFAULT_BUCKETS["gold"]),
        )


def object_store(s3: S3Resource) -> ObjectStore:
    return ObjectStore(s3.get_client(), s3.endpoint_url or "the default AWS endpoint")
