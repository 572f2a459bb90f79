"""Settings from environment variables, read once at start (documented in the README)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Final, Literal, get_args, get_origin
from urllib.parse import urlsplit

import msgspec
import platformdirs

LogFormat = Literal["auto", "json", "console"]
LogLevel = Literal["debug", "info", "warning", "error"]


# Every number has a finite range (so no inf, and nan is in none): past it a value would pass
# this check and then break the service that uses it (a timedelta, a PostgreSQL interval, a
# resource limit that overflows), or mean nothing sensible (tests/unit/test_settings.py lists
# them).
class Settings(msgspec.Struct, frozen=True, kw_only=True):
    database_url: str | None = None
    # The tables' owner, for migrations and rebuilds; without it they use `database_url`.
    migration_database_url: str | None = None
    # A streaming replica of the database for the native reads (api/read_routing.py); unset:
    # they read the primary.
    read_database_url: str | None = None
    # How long a read carrying X-Ledger-Min-Position waits for the replica before the primary
    # answers it.
    read_wait_seconds: Annotated[float, msgspec.Meta(ge=0, le=60)] = 1.0
    data_dir: Path = Path(platformdirs.user_data_dir("lead-ledger"))
    db_pool_min: Annotated[int, msgspec.Meta(ge=0, le=1000)] = 2
    db_pool_max: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 10
    admin_token: str | None = None
    # Base64 of 32 bytes: opens every subject key (docs/erasure.md). Unset: the key file
    # `master.key` in data_dir, made on first start.
    master_key: str | None = None
    log_format: LogFormat = "auto"
    log_level: LogLevel = "info"
    max_body_bytes: Annotated[int, msgspec.Meta(ge=1, le=4 * 1024**3)] = 64 * 1024 * 1024
    callback_allow_private: bool = False
    # Where clients reach this service (scheme://host[:port][/prefix]), for the links it hands
    # out (Ozonetel bulk V4's failedFilePath). Unset: the scheme and Host of the request.
    public_url: str | None = None
    # The upload parser's worker process (service/file_parser.py): its address-space limit,
    # and how long one file may take (wall clock; as many seconds of CPU).
    parser_memory_bytes: Annotated[int, msgspec.Meta(ge=256 * 1024**2, le=1024**4)] = 1024**3
    parser_timeout_seconds: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 60.0
    # How long a claimed job stays its worker's before another may claim it, should the worker
    # die between the claim and the run's row lock (which then holds it for the whole run).
    job_lease_seconds: Annotated[float, msgspec.Meta(gt=0, le=86_400)] = 300.0
    # How long an export's file is kept after it is written, then removed (docs/exports.md).
    export_retention_hours: Annotated[float, msgspec.Meta(gt=0, le=8760)] = 24.0
    # Processes that fold a large export as of a time (service/export_parallel.py): 0, one
    # per core this process may use; 1, none (in the job's own process).
    export_workers: Annotated[int, msgspec.Meta(ge=0, le=32)] = 0
    # Exports of fewer leads are folded in the job's own process: the workers' start (~0.3 s)
    # would cost more than they save.
    export_parallel_min_leads: Annotated[int, msgspec.Meta(ge=1, le=10**9)] = 20_000
    # Jobs one process runs at once (of different campaigns: a campaign's jobs run in turn).
    job_workers: Annotated[int, msgspec.Meta(ge=1, le=32)] = 2
    # Failed logins (Flexydial's generate-token) allowed per window, per username and per client
    # address, before the login answers 429 until the window ends.
    login_failures_per_username: Annotated[int, msgspec.Meta(ge=1, le=10**6)] = 10
    login_failures_per_address: Annotated[int, msgspec.Meta(ge=1, le=10**6)] = 100
    login_throttle_window_seconds: Annotated[int, msgspec.Meta(ge=1, le=86_400)] = 900
    # On SIGTERM/SIGINT, how long in-flight requests may take to finish before they are cut
    # (docs/operations.md, "Stopping").
    shutdown_seconds: Annotated[float, msgspec.Meta(ge=0, le=3600)] = 30.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Every LEDGER_* setting, each checked on its own so an error names its variable and
        the values it takes; then the checks between settings."""
        env = os.environ if environ is None else environ
        raw: dict[str, object] = {}
        for field in msgspec.structs.fields(cls):
            variable = f"LEDGER_{field.name.upper()}"
            value = env.get(variable)
            if value is not None and value != "":
                raw[field.name] = _convert(variable, value, field.type)
        settings = msgspec.convert(raw, cls)
        if settings.public_url is not None:
            _check_public_url(settings.public_url)
        _check_database_urls(settings)
        if settings.db_pool_min > settings.db_pool_max:
            raise SettingsError(
                f"LEDGER_DB_POOL_MIN={settings.db_pool_min} is more than"
                f" LEDGER_DB_POOL_MAX={settings.db_pool_max}: the pool cannot keep more"
                " connections open than it may have"
            )
        if settings.job_workers >= settings.db_pool_max:
            # Each worker holds a pooled connection for its whole job.
            raise SettingsError(
                f"LEDGER_JOB_WORKERS={settings.job_workers} would hold every connection of"
                f" LEDGER_DB_POOL_MAX={settings.db_pool_max} while jobs run: requests need some"
                " too; raise the pool or lower the workers"
            )
        return settings


