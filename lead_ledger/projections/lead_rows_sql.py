"""The SQL that computes `leads` and `contacts` rows from lead events, shared by the rebuild
(`rebuild/set_based.py`) and the inline apply of new leads (`fresh_inserts.py`).

It must produce exactly what LeadsProjection.fold and ContactsProjection.fold produce; the
module refuses to import when LeadFields or the leads columns change under it.
"""

from __future__ import annotations

from typing import Final

import msgspec

from lead_ledger.ledger.events import FIELD_NAMES, LeadFields
from lead_ledger.projections.leads import LEAD_COLUMNS


def text_array(json: str) -> str:
    # jsonb has no cast to text[], and an ARRAY(subquery) per row costs about a microsecond;
    # the usual one-element list is built directly.
    return (
        f"CASE jsonb_array_length({json}) WHEN 1 THEN ARRAY[{json}->>0] "
        f"ELSE ARRAY(SELECT jsonb_array_elements_text({json})) END"
    )


# LeadFields as columns, from the merged fields object `f`. Absent keys take the Struct's
# defaults, as msgspec would give them to the Python fold.
_FIELD_SQL: Final = {
    "phone_numbers": text_array("f->'phone_numbers'"),
    "crm": "coalesce(f->'crm', '{}')",
    "priority": "coalesce((f->>'priority')::integer, 1)",
    "expires_at": "(f->>'expires_at')::timestamptz",
    "status": "coalesce(f->>'status', 'new')",
    "extra": "coalesce(f->'extra', '{}')",
}
_DEFAULTS: Final = {"crm": {}, "priority": 1, "status": "new", "extra": {}, "phone_numbers": []}


def _field_sql(field: msgspec.structs.FieldInfo) -> str:
    if field.name in _FIELD_SQL:
        if field.default is not msgspec.NODEFAULT and _DEFAULTS.get(field.name) != field.default:
            raise RuntimeError(f"LeadFields.{field.name}: default changed, update lead_rows_sql.py")
        return _FIELD_SQL[field.name]
    if field.type != (str | None) or field.default is not None:
        raise RuntimeError(f"LeadFields.{field.name}: no SQL for its type, update lead_rows_sql.py")
    return f"f->>'{field.name}'"


_FIELDS: Final = {f.name: f for f in msgspec.structs.fields(LeadFields)}
_LEAD_VALUES: Final = {
    "lead_id": "lead_id",
    "account_id": "account_id",
    "campaign_id": "campaign_id",
    "version": "version",
    "dedupe_keys": text_array("dedupe_keys"),
    **{name: _field_sql(_FIELDS[name]) for name in FIELD_NAMES},
    # As the `final` CTE computes them, by the rule of ledger/row_times.py.
    "entry_at": "entry_at",
    "modified_at": "modified_at",
}
if tuple(_LEAD_VALUES) != LEAD_COLUMNS:
    raise RuntimeError("set_based.py does not cover the leads columns")


def write_leads_sql(schema: str) -> str:
    """INSERT the leads rows of a `final` CTE (one row per lead, fields in `f`) into `schema`."""
    return f"""
INSERT INTO {schema}.leads ({", ".join(_LEAD_VALUES)})
SELECT {", ".join(_LEAD_VALUES.values())}
FROM final"""


def leads_and_contacts_ctes(schema: str) -> str:
    """`written` and `contacts`: the lead rows of a `final` CTE (one row per lead, fields in
    `f`) and their contacts, written into `schema`, for a WITH clause that defines `final`.

    Contacts as ContactsProjection.contact_rows gives them for the final row: every dedupe key,
    user_data and reference_number when not empty, each non-empty CRM value. Taken from the rows
    just written (RETURNING) rather than by reading the table again.
    """
    return f"""written AS ({write_leads_sql(schema)}
    RETURNING lead_id, campaign_id, dedupe_keys, user_data, reference_number, crm
), contacts AS (
    INSERT INTO {schema}.contacts (lead_id, campaign_id, kind, value)
    SELECT lead_id, campaign_id, 'phone', unnest(dedupe_keys) FROM written
    UNION ALL
    SELECT lead_id, campaign_id, 'user_data', user_data FROM written WHERE user_data <> ''
    UNION ALL
    SELECT lead_id, campaign_id, 'reference_number', reference_number
    FROM written WHERE reference_number <> ''
    UNION ALL
    SELECT lead_id, campaign_id, 'crm:' || c.key, c.value
    FROM written, jsonb_each_text(crm) AS c WHERE c.value <> ''
    RETURNING 1
)"""


def write_leads_and_contacts_sql(final: str, schema: str) -> str:
    """`final` (a WITH clause defining `final`), its lead rows and their contacts, written into
    `schema` in one statement (`leads_and_contacts_ctes`); answers the two row counts."""
    return f"""{final}, {leads_and_contacts_ctes(schema)}
SELECT (SELECT count(*) FROM written), (SELECT count(*) FROM contacts)
"""
