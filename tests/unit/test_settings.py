"""Settings come from LEDGER_* environment variables, typed and checked."""

from __future__ import annotations

from pathlib import Path

import pytest

from lead_ledger.settings import Settings, SettingsError


def test_defaults_need_no_environment() -> None:
    """With nothing set, the embedded database in the user data dir is used."""
    settings = Settings.from_env({})
    assert settings.database_url is None
    assert settings.data_dir.name == "lead-ledger"
    assert settings.db_pool_max == 10


def test_values_are_converted_from_text() -> None:
    """Numbers, booleans and paths are parsed from their text form."""
    settings = Settings.from_env(
        {
            "LEDGER_DATABASE_URL": "postgresql://db/x",
            "LEDGER_DATA_DIR": "/srv/ledger",
            "LEDGER_DB_POOL_MAX": "32",
            "LEDGER_CALLBACK_ALLOW_PRIVATE": "1",
            "LEDGER_UNRELATED": "ignored",
        }
    )
    assert settings.database_url == "postgresql://db/x"
    assert settings.data_dir == Path("/srv/ledger")
    assert settings.db_pool_max == 32
    assert settings.callback_allow_private is True


def test_empty_values_mean_unset() -> None:
    """An exported but empty variable falls back to the default."""
    assert Settings.from_env({"LEDGER_DATABASE_URL": ""}).database_url is None


def test_bad_value_names_the_setting() -> None:
    """A value of the wrong type is a SettingsError naming the field."""
    with pytest.raises(SettingsError, match="db_pool_max"):
        Settings.from_env({"LEDGER_DB_POOL_MAX": "lots"})


def test_job_lease_is_positive_seconds() -> None:
    """LEDGER_JOB_LEASE_SECONDS: 300 by default, fractions allowed, zero or less refused."""
    assert Settings.from_env({}).job_lease_seconds == 300.0
    assert Settings.from_env({"LEDGER_JOB_LEASE_SECONDS": "2.5"}).job_lease_seconds == 2.5
    with pytest.raises(SettingsError, match="job_lease_seconds"):
        Settings.from_env({"LEDGER_JOB_LEASE_SECONDS": "0"})


def test_parser_limits_from_the_environment() -> None:
    """The upload parser's memory limit and timeout are settings, the memory at least 256 MiB."""
    settings = Settings.from_env(
        {"LEDGER_PARSER_MEMORY_BYTES": "536870912", "LEDGER_PARSER_TIMEOUT_SECONDS": "5"}
    )
    assert (settings.parser_memory_bytes, settings.parser_timeout_seconds) == (536_870_912, 5.0)
    assert Settings.from_env({}).parser_memory_bytes == 1024**3
    with pytest.raises(SettingsError, match="parser_memory_bytes"):
        Settings.from_env({"LEDGER_PARSER_MEMORY_BYTES": "1000"})
