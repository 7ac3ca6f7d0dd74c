"""Object keys in the bronze bucket."""

from __future__ import annotations

from platform_assets.ingestion.errors import IngestionError

MAX_KEY_BYTES = 1024


def validate_object_key(key: str) -> None:
    """Refuse keys that S3 would reject or that escape their prefix."""
    parts = key.split("/")
    if (
        not key
        or key.startswith("/")
        or any(p in {"", ".", ".."} for p in parts)
        or any(ord(ch) < 32 or ch == "\\" for ch in key)
        or len(key.encode()) > MAX_KEY_BYTES
    ):
        raise IngestionError(
            f"object key {key!r} is not allowed: use a relative path of non-empty segments "
            "without '.', '..', backslashes or control characters (at most 1024 bytes)"
        )
