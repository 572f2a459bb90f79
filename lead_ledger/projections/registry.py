"""Every projection, and the inline apply that runs in the writer's transaction."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from lead_ledger.ledger.connection import Connection
from lead_ledger.ledger.envelope import RecordedEvent
from lead_ledger.ledger.events import LeadInserted, decode_event
from lead_ledger.projections.base import Pair, Projection
from lead_ledger.projections.config import (
    AccountsProjection,
    AgentsProjection,
    CampaignsProjection,
    CredentialsProjection,
    SettingsProjection,
    SkillsProjection,
    UsersProjection,
)
from lead_ledger.projections.fresh_inserts import WRITES, apply_fresh_inserts, split_fresh_inserts
from lead_ledger.projections.jobs import JobsProjection
from lead_ledger.projections.leads import ArchiveProjection, ContactsProjection, LeadsProjection

PROJECTIONS: Final[tuple[Projection, ...]] = (
    AccountsProjection(),
    SettingsProjection(),
    CredentialsProjection(),
    UsersProjection(),
    AgentsProjection(),
    SkillsProjection(),
    CampaignsProjection(),
    LeadsProjection(),
    ArchiveProjection(),
    ContactsProjection(),
    JobsProjection(),
)
BY_NAME: Final = {p.name: p for p in PROJECTIONS}
if {p.name for p in PROJECTIONS if LeadInserted in p.handles} != WRITES:
    raise RuntimeError("fresh_inserts.py must write every view that handles LeadInserted")


def decode_pairs(events: Sequence[RecordedEvent]) -> list[Pair]:
    return [(recorded, decode_event(recorded)) for recorded in events]


async def apply_inline(conn: Connection, events: Sequence[RecordedEvent]) -> None:
    """Update every view in the writer's transaction: decode once, one set-based pass each.

    A large batch of new leads is first projected by the server (fresh_inserts.py); the rest is
    decoded and folded, so updates of those leads in the same write find their rows.
    """
    if not events:
        return
    fresh, events = split_fresh_inserts(events)
    if fresh:
        await apply_fresh_inserts(conn, fresh)
    if not events:
        return
    pairs = decode_pairs(events)
    for projection in PROJECTIONS:
        await projection.apply_live(conn, pairs)
