"""AppKeys of what the app owns for its lifetime: the phone key workers, and the job kinds
bound to them. `create_app` creates both when the app starts and closes the workers when it
stops (docs/decisions.md, "The app owns its job kinds and key workers")."""

from __future__ import annotations

from typing import Final

from aiohttp import web

from lead_ledger.service.jobs import JobKinds
from lead_ledger.service.key_workers import KeyWorkers

KEY_WORKERS: Final = web.AppKey("key_workers", KeyWorkers)
# What the app's job worker runs (service/job_kinds.py), bound to KEY_WORKERS.
JOB_KINDS: Final[web.AppKey[JobKinds]] = web.AppKey("job_kinds")
