"""Application services: lock, load, decide, append and project, in one transaction.

Layering: api -> service -> projections -> ledger. Handlers in `api/` decode a request and call
one function here; these functions do the I/O the pure domain in `ledger/` must not.
"""
