"""A multipart upload that starts while its file is still being written."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from platform_resources.object_store import ObjectStore

# Parts of a file uploaded while it is written (S3 and MinIO need >= 5 MiB but the last).
GROWING_PART_BYTES = 8 * 1024 * 1024

log = logging.getLogger(__name__)


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

    def __init__(self, store: ObjectStore, path: Path, bucket: str, key: str, part_bytes: int | None = None):
        self._store = store
        self._path = path
        self._bucket = bucket
        self._key = key
        self._part_bytes = part_bytes or GROWING_PART_BYTES
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
