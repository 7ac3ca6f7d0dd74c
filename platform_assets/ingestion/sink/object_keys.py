"""Object keys in the bronze bucket, and names stored in the tracking tables."""

from __future__ import annotations

import string

from platform_assets.ingestion.errors import IngestionError

MAX_KEY_BYTES = 1024


def check_storable(**texts: str | None) -> None:
    """Refuse names that cannot even be recorded in PostgreSQL (NUL, lone surrogates).

    Keyword names label the value in the message (``object_key`` reads "object key").
    """
    for name, text in texts.items():
        field = name.replace("_", " ")
        if text is None:
            continue
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as e:
            raise IngestionError(f"{field} {text!r} is not valid Unicode text") from e
        if "\x00" in text:
            raise IngestionError(f"{field} {text!r} contains a NUL character")


def validate_object_key(key: str) -> None:
    """Refuse keys that S3 would reject or that escape their prefix."""
    check_storable(object_key=key)
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


def check_key_pattern(pattern: str, placeholders: tuple[str, ...], required: tuple[str, ...]) -> None:
    """Refuse an object key pattern that could give two partitions or versions one key.

    Placeholders are plain ``{name}`` fields: a format spec or conversion (``{date:.7}``,
    ``{version!s:.1}``) could cut a value so that two values give one key, an unknown
    or positional field does not render. ``required`` must each appear.
    """
    try:
        fields = [(f, spec, conv) for _, f, spec, conv in string.Formatter().parse(pattern) if f is not None]
    except ValueError as e:
        raise ValueError(f"is not a valid pattern ({e})") from e
    for field, spec, conversion in fields:
        if field not in placeholders:
            raise ValueError(f"uses {{{field}}}; the placeholders are {', '.join(f'{{{p}}}' for p in placeholders)}")
        if spec or conversion:
            raise ValueError(
                f"formats {{{field}}} ({pattern!r}): placeholders must be plain, e.g. {{{field}}}, "
                "so that two values never give one key"
            )
    missing = [p for p in required if p not in {f for f, _, _ in fields}]
    if missing:
        raise ValueError(
            f"must use {', '.join(f'{{{p}}}' for p in missing)} so that each partition (and each version of "
            "a file) has its own object"
        )
