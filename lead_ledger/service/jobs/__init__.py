"""Bulk jobs: a job's life from submit to done (`lifecycle`), the handler contract and the
registry of kinds (`kinds`), the API's view of a job (`views`), and the built-in kind
`insert_leads` (`insert_leads_kind`). The names dialects use are re-exported here.

Which kinds a worker runs is decided where the app is composed (`service.job_kinds`), not here:
this package registers nothing.
"""

from lead_ledger.service.jobs.kinds import (
    FailureBody,
    Job,
    JobHandler,
    JobKind,
    JobKinds,
    JobOutcome,
)
from lead_ledger.service.jobs.lifecycle import (
    CALLBACK_CHANNEL,
    CHANNEL,
    MAX_ATTEMPTS,
    RETRY_SECONDS,
    Claim,
    after_error,
    claim_next,
    let_go,
    load_job,
    release,
    run_job,
    submit_job,
)
from lead_ledger.service.jobs.rejected_csv import rejected_csv
from lead_ledger.service.jobs.views import (
    JobPage,
    JobsQuery,
    JobSummary,
    JobView,
    get_job,
    list_jobs,
    rejected_columns,
    rejected_rows,
)
from lead_ledger.service.reads import UnknownCampaignError

__all__ = [
    "CALLBACK_CHANNEL",
    "CHANNEL",
    "MAX_ATTEMPTS",
    "RETRY_SECONDS",
    "Claim",
    "FailureBody",
    "Job",
    "JobHandler",
    "JobKind",
    "JobKinds",
    "JobOutcome",
    "JobPage",
    "JobSummary",
    "JobView",
    "JobsQuery",
    "UnknownCampaignError",
    "after_error",
    "claim_next",
    "get_job",
    "let_go",
    "list_jobs",
    "load_job",
    "rejected_columns",
    "rejected_csv",
    "rejected_rows",
    "release",
    "run_job",
    "submit_job",
]
