-- Ended runs keep no secret: their configuration becomes their masked option values
-- (what cde writes at the end of a run from now on).
UPDATE runs SET config = options
WHERE status NOT IN ('queued', 'starting', 'running') AND config <> options;

-- When retention removed a run's directory and logs, or a pipeline run's work directory.
ALTER TABLE runs ADD COLUMN pruned_at TEXT;
ALTER TABLE pipeline_runs ADD COLUMN pruned_at TEXT;
CREATE INDEX runs_by_connector ON runs (connector_code, finished_at);
