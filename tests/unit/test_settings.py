"""Settings come from LEDGER_* environment variables, typed and checked."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, get_args, get_origin

import msgspec
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
    with pytest.raises(SettingsError, match="LEDGER_DB_POOL_MAX='lots' is not valid"):
        Settings.from_env({"LEDGER_DB_POOL_MAX": "lots"})


def test_job_workers_default_and_bounds() -> None:
    """LEDGER_JOB_WORKERS: 2 by default, 1 to 32."""
    assert Settings.from_env({}).job_workers == 2
    assert Settings.from_env({"LEDGER_JOB_WORKERS": "1"}).job_workers == 1
    for bad in ("0", "33", "two"):
        with pytest.raises(SettingsError, match="LEDGER_JOB_WORKERS"):
            Settings.from_env({"LEDGER_JOB_WORKERS": bad})
    with pytest.raises(SettingsError, match="LEDGER_JOB_WORKERS=10 would hold every connection"):
        Settings.from_env({"LEDGER_JOB_WORKERS": "10"})
    assert (
        Settings.from_env({"LEDGER_JOB_WORKERS": "12", "LEDGER_DB_POOL_MAX": "16"}).job_workers
        == 12
    )


def test_job_lease_is_positive_seconds() -> None:
    """LEDGER_JOB_LEASE_SECONDS: 300 by default, fractions allowed, zero or less refused."""
    assert Settings.from_env({}).job_lease_seconds == 300.0
    assert Settings.from_env({"LEDGER_JOB_LEASE_SECONDS": "2.5"}).job_lease_seconds == 2.5
    with pytest.raises(SettingsError, match="LEDGER_JOB_LEASE_SECONDS"):
        Settings.from_env({"LEDGER_JOB_LEASE_SECONDS": "0"})


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        (
            {"LEDGER_LOG_LEVEL": "verbose"},
            "LEDGER_LOG_LEVEL='verbose' is not valid: use one of debug, info, warning, error",
        ),
        (
            {"LEDGER_LOG_FORMAT": "xml"},
            "LEDGER_LOG_FORMAT='xml' is not valid: use one of auto, json, console",
        ),
        (
            {"LEDGER_MAX_BODY_BYTES": "-1"},
            "LEDGER_MAX_BODY_BYTES='-1' is not valid: a whole number >= 1",
        ),
        ({"LEDGER_DB_POOL_MIN": "20"}, "LEDGER_DB_POOL_MIN=20 is more than LEDGER_DB_POOL_MAX=10"),
        ({"LEDGER_DB_POOL_MAX": "0"}, "LEDGER_DB_POOL_MAX='0' is not valid: a whole number >= 1"),
        ({"LEDGER_CALLBACK_ALLOW_PRIVATE": "maybe"}, "use 1/0, true/false, yes/no or on/off"),
        (
            {"LEDGER_JOB_LEASE_SECONDS": "soon"},
            "LEDGER_JOB_LEASE_SECONDS='soon' is not valid: a number > 0",
        ),
    ],
)
def test_every_bad_value_is_an_error_naming_the_variable_and_what_it_takes(
    environ: dict[str, str], message: str
) -> None:
    """Each setting is checked at start; its error names the environment variable, the value
    given and the values it takes."""
    with pytest.raises(SettingsError) as raised:
        Settings.from_env(environ)
    assert message in str(raised.value)


@pytest.mark.parametrize(
    ("text", "value"),
    [(t, True) for t in ("1", "true", "TRUE", "yes", "on", " On ")]
    + [(t, False) for t in ("0", "false", "False", "no", "off")],
)
def test_booleans_take_the_usual_spellings(text: str, value: bool) -> None:
    """1/0, true/false, yes/no and on/off, in any case."""
    assert (
        Settings.from_env({"LEDGER_CALLBACK_ALLOW_PRIVATE": text}).callback_allow_private is value
    )


def test_choices_are_read_in_any_case() -> None:
    """LEDGER_LOG_LEVEL=WARNING is the warning level."""
    assert Settings.from_env({"LEDGER_LOG_LEVEL": "WARNING"}).log_level == "warning"


def test_parser_limits_from_the_environment() -> None:
    """The upload parser's memory limit and timeout are settings, the memory at least 256 MiB."""
    settings = Settings.from_env(
        {"LEDGER_PARSER_MEMORY_BYTES": "536870912", "LEDGER_PARSER_TIMEOUT_SECONDS": "5"}
    )
    assert (settings.parser_memory_bytes, settings.parser_timeout_seconds) == (536_870_912, 5.0)
    assert Settings.from_env({}).parser_memory_bytes == 1024**3
    with pytest.raises(SettingsError, match="LEDGER_PARSER_MEMORY_BYTES"):
        Settings.from_env({"LEDGER_PARSER_MEMORY_BYTES": "1000"})


