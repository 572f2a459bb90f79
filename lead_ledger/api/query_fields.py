"""Which fields of a query Struct are times and which whole numbers: what the native routes read
strictly (api/native.py, query_params) and what the OpenAPI document says of them."""

from __future__ import annotations

import functools
from typing import Literal

import msgspec
import msgspec.inspect

QueryKind = Literal["time", "whole_number"]


@functools.cache
def field_kinds(query: type[msgspec.Struct]) -> dict[str, QueryKind]:
    """The time and whole-number parameters of `query`, by name (optional ones included)."""
    info = msgspec.inspect.type_info(query)
    fields = info.fields if isinstance(info, msgspec.inspect.StructType) else ()
    kinds: dict[str, QueryKind] = {}
    for one in fields:
        members = one.type.types if isinstance(one.type, msgspec.inspect.UnionType) else (one.type,)
        if any(isinstance(m, msgspec.inspect.DateTimeType) for m in members):
            kinds[one.encode_name] = "time"
        elif any(isinstance(m, msgspec.inspect.IntType) for m in members):
            kinds[one.encode_name] = "whole_number"
    return kinds
