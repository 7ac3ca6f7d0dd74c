"""Bucket-level operations on an S3-compatible store (MinIO in production)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from boto3.exceptions import S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

# Parts of 16 MiB, two at a time: an upload holds at most ~32 MiB in memory.
MULTIPART_BYTES = 16 * 1024 * 1024
UPLOAD_THREADS = 2

log = logging.getLogger(__name__)


class ObjectStoreError(Exception):
    """The object store refused or could not be reached.

    ``transient`` is True when retrying may succeed: the store was unreachable, the
    connection broke, or it answered with a 5xx/throttling error.
    """

    def __init__(self, message: str, transient: bool):
        super().__init__(message)
        self.transient = transient


class ObjectStore:
    """A boto3 S3 client plus the endpoint it talks to (for error messages)."""

    def __init__(self, client: Any, endpoint_url: str):
        self.client = client
        self.endpoint_url = endpoint_url
        self._ensured: set[str] = set()

    def ensure_bucket(self, bucket: str) -> None:
        """Create ``bucket`` if it does not exist yet."""
        if bucket in self._ensured:
            return
        try:
            self.client.head_bucket(Bucket=bucket)
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") not in {"404", "NoSuchBucket", "NotFound"}:
                raise self._error(f"cannot access bucket {bucket!r}", e) from e
            try:
                self.client.create_bucket(Bucket=bucket)
            except ClientError as create_error:
                code = create_error.response.get("Error", {}).get("Code")
                if code not in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
                    raise self._error(f"cannot create bucket {bucket!r}", create_error) from create_error
        except BotoCoreError as e:
            raise self._error(f"cannot reach bucket {bucket!r}", e) from e
        self._ensured.add(bucket)

    def upload_file(self, path: Path, bucket: str, key: str) -> None:
        """Store ``path`` at ``bucket/key``; the object appears only once complete."""
        try:
            self.client.upload_file(
                str(path), bucket, key,
                Config=TransferConfig(
                    multipart_threshold=MULTIPART_BYTES,
                    multipart_chunksize=MULTIPART_BYTES,
                    max_concurrency=UPLOAD_THREADS,
                ),
            )
        except (BotoCoreError, ClientError, S3UploadFailedError) as e:
            raise self._error(f"upload to s3://{bucket}/{key} failed", e) from e

    def list_objects(self, bucket: str, prefix: str = "") -> Iterator[dict[str, Any]]:
        try:
            paginator = self.client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
                yield from page.get("Contents", [])
        except (BotoCoreError, ClientError) as e:
            raise self._error(f"cannot list s3://{bucket}/{prefix}", e) from e

    def download_file(self, bucket: str, key: str, path: Path) -> None:
        try:
            self.client.download_file(bucket, key, str(path))
        except (BotoCoreError, ClientError) as e:
            raise self._error(f"cannot read s3://{bucket}/{key}", e) from e

    def download_if_exists(self, bucket: str, key: str, path: Path) -> bool:
        """Download ``bucket/key`` to ``path``; False when there is no such object."""
        try:
            self.client.download_file(bucket, key, str(path))
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NotFound"}:
                return False
            raise self._error(f"cannot read s3://{bucket}/{key}", e) from e
        except BotoCoreError as e:
            raise self._error(f"cannot read s3://{bucket}/{key}", e) from e
        return True

    def _error(self, what: str, cause: Exception) -> ObjectStoreError:
        return ObjectStoreError(
            f"{what} at {self.endpoint_url}: {cause}; check that the object store is running "
            "and reachable, the bucket exists and the credentials (MINIO_ACCESS_KEY/MINIO_SECRET_KEY) are right",
            transient=_is_transient(cause),
        )


_TRANSIENT_CODES = {"InternalError", "ServiceUnavailable", "SlowDown", "RequestTimeout", "Throttling"}


def _is_transient(cause: BaseException) -> bool:
    if isinstance(cause, S3UploadFailedError):
        # boto3's transfer manager re-raises the reply's error as text; the original is its context.
        original = cause.__context__
        if original is not None and original is not cause:
            return _is_transient(original)
        return any(marker in str(cause) for marker in ("(500)", "(502)", "(503)", "(504)", *_TRANSIENT_CODES))
    if isinstance(cause, ClientError):
        error = cause.response.get("Error", {})
        status = cause.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return status >= 500 or error.get("Code") in _TRANSIENT_CODES
    return isinstance(cause, (EndpointConnectionError, ConnectionClosedError, ReadTimeoutError, ConnectTimeoutError))


def probe_s3(endpoint_url: str, access_key: str, secret_key: str, region: str = "us-east-1",
             timeout: float = 3.0) -> str | None:
    """Whether ``endpoint_url`` answers as an S3 server: None if it does, else why not (one line).

    One ListBuckets request, no retries, short timeouts: a wrong port fails in seconds
    rather than after the client's retries.
    """
    import boto3
    from botocore.config import Config

    client = boto3.client(
        "s3", endpoint_url=endpoint_url, aws_access_key_id=access_key, aws_secret_access_key=secret_key,
        region_name=region,
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1, "mode": "standard"},
                      connect_timeout=timeout, read_timeout=timeout),
    )
    try:
        response = client.list_buckets()
    except (EndpointConnectionError, ConnectTimeoutError) as e:
        return f"nothing answers at {endpoint_url} ({type(e).__name__})"
    except ClientError as e:
        status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        code = e.response.get("Error", {}).get("Code")
        if code in {"InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied"}:
            return f"the S3 server at {endpoint_url} refuses the credentials ({code}): check MINIO_ACCESS_KEY/MINIO_SECRET_KEY"
        return f"{endpoint_url} does not answer as an S3 server (HTTP {status}, {code or 'no S3 error code'})"
    except Exception as e:  # noqa: BLE001 - any other answer (HTML, garbage, a reset) is "not S3"
        return f"{endpoint_url} does not answer as an S3 server ({type(e).__name__})"
    if "Buckets" not in response:
        return f"{endpoint_url} does not answer as an S3 server (no bucket list in its answer)"
    return None
