"""A file family as the engine needs it, and where each version of a file goes (pure).

A file of a family is its path relative to the family's directory (``east/x.csv``);
a version of it is that path with its content, named by the first hex digits of the
content's MD5. Object keys hold both, so two files, or two versions of one file,
never share an object: a file replaced with new content is loaded into an object of
its own and the earlier version's object stays (bronze keeps history).

Key placeholders: ``{name}`` (family), ``{date}`` (partition), ``{file}`` (relative
path, extension kept: ``x.csv`` and ``x.csv.gz`` are two files), ``{version}``,
``{stem}`` (the file name without its data extensions).
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Literal

from platform_assets.ingestion.files.csv_reader import CsvOptions
from platform_assets.ingestion.files.text_types import parse_pinned_type
from platform_assets.ingestion.sink.object_keys import check_key_pattern

DEFAULT_OBJECT_KEY = "files/{name}/{date}/{file}.{version}.parquet"
VERSION_DIGITS = 16
DATA_SUFFIXES = (".csv", ".tsv", ".json", ".ndjson", ".jsonl")
PLACEHOLDERS = ("name", "date", "file", "version", "stem")
REQUIRED_PLACEHOLDERS = ("date", "file", "version")


@dataclass(frozen=True)
class FamilySpec:
    """The registry's file family without the registry (built by ``FileFamily.spec``)."""

    name: str
    directory: Path
    glob: str
    format: Literal["csv", "json"]
    delimiter: str | None = None
    """None: a tab for ``.tsv`` files, else a comma."""
    quote_char: str = '"'
    encoding: str = "utf-8"
    null_values: tuple[str, ...] = ("",)
    skip_rows: int = 0
    column_types: dict[str, str] = field(default_factory=dict)
    date_pattern: str | None = None
    date_format: str = "%Y-%m-%d"
    after_load: Literal["leave", "move"] = "leave"
    object_key_pattern: str = DEFAULT_OBJECT_KEY
    schema_policy: Literal["evolve", "freeze"] = "evolve"
    timezone: str = "UTC"
    stable_seconds: float = 10.0
    """A manual run loads a file only when it was last modified this long ago."""
    start_date: dt.date | None = None
    """The first partition: a file dated before it has no partition and is reported."""

    def object_key(self, partition_key: str, relative_path: str, content_md5: str) -> str:
        return self.object_key_pattern.format(
            name=self.name, date=partition_key, file=relative_path,
            version=content_md5[:VERSION_DIGITS], stem=file_stem(relative_path),
        )

    def csv_options(self, relative_path: str) -> CsvOptions:
        return CsvOptions(
            delimiter=self.delimiter or default_delimiter(relative_path),
            quote_char=self.quote_char,
            encoding=self.encoding,
            null_values=self.null_values,
            skip_rows=self.skip_rows,
            column_types={c: parse_pinned_type(t) for c, t in self.column_types.items()},
        )

    def date_from_name(self, name: str) -> dt.date | None:
        """The partition date the file name gives; None when ``date_pattern`` does not match.

        Raises ValueError when it matches text that is not a valid date.
        """
        if not self.date_pattern:
            return None
        match = re.search(self.date_pattern, name)
        if match is None:
            return None
        text = match.groupdict().get("date") or match.group(1)
        try:
            return dt.datetime.strptime(text, self.date_format).date()
        except ValueError as e:
            raise ValueError(
                f"{text!r} from the file name is not a date in the format {self.date_format!r} of family "
                f"{self.name!r}"
            ) from e


def partition_date(
    spec: FamilySpec, file_name: str, relative_path: str, arrival: dt.date
) -> tuple[dt.date, str | None]:
    """The file's partition date (its name's date, else ``arrival``), or why the file cannot
    be loaded as it is named and dated (the date returned is then ``arrival``)."""
    try:
        relative_path.encode("utf-8")
    except UnicodeEncodeError:
        return arrival, (f"the file name {relative_path.encode('utf-8', 'backslashreplace').decode('utf-8')!r} is not valid UTF-8; rename the file "
                         "(its name is recorded in the tracking tables and object keys)")
    try:
        date = spec.date_from_name(file_name)
    except ValueError as e:
        return arrival, f"{e}: rename the file, or fix date_pattern/date_format in the registry"
    if date is None:
        date, dated_by = arrival, "it was last modified"
    else:
        dated_by = "its name says"
    if spec.start_date is not None and date < spec.start_date:
        return arrival, (
            f"{dated_by} {date}, before the registry's start_date {spec.start_date}: no partition holds it; "
            "set start_date earlier, or rename (or touch) the file"
        )
    return date, None


def default_delimiter(relative_path: str) -> str:
    return "\t" if ".tsv" in relative_path.lower().rsplit("/", 1)[-1] else ","


def file_stem(relative_path: str) -> str:
    """The file name without ``.gz`` and its data extension (``x.csv.gz`` -> ``x``)."""
    name = PurePosixPath(relative_path).name
    lowered = name.lower()
    if lowered.endswith(".gz"):
        name, lowered = name[:-3], lowered[:-3]
    for suffix in DATA_SUFFIXES:
        if lowered.endswith(suffix):
            return name[: -len(suffix)]
    return PurePosixPath(name).stem


def check_object_key_pattern(pattern: str) -> None:
    """Refuse a pattern under which two files or two versions could share an object."""
    try:
        check_key_pattern(pattern, placeholders=PLACEHOLDERS, required=REQUIRED_PLACEHOLDERS)
    except ValueError as e:
        raise ValueError(f"{e}; the default is {DEFAULT_OBJECT_KEY}") from e


_CHARACTER_CLASS = re.compile(r"\[[^\]]*\]")


def globs_may_overlap(first: str, second: str) -> bool:
    """Whether one file name could match both globs (both relative to one directory).

    Conservative: False only when their literal beginnings or endings tell them apart
    (``customers_*.csv`` and ``orders_*.csv`` cannot overlap; ``*.csv`` and
    ``customers_*.csv*`` may).
    """
    a, b = (_CHARACTER_CLASS.sub("?", g) for g in (first, second))
    if not _has_wildcard(a) or not _has_wildcard(b):
        literal, pattern = (first, second) if not _has_wildcard(a) else (second, first)
        return fnmatch.fnmatchcase(literal, pattern.replace("**/", "*"))
    heads = [g[: min(i for i in (g.find("*"), g.find("?")) if i >= 0)] for g in (a, b)]
    tails = [g[max(g.rfind("*"), g.rfind("?")) + 1:] for g in (a, b)]
    heads_agree = heads[0].startswith(heads[1]) or heads[1].startswith(heads[0])
    tails_agree = tails[0].endswith(tails[1]) or tails[1].endswith(tails[0])
    return heads_agree and tails_agree


def _has_wildcard(pattern: str) -> bool:
    return "*" in pattern or "?" in pattern