@pytest.mark.parametrize(
    "url",
    [
        "https://ledger.example.com",
        "https://ledger.example.com/",
        "http://10.0.0.5:8080",
        "HTTPS://ledger.example.com:8443/ledger/",
        "http://[::1]:8080/prefix",
    ],
)
def test_public_url_takes_an_http_origin_and_a_path_prefix(url: str) -> None:
    """LEDGER_PUBLIC_URL: http(s), a host, an optional port and path prefix, kept as given."""
    assert Settings.from_env({"LEDGER_PUBLIC_URL": url}).public_url == url


@pytest.mark.parametrize(
    "url",
    [
        "notaurl",
        "ledger.example.com",
        "ftp://ledger.example.com",
        "https://",
        "https:///path",
        "https://ledger.example.com:notaport",
        "https://ledger.example.com:99999",
        "https://ledger.example.com/?a=1",
        "https://ledger.example.com/#top",
        "https://user:pw@ledger.example.com",
        "https://ledger example.com",
    ],
)
def test_public_url_that_is_no_http_address_names_the_variable(url: str) -> None:
    """Anything else stops the start with one line naming LEDGER_PUBLIC_URL and what it takes."""
    with pytest.raises(SettingsError) as raised:
        Settings.from_env({"LEDGER_PUBLIC_URL": url})
    message = str(raised.value)
    assert message.startswith(f"LEDGER_PUBLIC_URL={url!r} is not valid: ")
    assert "http://" in message
    assert "\n" not in message


def test_public_url_unset_or_empty_uses_the_request_origin() -> None:
    """Unset or empty, LEDGER_PUBLIC_URL is None: the links use the request's own origin."""
    assert Settings.from_env({}).public_url is None
    assert Settings.from_env({"LEDGER_PUBLIC_URL": ""}).public_url is None


# Each numeric setting and the largest value it takes.
NUMERIC_MAXIMA = {
    "LEDGER_READ_WAIT_SECONDS": "60",
    "LEDGER_DB_POOL_MIN": "1000",
    "LEDGER_DB_POOL_MAX": "1000",
    "LEDGER_MAX_BODY_BYTES": "4294967296",
    "LEDGER_PARSER_MEMORY_BYTES": "1099511627776",
    "LEDGER_PARSER_TIMEOUT_SECONDS": "3600",
    "LEDGER_JOB_LEASE_SECONDS": "86400",
    "LEDGER_EXPORT_RETENTION_HOURS": "8760",
    "LEDGER_EXPORT_WORKERS": "32",
    "LEDGER_EXPORT_PARALLEL_MIN_LEADS": "1000000000",
    "LEDGER_JOB_WORKERS": "32",
    "LEDGER_LOGIN_FAILURES_PER_USERNAME": "1000000",
    "LEDGER_LOGIN_FAILURES_PER_ADDRESS": "1000000",
    "LEDGER_LOGIN_THROTTLE_WINDOW_SECONDS": "86400",
    "LEDGER_SHUTDOWN_SECONDS": "3600",
}
# So that the pool checks between settings let each maximum through on its own.
_ROOMY_POOL = {"LEDGER_DB_POOL_MAX": "1000"}


def test_every_numeric_setting_has_a_maximum() -> None:
    """The table above names every number the settings hold, so none is left unbounded."""
    numeric = {
        f"LEDGER_{field.name.upper()}"
        for field in msgspec.structs.fields(Settings)
        if get_origin(field.type) is Annotated and get_args(field.type)[0] in (int, float)
    }
    assert numeric == set(NUMERIC_MAXIMA)


@pytest.mark.parametrize(("variable", "maximum"), NUMERIC_MAXIMA.items())
def test_numeric_settings_take_their_maximum(variable: str, maximum: str) -> None:
    """The largest value of each range is taken as it is."""
    settings = Settings.from_env({**_ROOMY_POOL, variable: maximum})
    assert getattr(settings, variable.removeprefix("LEDGER_").lower()) == float(maximum)


@pytest.mark.parametrize("variable", NUMERIC_MAXIMA)
@pytest.mark.parametrize("excess", ["above", "1e300", "inf", "nan", "99999999999999999999999"])
def test_numeric_settings_past_their_maximum_are_refused(variable: str, excess: str) -> None:
    """One more than the maximum, huge numbers, inf and nan stop the start with one line naming
    the variable and its range."""
    value = str(int(NUMERIC_MAXIMA[variable]) + 1) if excess == "above" else excess
    with pytest.raises(SettingsError) as raised:
        Settings.from_env({**_ROOMY_POOL, variable: value})
    message = str(raised.value)
    assert message.startswith(f"{variable}={value!r} is not valid: ")
    assert f"<= {NUMERIC_MAXIMA[variable]}" in message
    assert "\n" not in message


