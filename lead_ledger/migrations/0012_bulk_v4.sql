-- Ozonetel bulk V4 (docs/ozonetel.md, "Bulk JSON V4").
-- isDelete refuses a number any lead of the campaign ever held, archived ones included: the
-- archive is searched by dedupe key, as the contacts index is for live leads.
CREATE INDEX lead_archive_dedupe_idx ON lead_archive USING gin (dedupe_keys);
-- A job found by the uploader's own reference (Ozonetel's transactionId, Flexydial's name).
CREATE INDEX jobs_upload_ref_idx ON jobs (account_id, upload_ref) WHERE upload_ref IS NOT NULL;
-- A worker claims no job of a campaign that has one running (service/jobs/lifecycle.py).
CREATE INDEX job_queue_running_idx ON job_queue (campaign_id) WHERE state = 'running';
