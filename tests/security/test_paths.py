"""Paths: batch patterns and symlinks cannot reach files outside the input directory.

Covers ``batch_ingest_files`` (the guide's batch API) and the file-family sensor's
directory scan (``platform_assets.file_partitions.scan``), which share
``file_ingestor.matching_files``.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from platform_assets.ingestion.errors import IngestionError
from platform_assets.ingestion.file_ingestor import batch_ingest_files, matching_files
from platform_assets.ingestion.files.family_load import load_family_partition
from platform_assets.ingestion.files.family_scan import scan_family
from platform_assets.registry import FileFamily, Registry
from tests.security._support import (
    DS,
    bucket_keys,
    check_each,
    object_bytes,
    runs,
    within,
)

SECRET = "secret_token\nTOP-SECRET-ROW\n"
MTIME = 1704103200  # 2024-01-01 10:00 UTC: partition DS


def build_tree(tmp_path: Path) -> tuple[Path, Path]:
    """An input directory with regular files and symlinks escaping it in every way."""
    directory = tmp_path / "input"
    outside = tmp_path / "outside"
    (directory / "sub").mkdir(parents=True)
    (outside / "nested").mkdir(parents=True)
    for path in (outside / "secret.csv", outside / "nested" / "deep.csv"):
        path.write_text(SECRET)
    (outside / "secret.json").write_text('[{"secret_token": "TOP-SECRET-ROW"}]')

    (directory / "a.csv").write_text("id\n1\n")
    (directory / "sub" / "b.csv").write_text("id\n2\n")
    (directory / "abs_link.csv").symlink_to(outside / "secret.csv")
    (directory / "rel_link.csv").symlink_to(Path("..") / "outside" / "secret.csv")
    (directory / "json_link.json").symlink_to(outside / "secret.json")
    (directory / "hop.csv").symlink_to(outside / "secret.csv")
    (directory / "chain.csv").symlink_to(directory / "hop.csv")  # inside -> inside -> outside
    (directory / "linked_dir").symlink_to(outside, target_is_directory=True)
    (directory / "sub" / "deep_link.csv").symlink_to(Path("..") / ".." / "outside" / "secret.csv")
    (directory / "sub" / "dir_link").symlink_to(Path("..") / ".." / "outside", target_is_directory=True)
    (directory / "dangling.csv").symlink_to(tmp_path / "nowhere" / "x.csv")
    (directory / "via_outside.csv").symlink_to(outside / ".." / "outside" / "secret.csv")
    (directory / "etc_link.csv").symlink_to("/etc/passwd")
    (directory / "inside_link.csv").symlink_to(directory / "a.csv")  # stays inside: loaded
    (directory / "sub" / "up_inside.csv").symlink_to(Path("..") / "a.csv")  # stays inside: loaded
    for path in [*directory.rglob("*"), *outside.rglob("*")]:
        if path.is_file():
            os.utime(path, (MTIME, MTIME))
    return directory, outside


INSIDE = ["a.csv", "inside_link.csv", "sub/b.csv", "sub/up_inside.csv"]
# A family skips links to files it loads under their own name (a file would load twice).
FAMILY_INSIDE = ["a.csv", "sub/b.csv"]


def relative_names(directory: Path, paths: list[Path]) -> list[str]:
    return sorted(p.relative_to(directory).as_posix() for p in paths)


def assert_no_secret_stored(services: Any, conn: Any) -> None:
    for key in bucket_keys(services):
        assert b"TOP-SECRET-ROW" not in object_bytes(services, key), key
    names = {r["source_name"] for r in runs(conn)}
    assert not names & {"secret.csv", "secret.json", "deep.csv", "passwd"}
    for name in ("abs_link.csv", "rel_link.csv", "json_link.json", "hop.csv", "chain.csv",
                 "deep_link.csv", "dangling.csv", "via_outside.csv", "etc_link.csv"):
        assert name not in names


# --------------------------------------------------------------------------- batch patterns

ESCAPING_PATTERNS = [
    "../outside/*.csv",
    "../*",
    "../../**",
    "..",
    "./../outside/secret.csv",
    "sub/../../outside/*.csv",
    "**/../../outside/*.csv",
    "*/../../outside/*",
    "/etc/passwd",
    "/etc/*",
    "ABSOLUTE_OUTSIDE",
]


def test_batch_refuses_patterns_leaving_the_directory(services, pg_conn, tmp_path):
    directory, outside = build_tree(tmp_path)

    def check(pattern: str) -> None:
        if pattern == "ABSOLUTE_OUTSIDE":
            pattern = str(outside / "*.csv")
        with pytest.raises(IngestionError, match="must be relative"):
            batch_ingest_files(directory, pattern, DS, services=services)

    check_each(ESCAPING_PATTERNS, check)
    # a refused pattern is a refused call: nothing tracked (there is no file to name)
    assert runs(pg_conn) == []
    assert bucket_keys(services) == []


@pytest.mark.parametrize(
    "pattern", ["[.][.]/outside/*.csv", "?./outside/*.csv", ".[.]/outside/*", "~/*", "$HOME/*", "**/secret.csv",
                "linked_dir/*.csv", "linked_dir/**/*.csv", "sub/dir_link/*.csv", "**/deep.csv", "*_link.*"]
)
def test_patterns_without_dotdot_find_nothing_outside(tmp_path, pattern):
    directory, _ = build_tree(tmp_path)
    found = matching_files(directory, pattern)
    resolved_root = directory.resolve()
    assert all(p.resolve().is_relative_to(resolved_root) for p in found)
    assert not [p for p in found if p.is_file() and "TOP-SECRET-ROW" in p.read_text(errors="replace")]


def test_batch_ignores_symlinks_escaping_the_directory(services, pg_conn, tmp_path):
    directory, _ = build_tree(tmp_path)

    results = batch_ingest_files(directory, "**/*", DS, services=services)

    loaded = sorted(Path(r["file"]).relative_to(directory).as_posix() for r in results if r["status"] == "success")
    assert loaded == INSIDE
    # '**/*' also matches the real subdirectory 'sub', refused as "unknown file type"
    assert [Path(r["file"]).relative_to(directory).as_posix() for r in results if r["status"] != "success"] == ["sub"]
    assert_no_secret_stored(services, pg_conn)
    # asking for the escaping links by name finds nothing either
    for pattern in ("abs_link.csv", "rel_link.csv", "chain.csv", "linked_dir/secret.csv", "sub/deep_link.csv",
                    "sub/dir_link/nested/deep.csv", "json_link.json", "etc_link.csv"):
        assert batch_ingest_files(directory, pattern, DS, services=services) == [], pattern
    assert_no_secret_stored(services, pg_conn)


def test_batch_through_a_symlinked_input_directory_still_works(services, pg_conn, tmp_path):
    """The input directory itself may be a symlink: files inside its target load."""
    directory, _ = build_tree(tmp_path)
    alias = tmp_path / "alias"
    alias.symlink_to(directory, target_is_directory=True)
    results = batch_ingest_files(alias, "**/*.csv", DS, services=services)
    assert sorted(Path(r["file"]).relative_to(alias).as_posix() for r in results) == INSIDE
    assert_no_secret_stored(services, pg_conn)


def test_symlink_loop_does_not_break_batch_or_scan(services, pg_conn, tmp_path):
    directory = tmp_path / "input"
    directory.mkdir()
    (directory / "a.csv").write_text("id\n1\n")
    (directory / "loop.csv").symlink_to(directory / "loop.csv")
    os.utime(directory / "a.csv", (MTIME, MTIME))
    results = batch_ingest_files(directory, "*.csv", DS, services=services)
    assert [Path(r["file"]).name for r in results if r["status"] == "success"] == ["a.csv"]
    family = FileFamily(name="fam", directory=str(directory), glob="*.csv", format="csv")
    assert [c.path.name for c in scan_family(family.spec(Registry(files=[family]))).files] == ["a.csv"]


def test_batch_refuses_fifos_without_reading_them(services, pg_conn, tmp_path):
    directory = tmp_path / "input"
    directory.mkdir()
    (directory / "a.csv").write_text("id\n1\n")
    fifo = directory / "pipe.csv"
    os.mkfifo(fifo)
    stop = threading.Event()

    def unblock() -> None:
        """Give any reader of the FIFO an immediate end of file, so the test itself cannot hang."""
        while not stop.is_set():
            try:
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:
                pass
            time.sleep(0.005)

    helper = threading.Thread(target=unblock, daemon=True)
    helper.start()
    try:
        results = within(30, lambda: batch_ingest_files(directory, "*.csv", DS, services=services))
    finally:
        stop.set()
        helper.join()
    assert [(Path(r["file"]).name, r["status"]) for r in results] == [("a.csv", "success"), ("pipe.csv", "failed")]
    assert "not a regular file" in results[1]["error"]


# --------------------------------------------------------------------------- sensor scan


def family_for(directory: Path, glob: str = "**/*.csv", fmt: str = "csv") -> tuple[FileFamily, Registry]:
    family = FileFamily(name="fam", directory=str(directory), glob=glob, format=fmt, stable_seconds=0)
    return family, Registry(files=[family])


@pytest.mark.parametrize("glob", ["**/*.csv", "*", "**/*", "*.csv", "linked_dir/*", "sub/dir_link/**/*.csv"])
def test_sensor_scan_ignores_symlinks_escaping_the_directory(tmp_path, glob):
    directory, _ = build_tree(tmp_path)
    family, registry = family_for(directory, glob)
    candidates = scan_family(family.spec(registry)).files
    names = relative_names(directory, [c.path for c in candidates])
    assert set(names) <= set(INSIDE)
    assert all(c.path.resolve().is_relative_to(directory.resolve()) for c in candidates)
    if glob in ("**/*.csv", "**/*"):
        assert names == FAMILY_INSIDE


def test_sensor_partition_load_ignores_symlinks_escaping_the_directory(services, pg_conn, tmp_path):
    directory, _ = build_tree(tmp_path)
    for fmt, glob in (("csv", "**/*.csv"), ("json", "**/*.json")):
        family, registry = family_for(directory, glob, fmt)
        done = load_family_partition(family.spec(registry), DS, services)
        if fmt == "csv":
            assert sorted(o.relative_path for o in done.by_status("loaded")) == FAMILY_INSIDE
        else:
            assert done.outcomes == []
    assert_no_secret_stored(services, pg_conn)


@pytest.mark.parametrize("glob", ["../*.csv", "/etc/*", "a/../../b", "../../**", "./../x"])
def test_family_glob_leaving_the_directory_is_refused_by_the_registry(glob):
    with pytest.raises(ValidationError, match="stay inside"):
        FileFamily(name="fam", directory="/tmp", glob=glob, format="csv")
