"""Flexydial's bulk_data: seed 000's payloads and messages, VENDOR-APIS A inserts, row problems,
update rows and how several rows finding one lead combine.

The seed's example bodies are used as written, with their // comments removed and their two
syntax slips (a missing comma, a trailing comma) repaired so that they are JSON.
"""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from lead_ledger.ledger.events import LeadFields
from lead_ledger.service.flexydial_payload import (
    BulkRequest,
    RowPatch,
    RowProblem,
    check_headers,
    describe,
    field_label,
    merge_patches,
    parse_bulk,
    parse_structure,
    row_to_fields,
    row_to_patch,
)

CAMPAIGN = "<flexydial_campaign_name(string)>"
F1 = "flexydial_campaign_crm_section_name:field_name1"
F2 = "flexydial_campaign_crm_section_name:field_name2"
AGENT = "<flexydial_agent_id(string)>"

OOPS = "Oops Something went wrong, Please contact Administrator"
INVALID_STRUCTURE = "Invalid request structure"
HEADERS = "Headers are not matching with Campaign CRM Fields. Please refer to the sample CSV"


def body(payload: Any) -> bytes:
    return msgspec.json.encode(payload)


def parsed(payload: Any, crm_fields: list[str] | None = None) -> BulkRequest:
    result = parse_bulk(body(payload), crm_fields=crm_fields)
    assert isinstance(result, BulkRequest), result
    return result


def error(payload: Any, crm_fields: list[str] | None = None) -> str:
    result = parse_bulk(body(payload), crm_fields=crm_fields)
    assert isinstance(result, str), result
    return result


def update(reference: str, *items: dict[str, Any]) -> dict[str, Any]:
    return {
        "campaign": CAMPAIGN,
        "reference_field": reference,
        "action_type": "update",
        "bulk_data": list(items),
    }


# --- seed 000: the four accepted types ----------------------------------------------------------


def test_type1_update_by_numeric() -> None:
    """Type 1: CRM fields updated, found by the customer's number."""
    payload = update(
        "numeric",
        {"numeric": "value", F1: "value", F2: "value"},
        {"numeric": "value", F1: "value", F2: "value"},
    )
    assert parsed(payload) == BulkRequest(
        campaign=CAMPAIGN,
        kind="update",
        reference_field="numeric",
        rows=[{"numeric": "value", F1: "value", F2: "value"}] * 2,
    )


def test_type2_update_by_crm_field() -> None:
    """Type 2: a CRM field is the reference, numeric is one of the updated columns."""
    payload = update(
        F1, {F1: "value", F2: "value", "numeric": "value"}, {F1: "v", F2: "v", "numeric": "v"}
    )
    result = parsed(payload)
    assert (result.kind, result.reference_field) == ("update", F1)
    assert result.rows[1] == {F1: "v", F2: "v", "numeric": "v"}


def test_type3_reassign_by_numeric() -> None:
    """Type 3: rows carrying `user` reassign leads found by number."""
    payload = update(
        "numeric", {"user": AGENT, "numeric": "value"}, {"user": AGENT, "numeric": "v"}
    )
    result = parsed(payload)
    assert result.rows == [{"user": AGENT, "numeric": "value"}, {"user": AGENT, "numeric": "v"}]


def test_type4_reassign_by_crm_field() -> None:
    """Type 4: reassignment found by a CRM unique id (the seed's example omits it: refused)."""
    as_documented = update(F1, {"user": AGENT, "numeric": "value"}, {"user": AGENT, "numeric": "v"})
    assert error(as_documented) == f"reference_field - {F1} is missing in some bulk_data item(s)"
    payload = update(F1, {"user": AGENT, F1: "C-1"}, {"user": AGENT, F1: "C-2"})
    assert parsed(payload).rows == [{"user": AGENT, F1: "C-1"}, {"user": AGENT, F1: "C-2"}]


# --- seed 000: errors --------------------------------------------------------------------------


def test_error_type1_update_without_campaign() -> None:
    """Error type 1: an update without campaign is Flexydial's catch-all."""
    payload = {
        "reference_field": "numeric",
        "action_type": "update",
        "bulk_data": [
            {F1: "value", F2: "value"},
            {"supersection:age": "value", "supersection:name": "value"},
        ],
    }
    assert error(payload) == OOPS


def test_error_type1_update_without_bulk_data() -> None:
    """Error type 1: an update without bulk_data is the catch-all too."""
    assert (
        error({"campaign": CAMPAIGN, "reference_field": "numeric", "action_type": "update"}) == OOPS
    )