# Environment values are text: the spellings people use for a switch all mean what they say.
_TRUE: Final = frozenset({"1", "true", "yes", "on"})
_FALSE: Final = frozenset({"0", "false", "no", "off"})


def _convert(variable: str, value: str, kind: object) -> object:
    """`value` as the setting's type, or a SettingsError naming `variable` and what it takes."""
    if kind is bool:
        word = value.strip().lower()
        if word in _TRUE | _FALSE:
            return word in _TRUE
    elif get_origin(kind) is Literal:
        word = value.strip().lower()  # INFO and info are the same level
        if word in get_args(kind):
            return word
    else:
        try:
            # strict=False reads "10" as 10 and "2.5" as 2.5, as environment values are text.
            return msgspec.convert(value, kind, strict=False, dec_hook=_decode_path)
        except msgspec.ValidationError:
            pass
    raise SettingsError(f"{variable}={value!r} is not valid: {_expected(kind)}")


def _expected(kind: object) -> str:
    """What a setting of this type takes, in words."""
    if kind is bool:
        return "use 1/0, true/false, yes/no or on/off"
    if get_origin(kind) is Literal:
        return "use one of " + ", ".join(str(v) for v in get_args(kind))
    if get_origin(kind) is Annotated:
        base, *metadata = get_args(kind)
        bounds = [
            f"{word} {getattr(meta, attr)}"
            for meta in metadata
            for attr, word in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<"))
            if getattr(meta, attr, None) is not None
        ]
        return f"{_expected(base)} {' and '.join(bounds)}".strip()
    return _WORDS.get(kind) or "a value of " + getattr(kind, "__name__", str(kind))


_WORDS: Final[Mapping[object, str]] = {
    int: "a whole number",
    float: "a number",
    Path: "a directory's path; a leading ~ or ~user must name a user whose home is known",
}


# A host name or IPv4 address, or an IPv6 address in brackets: what urlsplit leaves in
# `hostname` for them (brackets dropped); no spaces, slashes or other separators.
_HOST: Final = re.compile(r"[A-Za-z0-9.-]+|[0-9A-Fa-f:.]+")


def is_http_base_url(value: str) -> bool:
    """An http(s) origin and an optional path prefix, onto which a link's own path is appended
    (so no query or fragment): LEDGER_PUBLIC_URL, and the server URL of `demo`'s examples."""
    try:
        parts = urlsplit(value)
        port = parts.port  # ValueError for a port that is not a number from 0 to 65535
    except ValueError:
        return False
    return (
        parts.scheme.lower() in ("http", "https")
        and parts.hostname is not None
        and _HOST.fullmatch(parts.hostname) is not None
        and parts.username is None
        and port != 0
        and not (set(value) & {"?", "#", " "})
    )


