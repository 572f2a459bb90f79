-- The order of a job's rejected rows' cells as the upload gave them (JobCompleted's
-- rejected_columns): jsonb keeps an object's keys in an order of its own, so rejected.csv
-- read its columns in that order. Jobs completed before this migration have none; their
-- events have none either, so a rebuild gives the same rows.
ALTER TABLE jobs ADD COLUMN rejected_columns jsonb NOT NULL DEFAULT '[]'::jsonb;
