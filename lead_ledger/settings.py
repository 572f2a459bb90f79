"""Settings from environment variables, read once at start (documented in the README)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal

import msgspec
import platformdirs

LogFormat = Literal["auto", "json", "console"]


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    database_url: str | None = None
    # The tables' owner, for migrations and rebuilds; without it they use `database_url`.
    migration_database_url: str | None = None
    data_dir: Path = Path(platformdirs.user_data_dir("lead-ledger"))
    db_pool_min: int = 2
    db_pool_max: int = 10
    admin_token: str | None = None
    log_format: LogFormat = "auto"
    log_level: str = "info"
    max_body_bytes: int = 64 * 1024 * 1024
    callback_allow_private: bool = False
    # How long a claimed job stays its worker's before another may claim it, should the worker
    # die between the claim and the run's row lock (which then holds it for the whole run).
    job_lease_seconds: Annotated[float, msgspec.Meta(gt=0)] = 300.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        raw: dict[str, object] = {}
        for field in msgspec.structs.fields(cls):
            value = env.get(f"LEDGER_{field.name.upper()}")
            if value is not None and value != "":
                raw[field.name] = value
        # strict=False lets "10" become 10 and "1" become True, as environment values are text.
        try:
            return msgspec.convert(raw, cls, strict=False, dec_hook=_decode_path)
        except msgspec.ValidationError as error:
            raise SettingsError(f"invalid setting: {error} (from LEDGER_* variables)") from error


def _decode_path(kind: type, value: object) -> object:
    if kind is Path and isinstance(value, str):
        return Path(value).expanduser()
    raise NotImplementedError(f"cannot read {kind} from an environment variable")


class SettingsError(ValueError):
    """An environment variable holds a value the setting cannot take."""