def test_insert_with_reference_field() -> None:
    """Scenario payload 1: reference_field on an insert is an invalid structure (seed over A)."""
    payload = {
        "campaign": CAMPAIGN,
        "reference_field": "numeric",
        "bulk_data": [
            {
                "numeric": "<1st>",
                "user": AGENT,
                "flexydial_campaign_crm_section_name:field_name1(string": "value",
            },
            {
                "numeric": "<2nd>",
                "user": AGENT,
                "flexydial_campaign_crm_section_name:field_name1(string": "value",
            },
        ],
    }
    assert error(payload) == INVALID_STRUCTURE


def test_insert_without_bulk_data() -> None:
    """Scenario payload 2: only a campaign."""
    assert error({"campaign": CAMPAIGN}) == INVALID_STRUCTURE


def test_insert_without_campaign() -> None:
    """Scenario payload 3: only bulk_data."""
    payload = {"bulk_data": [{F1: "value", F2: "value"}, {F1: "value", F2: "value"}]}
    assert error(payload) == INVALID_STRUCTURE


def test_error_type2_update_without_reference_field() -> None:
    """Error type 2: action_type update needs reference_field."""
    payload = {
        "campaign": CAMPAIGN,
        "action_type": "update",
        "bulk_data": [{F1: "value", F2: "value"}, {F1: "value", F2: "value"}],
    }
    assert error(payload) == "reference_field is missing in the request!"


def test_error_type3_numeric_missing_in_items() -> None:
    """Error type 3, payloads 1 and 2: no item has the numeric reference."""
    payload = update("numeric", {F1: "value", F2: "value"}, {F1: "value", F2: "value"})
    assert error(payload) == "reference_field - numeric is missing in some bulk_data item(s)"


def test_error_type3_crm_reference_missing_in_one_item() -> None:
    """Error type 3, payload 3: one item lacks the CRM reference (before the uniformity check)."""
    payload = update(
        F1, {"numeric": "value", F2: "value"}, {"numeric": "value", F1: "value", F2: "value"}
    )
    assert error(payload) == f"reference_field - {F1} is missing in some bulk_data item(s)"


def test_error_type3_crm_reference_missing_everywhere() -> None:
    """Error type 3, payload 4: no item has the CRM reference."""
    payload = update(F1, {"numeric": "value", F2: "value"}, {"numeric": "value", F2: "value"})
    assert error(payload) == f"reference_field - {F1} is missing in some bulk_data item(s)"


@pytest.mark.parametrize(
    ("reference", "second"),
    [
        ("numeric", {"numeric": "value", F2: "value"}),
        (F2, {F2: "value", "numeric": "value"}),
        ("numeric", {"numeric": "value"}),
    ],
    ids=["payload1", "payload2", "payload3"],
)
def test_error_type4_not_uniform(reference: str, second: dict[str, str]) -> None:
    """Error type 4: items with different keys."""
    payload = update(reference, {"numeric": "value", F1: "value", F2: "value"}, second)
    assert error(payload) == "All items in bulk_data must have uniform structure"


def test_uniform_ignores_key_order() -> None:
    """Uniform means the same keys, in any order."""
    payload = update("numeric", {"numeric": "1", F1: "a"}, {F1: "b", "numeric": "2"})
    assert len(parsed(payload).rows) == 2


def test_error_type5_only_reference_field() -> None:
    """Error type 5: nothing to update besides the reference."""
    payload = update("numeric", {"numeric": "value"}, {"numeric": "value"})
    assert error(payload) == (
        "Please provide the columns data that you want to update along with the reference_field"
    )


# --- VENDOR-APIS A: inserts and CRM headers ----------------------------------------------------


def test_insert_payload() -> None:
    """A's insert: campaign and bulk_data, no action_type or reference_field."""
    payload = {
        "campaign": "Sales",
        "bulk_data": [
            {"numeric": "9876543210", "user": "agent1", "customer_info:customer_id": "C-1"},
            {"numeric": 9876543211, "user": "agent2", "customer_info:customer_id": "C-2"},
        ],
    }
    result = parsed(payload, ["customer_info:customer_id", "customer_info:city"])
    assert result == BulkRequest(
        campaign="Sales",
        kind="insert",
        reference_field=None,
        rows=[
            {"numeric": "9876543210", "user": "agent1", "customer_info:customer_id": "C-1"},
            {"numeric": "9876543211", "user": "agent2", "customer_info:customer_id": "C-2"},
        ],
    )


