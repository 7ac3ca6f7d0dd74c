"""Bucket-level operations on an S3-compatible store (MinIO in production)."""

from __future__ import annotations

import logging
import threading
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
# Parts of a file uploaded while it is written (S3 and MinIO need >= 5 MiB but the last).
GROWING_PART_BYTES = 8 * 1024 * 1024

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

    def growing_upload(self, path: Path, bucket: str, key: str) -> GrowingFileUpload:
        """An upload of ``path`` that starts while the file is still being written."""
        return GrowingFileUpload(self, path, bucket, key, GROWING_PART_BYTES)

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


class GrowingFileUpload:
    """Uploads a local file in parts while it is still being written.

    The writer reports how many bytes are final on disk (``grown``); a background
    thread sends every full part of ``GROWING_PART_BYTES`` to a multipart upload as
    soon as it is there, so the upload overlaps with producing the file. Nothing is
    visible in the bucket until ``complete``, which sends the rest and completes the
    upload. A file smaller than one part is sent by ``upload_file`` at ``complete``.
    If anything goes wrong with the parts, ``complete`` aborts the multipart upload
    and sends the whole file with ``upload_file`` instead (with its retries and its
    error reporting), so streaming never changes what is stored or how failures show.
    ``restart`` forgets what was sent (the file is being rewritten from the start);
    ``abort`` cancels it. Multipart uploads left behind by a killed process are
    removed by the store's stale-upload expiry (MinIO: 24 hours by default).
    """

    def __init__(self, store: ObjectStore, path: Path, bucket: str, key: str, part_bytes: int):
        self._store = store
        self._path = path
        self._bucket = bucket
        self._key = key
        self._part_bytes = part_bytes
        self._changed = threading.Condition()
        self._reset_state()

    def _reset_state(self) -> None:
        self._available = 0
        self._sent = 0
        self._stopping = False
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []
        self._failure: BaseException | None = None
        self._thread: threading.Thread | None = None

    def grown(self, size: int) -> None:
        """The first ``size`` bytes of the file are written and will not change."""
        with self._changed:
            self._available = size
            if self._thread is None and size - self._sent >= self._part_bytes:
                self._thread = threading.Thread(target=self._send_parts, name="growing-upload", daemon=True)
                self._thread.start()
            self._changed.notify()

    def complete(self, size: int) -> None:
        """The file is complete at ``size`` bytes: store it at ``bucket/key``."""
        self._stop_sending()
        if self._upload_id is not None and self._failure is None:
            try:
                if size > self._sent or not self._parts:
                    self._send_part(self._sent, size - self._sent)
                self._store.client.complete_multipart_upload(
                    Bucket=self._bucket, Key=self._key, UploadId=self._upload_id,
                    MultipartUpload={"Parts": self._parts},
                )
                return
            except (BotoCoreError, ClientError) as e:
                self._failure = e
        if self._failure is not None:
            log.warning("streamed upload of s3://%s/%s failed (%s); uploading the file again", self._bucket,
                        self._key, self._failure)
        self._abort_multipart()
        self._store.upload_file(self._path, self._bucket, self._key)

    def restart(self) -> None:
        """The file is rewritten from its first byte: drop what was sent."""
        self.abort()
        self._reset_state()

    def abort(self) -> None:
        """Cancel: nothing of this upload is stored."""
        self._stop_sending()
        self._abort_multipart()

    def _stop_sending(self) -> None:
        with self._changed:
            self._stopping = True
            self._changed.notify()
        if self._thread is not None:
            self._thread.join()

    def _send_parts(self) -> None:
        try:
            while True:
                with self._changed:
                    while not self._stopping and self._available - self._sent < self._part_bytes:
                        self._changed.wait()
                    if self._stopping:
                        return
                self._send_part(self._sent, self._part_bytes)
        except Exception as e:  # handed to complete(), which falls back to a whole-file upload
            self._failure = e

    def _send_part(self, offset: int, length: int) -> None:
        if self._upload_id is None:
            reply = self._store.client.create_multipart_upload(Bucket=self._bucket, Key=self._key)
            self._upload_id = reply["UploadId"]
        with self._path.open("rb") as f:
            f.seek(offset)
            body = f.read(length)
        number = len(self._parts) + 1
        reply = self._store.client.upload_part(
            Bucket=self._bucket, Key=self._key, UploadId=self._upload_id, PartNumber=number, Body=body,
        )
        self._parts.append({"PartNumber": number, "ETag": reply["ETag"]})
        self._sent = offset + len(body)

    def _abort_multipart(self) -> None:
        if self._upload_id is None:
            return
        upload_id, self._upload_id = self._upload_id, None
        try:
            self._store.client.abort_multipart_upload(Bucket=self._bucket, Key=self._key, UploadId=upload_id)
        except (BotoCoreError, ClientError) as e:
            log.warning("could not abort multipart upload %s of s3://%s/%s: %s", upload_id, self._bucket, self._key, e)
