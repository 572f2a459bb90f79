"""validation_problem: a 400 problem whose `field` names what msgspec refused."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
import pytest

from lead_ledger.api.problems import PROBLEM_JSON, validation_problem


class Hours(msgspec.Struct, forbid_unknown_fields=True):
    start: str
    days: list[Annotated[int, msgspec.Meta(ge=1, le=7)]] = []


class Body(msgspec.Struct, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(min_length=1)]
    hours: Hours | None = None
    shifts: list[Hours] = []


def refusal(raw: bytes, kind: Any = Body) -> dict[str, Any]:
    """The problem validation_problem makes of msgspec's refusal of `raw`."""
    with pytest.raises(msgspec.DecodeError) as caught:
        msgspec.json.decode(raw, type=kind)
    response = validation_problem(caught.value)
    assert (response.status, response.content_type) == (400, PROBLEM_JSON)
    assert isinstance(response.body, bytes)
    problem: dict[str, Any] = msgspec.json.decode(response.body)
    assert (problem["status"], problem["detail"]) == (400, str(caught.value))
    return problem


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b'{"name": "a", "color": "red"}', "color"),
        (b'{"name": "a", "hours": {"start": "9", "lunch": 1}}', "hours.lunch"),
        (b'{"name": "a", "shifts": [{"start": "9"}, {"start": "9", "x": 1}]}', "shifts[1].x"),
        (b'{"name": "a", "we`ird": 1}', "we`ird"),
        (b'{"name": "a", "line\\nbreak": 1}', "line\nbreak"),
    ],
)
def test_unknown_fields_are_named_with_the_path_of_their_object(raw: bytes, field: str) -> None:
    """msgspec puts an unknown (or missing) field's name in the message; `field` joins it to the
    path."""
    assert refusal(raw)["field"] == field


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b'{"name": 5}', "name"),
        (b'{"name": ""}', "name"),
        (b'{"name": "a", "hours": {"start": "9", "days": [8]}}', "hours.days[0]"),
        (b"{}", "name"),  # a missing field: msgspec names it only in the message
        (b'{"name": "a", "hours": {"days": [1]}}', "hours.start"),
        (b"[1]", None),
        (b'{"name": "a"', None),
        (b"", None),
    ],
)
def test_wrong_values_are_named_by_their_path(raw: bytes, field: str | None) -> None:
    """Wrong types and values name their path; malformed JSON and a wrong root name none."""
    assert refusal(raw)["field"] == field


def test_an_unknown_field_inside_a_top_level_array_keeps_its_index() -> None:
    """A body that is an array of objects: the field is named after its element, from the
    root (`$[0].q`), as the do-not-call route names its entries."""
    assert refusal(b'[{"start": "9", "q": 1}]', list[Hours])["field"] == "$[0].q"