def _check_public_url(value: str) -> None:
    """LEDGER_PUBLIC_URL starts every link the service hands out."""
    if not is_http_base_url(value):
        raise SettingsError(
            f"LEDGER_PUBLIC_URL={value!r} is not valid: use http:// or https://, a host, an"
            " optional :port and path prefix, and no query or fragment"
            " (https://ledger.example.com)"
        )


_DATABASE_SCHEMES: Final = ("postgresql", "postgres")
_PORTS: Final = range(1, 65536)


def _check_database_urls(settings: Settings) -> None:
    """Each database URL is one asyncpg can connect with, checked here rather than at its first
    connection (a traceback from migrate, or a replica read that fails on every request); and
    the owner's URL is one for LEDGER_DATABASE_URL's database, not the embedded server's."""
    for name in ("database_url", "migration_database_url", "read_database_url"):
        value = getattr(settings, name)
        if value is not None and not _is_database_url(value):
            raise SettingsError(
                f"LEDGER_{name.upper()}={without_password(value)!r} is not valid: use"
                " postgresql:// or postgres://, then [user[:password]@]host[:port]/database, a"
                " port being 1 to 65535 (postgresql://ledger@db.example:5432/ledger)"
            )
    if settings.migration_database_url is not None and settings.database_url is None:
        raise SettingsError(
            "LEDGER_MIGRATION_DATABASE_URL is set without LEDGER_DATABASE_URL: it names the"
            " tables' owner on the database LEDGER_DATABASE_URL names (the embedded server has"
            " its own roles); set LEDGER_DATABASE_URL too, or unset it"
        )


def _is_database_url(value: str) -> bool:
    """A postgresql:// URL whose hosts (one, several separated by commas, or none for the local
    socket) each have a port of 1 to 65535 if any."""
    scheme, separator, rest = value.partition("://")
    if not separator or scheme.lower() not in _DATABASE_SCHEMES:
        return False
    netloc = re.split(r"[/?#]", rest, maxsplit=1)[0]
    hosts = netloc.rpartition("@")[2]
    return all(_is_host_and_port(host) for host in hosts.split(","))


def _is_host_and_port(text: str) -> bool:
    if text.startswith("["):  # an IPv6 address
        address, bracket, port = text[1:].partition("]")
        if not bracket or not address or (port and not port.startswith(":")):
            return False
        port = port[1:]
    else:
        _host, _colon, port = text.partition(":")
    return not port or (port.isascii() and port.isdigit() and int(port) in _PORTS)


def without_password(url: str) -> str:
    """`url` with its password, in the user info or the query (?password=...), shown as ***."""
    scheme, separator, rest = url.partition("://")
    if separator:
        netloc = re.split(r"[/?#]", rest, maxsplit=1)[0]
        userinfo, at, hosts = netloc.rpartition("@")
        if at and ":" in userinfo:
            user = userinfo.partition(":")[0]
            url = f"{scheme}://{user}:***@{hosts}{rest[len(netloc) :]}"
    return _QUERY_PASSWORD.sub(r"\1***", url)


_QUERY_PASSWORD: Final = re.compile(r"([?&]password=)[^&#]*", re.IGNORECASE)


def _decode_path(kind: type, value: object) -> object:
    if kind is Path and isinstance(value, str):
        try:
            return Path(value).expanduser()
        except RuntimeError:  # ~user of a user that does not exist, or no home to expand ~
            raise ValueError(value) from None
    raise NotImplementedError(f"cannot read {kind} from an environment variable")


class SettingsError(ValueError):
    """An environment variable holds a value the setting cannot take."""