_URL_VARIABLES = ("LEDGER_DATABASE_URL", "LEDGER_READ_DATABASE_URL")


@pytest.mark.parametrize("variable", _URL_VARIABLES)
@pytest.mark.parametrize(
    "url",
    [
        "postgresql://ledger@db.example:5432/ledger",
        "postgres://ledger:pw@10.0.0.5/ledger?sslmode=require",
        "POSTGRESQL://ledger@[::1]:65535/ledger",
        "postgresql://ledger@db1:5432,db2:5433/ledger",
        "postgresql:///ledger?host=/var/run/postgresql",
    ],
)
def test_database_urls_take_postgresql_urls(variable: str, url: str) -> None:
    """A postgresql:// or postgres:// URL, any ports 1 to 65535, is kept as it is."""
    environ = {"LEDGER_DATABASE_URL": "postgresql://db/x", variable: url}
    settings = Settings.from_env(environ)
    assert getattr(settings, variable.removeprefix("LEDGER_").lower()) == url


@pytest.mark.parametrize("variable", _URL_VARIABLES)
@pytest.mark.parametrize(
    "url",
    [
        "not a url",
        "db.example:5432/ledger",
        "http://db.example/ledger",
        "postgresql://u@127.0.0.1:abc/db",
        "postgresql://u@127.0.0.1:99999/db",
        "postgresql://u@127.0.0.1:0/db",
        "postgresql://u@db1:5432,db2:x/db",
        "postgresql://u@[::1/db",
    ],
)
def test_database_url_that_is_no_postgresql_url_names_the_variable(variable: str, url: str) -> None:
    """Any other value stops the start with one line naming the variable and what it takes."""
    environ = {"LEDGER_DATABASE_URL": "postgresql://db/x", variable: url}
    with pytest.raises(SettingsError) as raised:
        Settings.from_env(environ)
    message = str(raised.value)
    assert message.startswith(f"{variable}={url!r} is not valid: use postgresql://"), message
    assert "1 to 65535" in message
    assert "\n" not in message


def test_a_refused_database_url_is_shown_without_its_password() -> None:
    """The error line repeats the URL with its password hidden, in the netloc or the query."""
    for url, shown in [
        ("postgresql://u:topsecret@h:99999/db", "postgresql://u:***@h:99999/db"),
        ("postgresql://u@h:abc/db?password=topsecret", "postgresql://u@h:abc/db?password=***"),
    ]:
        with pytest.raises(SettingsError) as raised:
            Settings.from_env({"LEDGER_DATABASE_URL": url})
        assert str(raised.value).startswith(f"LEDGER_DATABASE_URL={shown!r} is not valid")
        assert "topsecret" not in str(raised.value)


def test_migration_url_needs_the_database_url() -> None:
    """LEDGER_MIGRATION_DATABASE_URL alone would be ignored (the embedded server has its own
    roles): it is refused, saying it needs LEDGER_DATABASE_URL."""
    with pytest.raises(SettingsError) as raised:
        Settings.from_env({"LEDGER_MIGRATION_DATABASE_URL": "postgresql://owner@db/x"})
    message = str(raised.value)
    assert message.startswith("LEDGER_MIGRATION_DATABASE_URL is set without LEDGER_DATABASE_URL")
    assert "\n" not in message
    with pytest.raises(SettingsError, match="LEDGER_MIGRATION_DATABASE_URL='x' is not valid"):
        Settings.from_env(
            {"LEDGER_DATABASE_URL": "postgresql://db/x", "LEDGER_MIGRATION_DATABASE_URL": "x"}
        )
    both = {
        "LEDGER_DATABASE_URL": "postgresql://db/x",
        "LEDGER_MIGRATION_DATABASE_URL": "postgresql://o@db/x",
    }
    assert Settings.from_env(both).migration_database_url == "postgresql://o@db/x"


def test_a_data_dir_under_an_unknown_home_names_the_variable() -> None:
    """LEDGER_DATA_DIR=~nouser/x, whose home cannot be found, is one line, not a traceback."""
    with pytest.raises(SettingsError) as raised:
        Settings.from_env({"LEDGER_DATA_DIR": "~no-such-user-here/x"})
    message = str(raised.value)
    assert message.startswith("LEDGER_DATA_DIR='~no-such-user-here/x' is not valid: "), message
    assert "~" in message.split("is not valid: ")[1]
    assert Settings.from_env({"LEDGER_DATA_DIR": "~/x"}).data_dir == Path.home() / "x"