def test_insert_items_may_differ() -> None:
    """Uniformity is an update rule: insert rows may carry different columns."""
    payload = {
        "campaign": "Sales",
        "bulk_data": [{"numeric": "9876543210"}, {"numeric": "98", "email": ""}],
    }
    assert len(parsed(payload).rows) == 2


def test_insert_crm_header_not_declared() -> None:
    """A CRM key the campaign does not declare refuses the request."""
    payload = {"campaign": "Sales", "bulk_data": [{"numeric": "9876543210", "loan:amount": "5"}]}
    assert error(payload, ["customer_info:customer_id"]) == HEADERS


def test_update_crm_header_not_declared() -> None:
    """The same header rule holds for updates, after the structure checks."""
    payload = update("numeric", {"numeric": "1", "loan:amount": "5"})
    assert error(payload, ["customer_info:customer_id"]) == HEADERS


def test_unknown_plain_key() -> None:
    """A key that is neither a contact column nor section:field is a header mismatch."""
    payload = {"campaign": "Sales", "bulk_data": [{"numeric": "9876543210", "mobile": "1"}]}
    assert error(payload) == HEADERS


def test_crm_keys_unchecked_without_declared_fields() -> None:
    """Without declared CRM fields any section:field key is accepted."""
    payload = {"campaign": "Sales", "bulk_data": [{"numeric": "9876543210", "loan:amount": 5}]}
    assert parsed(payload).rows == [{"numeric": "9876543210", "loan:amount": "5"}]


@pytest.mark.parametrize("raw", [b"{not json", b"", b"[]", b'"text"', b"null"])
def test_unreadable_body(raw: bytes) -> None:
    """Malformed JSON or a body that is not an object: Flexydial's catch-all."""
    assert parse_bulk(raw, crm_fields=None) == OOPS


@pytest.mark.parametrize(
    "payload",
    [
        {"campaign": "", "bulk_data": [{"numeric": "1"}]},
        {"campaign": 7, "bulk_data": [{"numeric": "1"}]},
        {"campaign": "Sales", "bulk_data": []},
        {"campaign": "Sales", "bulk_data": {"numeric": "1"}},
        {"campaign": "Sales", "bulk_data": ["9876543210"]},
        {"campaign": "Sales", "bulk_data": [{"numeric": {"nested": "1"}}]},
        {"campaign": "Sales", "action_type": "delete", "bulk_data": [{"numeric": "1"}]},
    ],
    ids=["blank-campaign", "number-campaign", "empty", "object", "strings", "nested", "delete"],
)
def test_insert_shapes_refused(payload: dict[str, Any]) -> None:
    """Insert campaign/bulk_data that are blank or of the wrong type count as missing."""
    assert error(payload) == INVALID_STRUCTURE


def test_update_with_empty_bulk_data() -> None:
    """An update with an empty bulk_data is the update path's catch-all."""
    assert error(update("numeric")) == OOPS


def test_update_with_blank_reference_field() -> None:
    """A blank reference_field is a missing one."""
    assert (
        error(update("  ", {"numeric": "1", F1: "a"}))
        == "reference_field is missing in the request!"
    )


def test_values_become_text() -> None:
    """Numbers, booleans, null and lists arrive as the text a CSV would carry."""
    payload = {
        "campaign": "Sales",
        "bulk_data": [
            {
                "numeric": 9876543210,
                "priority": 2.0,
                "alt_numeric": ["9876543211", 9876543212],
                "email": None,
                "x:flag": True,
            }
        ],
    }
    assert parsed(payload).rows == [
        {
            "numeric": "9876543210",
            "priority": "2",
            "alt_numeric": "9876543211,9876543212",
            "email": "",
            "x:flag": "true",
        }
    ]


# --- row-level problems ------------------------------------------------------------------------


def test_row_to_fields() -> None:
    """A full insert row maps onto the canonical lead."""
    row = {
        "numeric": "9876543210",
        "alt_numeric": "9876543211, 9876543212",
        "first_name": "Asha",
        "last_name": "Rao",
        "email": "asha@example.com",
        "priority": "3",
        "user": "agent1",
        "customer_info:customer_id": "C-1",
    }
    assert row_to_fields(row) == LeadFields(
        phone_numbers=["9876543210", "9876543211", "9876543212"],
        first_name="Asha",
        last_name="Rao",
        email="asha@example.com",
        priority=3,
        agent="agent1",
        crm={"customer_info:customer_id": "C-1"},
    )


