"""Every event type encodes and decodes to itself, under the tag it is stored by.

The event types are taken from the DomainEvent union itself, so a new type gets its round trip
without a line here. Values are drawn from msgspec's own description of each type rather than
`st.from_type`: that would draw NaN (JSON has none; msgspec writes null), integers beyond 64 bits
(msgspec refuses them) and msgspec's default-factory sentinels for omitted list fields.
"""

from __future__ import annotations

import typing
import uuid
from datetime import UTC, datetime

import msgspec
import msgspec.inspect as mi
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lead_ledger.ledger import dnc_events, events, job_events, subscription_events
from lead_ledger.ledger.envelope import RecordedEvent
from lead_ledger.ledger.events import (
    EVENT_TAGS,
    EVENT_TYPES,
    SCHEMA_VERSION,
    DomainEvent,
    decode_event,
    encode_event,
    tag_of,
)

# Leaves: `st.from_type` where it draws only what JSON carries, bounds where it does not.
_LEAVES: dict[type[mi.Type], st.SearchStrategy[typing.Any]] = {
    mi.StrType: st.from_type(str),
    mi.BoolType: st.from_type(bool),
    mi.NoneType: st.none(),
    mi.IntType: st.integers(-(2**63), 2**63 - 1),
    mi.FloatType: st.floats(allow_nan=False, allow_infinity=False),
    mi.DateTimeType: st.datetimes() | st.datetimes(timezones=st.just(UTC)),
}


def values_of(info: mi.Type) -> st.SearchStrategy[typing.Any]:  # noqa: PLR0911 - one per kind
    """Values msgspec can encode for a type as it describes it; a type not listed fails."""
    match info:
        case mi.StructType():
            fields = {f.name: values_of(f.type) for f in info.fields if f.required}
            optional = {f.name: values_of(f.type) for f in info.fields if not f.required}
            cls = info.cls
            return st.fixed_dictionaries(fields, optional=optional).map(lambda kw: cls(**kw))
        case mi.UnionType():
            return st.one_of(*(values_of(t) for t in info.types))
        case mi.TupleType():
            return st.tuples(*(values_of(t) for t in info.item_types))
        case mi.ListType():
            return st.lists(values_of(info.item_type), max_size=3)
        case mi.DictType():
            return st.dictionaries(values_of(info.key_type), values_of(info.value_type), max_size=3)
        case mi.LiteralType():
            return st.sampled_from(info.values)
        case _ if type(info) in _LEAVES:
            return _LEAVES[type(info)]
        case _:
            raise TypeError(f"no strategy for {info}: add one to values_of")


def _recorded(event: DomainEvent) -> RecordedEvent:
    new = encode_event(event, uuid.uuid4())
    return RecordedEvent(
        position=1,
        event_id=new.event_id,
        stream_id="s-1",
        stream_version=1,
        type=new.type,
        schema_version=new.schema_version,
        data=new.data,
        metadata=b"{}",
        recorded_at=datetime(2024, 1, 1, tzinfo=UTC),
        transaction_id=1,
    )


@pytest.mark.parametrize("event_type", EVENT_TYPES, ids=lambda t: t.__name__)
@settings(deadline=None)  # a shared, busy machine must not turn a slow draw into a failure
@given(data=st.data())
def test_every_event_type_round_trips(event_type: type[DomainEvent], data: st.DataObject) -> None:
    """encode_event then decode_event gives the same event back, stored under its tag."""
    event = data.draw(values_of(mi.type_info(event_type)))
    recorded = _recorded(event)
    assert decode_event(recorded) == event
    assert recorded.type == tag_of(event_type)
    assert msgspec.json.decode(recorded.data)["type"] == recorded.type
    assert recorded.schema_version == SCHEMA_VERSION


def test_every_tagged_event_class_is_in_the_union() -> None:
    """A tagged event class left out of DomainEvent could be written but never decoded."""
    tagged = {
        value
        for module in (events, job_events, dnc_events, subscription_events)
        for value in vars(module).values()
        if isinstance(value, type)
        and issubclass(value, msgspec.Struct)
        and value.__struct_config__.tag is not None
        and not value.__name__.startswith("_")  # the tagged bases, never recorded themselves
    }
    assert tagged == set(EVENT_TYPES)


def test_tags_equal_class_names() -> None:
    """Stored types were class names before they were tags: a renamed class keeps its tag."""
    assert {t.__name__: tag for t, tag in EVENT_TAGS.items()} == {
        t.__name__: t.__name__ for t in EVENT_TYPES
    }
