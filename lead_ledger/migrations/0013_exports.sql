-- Exports (docs/exports.md): a job of kind `export` whose output is a file kept in PostgreSQL,
-- so that any `serve` process sharing the database can stream it.

-- What a job was asked for, and the file it wrote (JobCompleted.output), in the jobs view.
ALTER TABLE jobs ADD COLUMN options jsonb NOT NULL DEFAULT '{}';
ALTER TABLE jobs ADD COLUMN output jsonb;
ALTER TABLE jobs ADD COLUMN output_removed_at timestamptz;
-- Jobs submitted before this migration: their options as their JobSubmitted holds them (job
-- events are never sealed), so that the view equals a rebuild of it.
UPDATE jobs j SET options = e.data->'options'
FROM events e
WHERE e.stream_id = 'job-' || j.job_id AND e.stream_version = 1
  AND jsonb_typeof(e.data->'options') = 'object';

-- The file, in chunks written as the export runs and read back one at a time: never whole in
-- memory. EXTERNAL: the chunks are stored as they are, not compressed again by TOAST.
CREATE TABLE job_output_chunks (
    job_id  bigint NOT NULL,
    seq     integer NOT NULL,
    data    bytea NOT NULL,
    PRIMARY KEY (job_id, seq)
);
ALTER TABLE job_output_chunks ALTER COLUMN data SET STORAGE EXTERNAL;
-- The retention sweep's work list: outputs not removed yet, oldest first.
CREATE INDEX jobs_output_idx ON jobs (completed_at)
    WHERE output IS NOT NULL AND output_removed_at IS NULL;