def test_row_defaults() -> None:
    """Only a number: priority 1, nothing else set."""
    assert row_to_fields({"numeric": "+919876543210", "email": "", "priority": ""}) == LeadFields(
        phone_numbers=["+919876543210"]
    )


N, P, A, E = "number", "priority", "alt_numeric", "email"


@pytest.mark.parametrize(
    ("row", "problems"),
    [
        ({}, {N: "Enter Number"}),
        ({"numeric": "  "}, {N: "Enter Number"}),
        ({"numeric": "98765-43210"}, {N: "Enter Valid Number"}),
        ({"numeric": "12"}, {N: "Enter Valid Number"}),
        ({"numeric": "12345678901234567"}, {N: "Enter Valid Number"}),
        ({"numeric": "9876543210", "alt_numeric": "1234,abc"}, {A: "Enter Valid Number"}),
        (
            {"numeric": "9876543210", "alt_numeric": "111,222,333,444,555,666"},
            {A: "More than 5 alternate numbers are not allowed"},
        ),
        ({"numeric": "9876543210", "priority": "high"}, {P: "Enter Valid priority"}),
        ({"numeric": "9876543210", "priority": "-1"}, {P: "Enter Valid priority"}),
        ({"numeric": "9876543210", "email": "asha@"}, {E: "Enter Valid Email Address"}),
        ({"numeric": "9876543210", "email": "a b@example.com"}, {E: "Enter Valid Email Address"}),
        (
            {"numeric": "bad", "priority": "x", "email": "y"},
            {N: "Enter Valid Number", P: "Enter Valid priority", E: "Enter Valid Email Address"},
        ),
        (
            {"priority": "x", "alt_numeric": "1,2,3,4,5,6"},
            {
                P: "Enter Valid priority",
                N: "Enter Number",
                A: "More than 5 alternate numbers are not allowed",
            },
        ),
    ],
)
def test_row_problems(row: dict[str, str], problems: dict[str, str]) -> None:
    """Every check a row fails, by its key, in the order Flexydial's code fills them (a missing
    number after the priority)."""
    result = row_to_fields(row)
    assert isinstance(result, RowProblem)
    assert list(result.problems.items()) == list(problems.items())


def test_a_description_is_the_problems_as_flexydials_json() -> None:
    """Python's json.dumps, as Flexydial writes it: ", " and ": ", non-ASCII escaped; a CRM
    reference field is named by its field name with spaces."""
    described = describe({N: "Enter Valid Number", "user": "é"})
    assert described == '{"number": "Enter Valid Number", "user": "\\u00e9"}'
    assert field_label("customer_info:customer_id") == "customer id"
    assert field_label("numeric") == "numeric"


def test_five_alternates_allowed() -> None:
    """Exactly five alternates are accepted."""
    result = row_to_fields({"numeric": "9876543210", "alt_numeric": "111,222,333,444,555"})
    assert isinstance(result, LeadFields)
    assert len(result.phone_numbers) == 6


def test_priority_above_99() -> None:
    """Priorities are 0-99, as everywhere in the ledger."""
    assert row_to_fields({"numeric": "9876543210", "priority": "99"}) == LeadFields(
        phone_numbers=["9876543210"], priority=99
    )
    assert row_to_fields({"numeric": "9876543210", "priority": "100"}) == RowProblem(
        {"priority": "Enter Valid priority"}
    )


# --- the split around the campaign lookup ------------------------------------------------------


def test_structure_then_headers() -> None:
    """parse_structure leaves the header check to check_headers, which parse_bulk runs last."""
    payload = {"campaign": "Sales", "bulk_data": [{"numeric": "1", "loan:amount": "5"}]}
    request = parse_structure(body(payload))
    assert isinstance(request, BulkRequest)
    assert check_headers(request.rows, None) is None
    assert check_headers(request.rows, ["loan:amount"]) is None
    assert check_headers(request.rows, ["customer_info:customer_id"]) == HEADERS
    assert check_headers([{"numeric": "1", "mobile": "2"}], None) == HEADERS


@pytest.mark.parametrize("reference", ["first_name", "user", "alt_numeric", "customer_id"])
def test_update_reference_neither_numeric_nor_crm(reference: str) -> None:
    """Leads are found by number or by a CRM field: any other reference is refused."""
    payload = update(reference, {reference: "x", "last_name": "y"})
    assert error(payload) == INVALID_STRUCTURE


