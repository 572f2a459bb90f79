"""Every job kind the app runs, in one place, bound to the key workers the app owns.

Built by the composition root (`create_app`, a worker script) and handed to the job worker, so
which kinds exist is read here rather than pieced together from whatever modules happen to have
been imported; a test builds its own mapping with the kinds it needs.
"""

from __future__ import annotations

from functools import partial

from lead_ledger.service import exports, flexydial_jobs, ozonetel_bulk, ozonetel_v4, ozonetel_v4_job
from lead_ledger.service.export_parallel import ExportWorkers
from lead_ledger.service.jobs import JobKind, JobKinds, insert_leads_kind
from lead_ledger.service.key_workers import KeyWorkers
from lead_ledger.service.replica import Replica


def job_kinds(
    key_workers: KeyWorkers | None = None,
    export_workers: ExportWorkers | None = None,
    replica: Replica | None = None,
) -> JobKinds:
    """The kinds `serve`'s worker runs; the ones that insert large batches compute their phone
    keys in `key_workers` (in process without them), large exports as of a time are folded
    by `export_workers` (in process without them), and exports read `replica` when one is
    configured."""
    return {
        insert_leads_kind.KIND: JobKind(
            partial(insert_leads_kind.insert_leads_job, key_workers=key_workers)
        ),
        flexydial_jobs.INSERT_KIND: JobKind(
            partial(flexydial_jobs.insert_job, key_workers=key_workers)
        ),
        flexydial_jobs.UPDATE_KIND: JobKind(flexydial_jobs.update_job),
        ozonetel_bulk.KIND: JobKind(
            partial(ozonetel_bulk.run_upload, key_workers=key_workers),
            failure_body=ozonetel_bulk.failure_body,
            locks_account=ozonetel_bulk.starts_campaign,
        ),
        exports.KIND: JobKind(
            exports.run_export,
            prepare=partial(exports.prepare_export, workers=export_workers, replica=replica),
        ),
        ozonetel_v4.KIND: JobKind(
            partial(ozonetel_v4_job.run_bulk_v4, key_workers=key_workers),
            failure_body=ozonetel_v4_job.failure_body,
            locks_account=ozonetel_bulk.starts_campaign,
        ),
    }
