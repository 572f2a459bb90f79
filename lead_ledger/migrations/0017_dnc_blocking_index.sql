-- The entries that can block a large write's campaigns, read once as it takes its locks
-- (service/dnc.py, SELECT_CAMPAIGNS_BLOCKING): account-wide ones and its campaigns', Active.
-- `(account_id, digest)` (0009) made that read scan every entry of the account, those of other
-- campaigns and the inactive ones too, on every large write; this index reads the ones asked
-- for (`campaign_id IS NULL` and `= ANY(...)`), and stops at the read's limit.
CREATE INDEX dnc_blocking_idx ON dnc (account_id, campaign_id) WHERE status = 'Active';
