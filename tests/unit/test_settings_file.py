"""The settings file: its parser, precedence (environment > file > defaults) and masking."""

from __future__ import annotations

import os

import pytest

from platform_resources import config
from platform_resources.config import (
    LocalSettings,
    ObjectStoreSettings,
    PostgresSettings,
    SettingsError,
    mask,
    merge_settings,
    parse_settings,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("PGDATABASE=shop", {"PGDATABASE": "shop"}),
        ("  PGDATABASE = shop  ", {"PGDATABASE": "shop"}),
        ("export PGHOST=db.internal", {"PGHOST": "db.internal"}),
        ("# a comment\n\nPGPORT=5433\n", {"PGPORT": "5433"}),
        ("PGPASSWORD='p#ss word'", {"PGPASSWORD": "p#ss word"}),
        ('PGPASSWORD="a=b"  # trailing comment', {"PGPASSWORD": "a=b"}),
        ("PGPASSWORD=ab#c", {"PGPASSWORD": "ab#c"}),  # '#' only starts a comment after a space
        ("PGUSER=etl # the loader", {"PGUSER": "etl"}),
        ("PGPASSWORD=", {"PGPASSWORD": ""}),
        ("MINIO_ENDPOINT=http://h:9000/x?a=b", {"MINIO_ENDPOINT": "http://h:9000/x?a=b"}),
        ("PGHOST=$HOME", {"PGHOST": "$HOME"}),  # no expansion
        ("A=1\nA=2", {"A": "2"}),  # the last one wins, as in a shell
    ],
)
def test_parse_settings(text, expected):
    assert parse_settings(text) == expected


@pytest.mark.parametrize(
    ("text", "line"),
    [("PGDATABASE", 1), ("A=1\nnot a setting", 2), ("1A=b", 1), ("A='open", 1), ('A="x" y', 1)],
)
def test_parse_settings_names_the_bad_line(text, line):
    with pytest.raises(SettingsError, match=f"f.env, line {line}"):
        parse_settings(text, origin="f.env")


def test_a_bad_line_is_not_echoed():
    with pytest.raises(SettingsError) as error:
        parse_settings("PGPASSWORD hunter2", origin="f.env")
    assert "hunter2" not in str(error.value)


def test_environment_wins_over_the_file_and_empty_counts_as_unset():
    environ = {"PGDATABASE": "from_env", "PGUSER": ""}
    file_values = {"PGDATABASE": "from_file", "PGUSER": "etl", "PGHOST": "db"}
    assert merge_settings(environ, file_values) == {"PGUSER": "etl", "PGHOST": "db"}


@pytest.fixture
def fresh_settings(monkeypatch, tmp_path):
    """os.environ without the platform's variables; the settings file read anew."""
    for name in list(config.KNOWN_SETTINGS) + [config.SETTINGS_FILE_VARIABLE]:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(config, "_from_file", None)
    yield tmp_path
    for name in config._from_file or {}:
        os.environ.pop(name, None)
    config._from_file = None


def test_file_then_defaults_and_the_environment_first(fresh_settings, monkeypatch):
    path = fresh_settings / "my.env"
    path.write_text(
        "PGDATABASE=shop\nPLATFORM_PGDATABASE=platform\nPGPASSWORD=s3cret\nMINIO_ENDPOINT=http://127.0.0.1:9100\n"
        "SOURCE_REGISTRY=registry/mine.yaml\nUI_PORT=3100\nPGUSER=file_user\n"
    )
    monkeypatch.setenv(config.SETTINGS_FILE_VARIABLE, str(path))
    monkeypatch.setenv("PGUSER", "env_user")
    source, platform = PostgresSettings.from_env(), PostgresSettings.from_env(prefix="PLATFORM_")
    assert (source.dbname, source.user, source.password, source.host) == ("shop", "env_user", "s3cret", "127.0.0.1")
    assert (platform.dbname, platform.user) == ("platform", "env_user")  # PLATFORM_ falls back to PG*
    assert ObjectStoreSettings.from_env().endpoint_url == "http://127.0.0.1:9100"
    assert LocalSettings.from_env() == LocalSettings(ui_port=3100, object_store_port=9000)
    # relative to the file's folder; copied into os.environ for EnvVars and child processes
    assert config.registry_file(config.PROJECT_DIR / "x.yaml") == fresh_settings / "registry" / "mine.yaml"
    assert os.environ["PGPASSWORD"] == "s3cret" and config.is_set("PGPASSWORD")
    assert os.environ["PGUSER"] == "env_user"
    lines = "\n".join(config.describe_settings({"MINIO_ENDPOINT": "embedded"}))
    assert "PGDATABASE=shop  (settings file)" in lines
    assert "PGUSER=env_user  (environment)" in lines
    assert "MINIO_ENDPOINT=http://127.0.0.1:9100  (embedded)" in lines
    assert "PGPASSWORD=****  (settings file)" in lines and "s3cret" not in lines
    assert "PGHOST=127.0.0.1" in lines  # a default


def test_a_named_settings_file_must_exist(fresh_settings, monkeypatch):
    monkeypatch.setenv(config.SETTINGS_FILE_VARIABLE, str(fresh_settings / "missing.env"))
    with pytest.raises(SettingsError, match="missing.env: no such file"):
        PostgresSettings.from_env()


def test_without_a_file_the_defaults(fresh_settings, monkeypatch):
    monkeypatch.setattr(config, "DEFAULT_SETTINGS_FILE", fresh_settings / "local.env")
    assert PostgresSettings.from_env() == PostgresSettings()
    assert LocalSettings.from_env() == LocalSettings(ui_port=3000, object_store_port=9000)


@pytest.mark.parametrize("value", ["0", "70000", "abc", "-1"])
def test_a_bad_port_names_the_setting(value):
    with pytest.raises(SettingsError, match="LOCAL_S3_PORT"):
        LocalSettings.from_env({"LOCAL_S3_PORT": value})


@pytest.mark.parametrize(
    ("name", "value", "shown"),
    [
        ("PGPASSWORD", "hunter2", "****"),
        ("PLATFORM_PGPASSWORD", "x", "****"),
        ("MINIO_SECRET_KEY", "abc", "****"),
        ("API_TOKEN", "abc", "****"),
        ("PGPASSWORD", "", ""),
        ("MINIO_ENDPOINT", "http://user:pw@host:9000", "http://user:****@host:9000"),
        ("MINIO_ENDPOINT", "http://host:9000", "http://host:9000"),
        ("PGDATABASE", "shop", "shop"),
    ],
)
def test_mask(name, value, shown):
    assert mask(name, value) == shown