def test_nul_in_values_is_dropped_and_in_keys_refused() -> None:
    """jsonb cannot hold NUL: values lose it, a key holding one matches no header."""
    payload = {
        "campaign": "Sales",
        "bulk_data": [{"numeric": "98765\u000043210", "a:b": "x\u0000"}],
    }
    assert parsed(payload).rows == [{"numeric": "9876543210", "a:b": "x"}]
    refused = {"campaign": "Sales", "bulk_data": [{"numeric": "1", "a:\u0000b": "x"}]}
    assert error(refused) == HEADERS


# --- update rows -------------------------------------------------------------------------------


def test_row_to_patch_by_numeric() -> None:
    """Every column but the reference becomes a change; blank cells change nothing."""
    row = {
        "numeric": "9876543210",
        "alt_numeric": "9876543211,9876543212",
        "first_name": " Asha ",
        "last_name": "",
        "email": "asha@example.com",
        "priority": "5",
        "user": "agent1",
        "customer_info:city": "Pune",
        "customer_info:plan": "",
    }
    assert row_to_patch(row, "numeric") == RowPatch(
        alternates=["9876543211", "9876543212"],
        fields={"first_name": "Asha", "email": "asha@example.com", "priority": 5},
        crm={"customer_info:city": "Pune"},
        agent="agent1",
    )


def test_row_to_patch_by_crm_field() -> None:
    """With a CRM reference, numeric is the new primary number; the reference is not changed."""
    row = {"customer_info:customer_id": "C-1", "numeric": "9876543299", "customer_info:city": "X"}
    assert row_to_patch(row, "customer_info:customer_id") == RowPatch(
        numeric="9876543299", crm={"customer_info:city": "X"}
    )


@pytest.mark.parametrize(
    ("row", "reference", "problems"),
    [
        ({"c:id": "1", "numeric": "12"}, "c:id", {N: "Enter Valid Number"}),
        (
            {"numeric": "9876543210", "alt_numeric": "1,2,3,4,5,6"},
            "numeric",
            {A: "More than 5 alternate numbers are not allowed"},
        ),
        ({"numeric": "9876543210", "alt_numeric": "123,4"}, "numeric", {A: "Enter Valid Number"}),
        ({"numeric": "9876543210", "priority": "x"}, "numeric", {P: "Enter Valid priority"}),
        ({"numeric": "9876543210", "email": "x"}, "numeric", {E: "Enter Valid Email Address"}),
        (
            {"c:customer_id": " ", "email": "x"},
            "c:customer_id",
            {
                "duplicate_check": "the customer id should not be blank",
                E: "Enter Valid Email Address",
            },
        ),
    ],
)
def test_row_to_patch_problems(
    row: dict[str, str], reference: str, problems: dict[str, str]
) -> None:
    """An update row's values get the insert's checks (the reference is not checked as a
    value); a blank reference comes first."""
    result = row_to_patch(row, reference)
    assert isinstance(result, RowProblem)
    assert list(result.problems.items()) == list(problems.items())


def test_reference_number_not_checked_as_a_value() -> None:
    """The numeric reference only finds leads: its spelling is the lookup's business."""
    assert row_to_patch({"numeric": "098765 43210", "user": "a"}, "numeric") == RowPatch(agent="a")


def test_merge_patches_in_row_order() -> None:
    """Later rows win a field, CRM fields merge, phone numbers build on each other."""
    current = LeadFields(phone_numbers=["111", "222", "333"], crm={"c:a": "1"}, agent="x")
    patches = [
        RowPatch(numeric="999", fields={"first_name": "A"}, crm={"c:b": "2"}),
        RowPatch(alternates=["444"], fields={"first_name": "B"}, crm={"c:a": "3"}, agent="y"),
    ]
    assert merge_patches(current, patches) == {
        "phone_numbers": ["999", "444"],
        "first_name": "B",
        "crm": {"c:b": "2", "c:a": "3"},
        "agent": "y",
    }


def test_merge_patches_leaves_unchanged_numbers_out() -> None:
    """A patch that changes no number does not name phone_numbers at all."""
    current = LeadFields(phone_numbers=["111", "222"])
    assert merge_patches(current, [RowPatch(alternates=["222"])]) == {}
    assert merge_patches(current, [RowPatch(agent="a")]) == {"agent": "a"}
