"""What one successful load stored and recorded; ``as_guide_dict`` is the guide's result dict."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

WATERMARK_FIELDS = ("watermark_column", "watermark_type", "watermark_before", "watermark_after")


@dataclass(frozen=True)
class LoadResult:
    """The fields every load reports (the guide's result shape)."""

    uri: str
    object_key: str
    row_count: int
    file_size_bytes: int
    checksum: str
    """MD5 of the stored Parquet object."""
    source_name: str
    source_type: str
    execution_date: str
    run_id: int
    schema: dict[str, Any]
    schema_changes: dict[str, Any]
    preview: list[dict[str, Any]]

    @property
    def status(self) -> str:
        return "success"

    def as_guide_dict(self) -> dict[str, Any]:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        ordered = {k: values.pop(k) for k in ("uri", "object_key", "row_count", "file_size_bytes", "checksum",
                                              "source_name", "source_type", "execution_date")}
        return {**ordered, "status": self.status, **values}


@dataclass(frozen=True)
class TableLoadResult(LoadResult):
    """A PostgreSQL load: its range, watermark and what the partition's checks need."""

    load_mode: str = "full"
    partition_key: str | None = None
    extract_range: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)
    rows_from_source: int = 0
    rows_kept: int = 0
    source_count: int | None = None
    """Rows of the range counted in the extract's snapshot (when asked for)."""
    merged: bool = False
    rebuild: bool = False
    watermark_reset: dict[str, Any] | None = None
    null_watermark_rows: int | None = None
    null_watermark_sample: list[dict[str, Any]] | None = None
    watermark_column: str | None = None
    watermark_type: str | None = None
    watermark_before: str | None = None
    watermark_after: str | None = None
    deleted_rows: int | None = None
    """Rows of the partition's tombstone (sources that capture deletes; else None)."""
    deletes_uri: str | None = None
    key_columns: list[str] = field(default_factory=list)
    """The row's key (primary key or the registry's ``key_columns``), for check samples."""

    def as_guide_dict(self) -> dict[str, Any]:
        result = super().as_guide_dict()
        del result["key_columns"]
        if not self.watermark_column:
            for name in WATERMARK_FIELDS:
                del result[name]
        if self.deleted_rows is None:
            del result["deleted_rows"], result["deletes_uri"]
        return result


@dataclass(frozen=True)
class FileLoadResult(LoadResult):
    """A file load: the file read and its content's MD5."""

    file: str = ""
    source_md5: str = ""
