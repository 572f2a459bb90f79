"""Every projection, and the inline apply that runs in the writer's transaction."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from typing import Final

from lead_ledger.ledger.connection import Connection
from lead_ledger.ledger.events import LeadInserted
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
from lead_ledger.projections.dnc import DncProjection
from lead_ledger.projections.fresh_inserts import WRITES, apply_fresh_inserts, split_fresh_inserts
from lead_ledger.projections.jobs import JobsProjection
from lead_ledger.projections.lead_dnc import LeadDncProjection
from lead_ledger.projections.leads import ArchiveProjection, ContactsProjection, LeadsProjection
from lead_ledger.projections.subscriptions import SubscriptionsProjection

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
    DncProjection(),
    LeadDncProjection(),
    SubscriptionsProjection(),
)
BY_NAME: Final = {p.name: p for p in PROJECTIONS}
if {p.name for p in PROJECTIONS if LeadInserted in p.handles} != WRITES:
    raise RuntimeError("fresh_inserts.py must write every view that handles LeadInserted")


async def apply_inline(
    conn: Connection, pairs: Sequence[Pair], *, projected: Collection[uuid.UUID] = ()
) -> None:
    """Update every view in the writer's transaction, one set-based pass each, from the events
    as written (their personal data in the clear) paired with their records.

    New leads are first projected by the server (fresh_inserts.py); the rest is folded, so
    updates of those leads in the same write find their rows. `projected`: the event ids of new
    leads whose rows the append's own statement wrote (fresh_inserts.along_append).
    """
    if not pairs:
        return
    fresh, pairs = split_fresh_inserts(pairs)
    if projected:
        done = set(projected)
        if not done <= {recorded.event_id for recorded, _ in fresh}:
            raise ValueError("projected along the append: events that are not new leads")
        fresh = [pair for pair in fresh if pair[0].event_id not in done]
    if fresh:
        await apply_fresh_inserts(conn, fresh)
    if not pairs:
        return
    for projection in PROJECTIONS:
        await projection.apply_live(conn, pairs)
