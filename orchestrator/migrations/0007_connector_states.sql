-- Incremental state (cursors, schedule windows) a successful run put through the Container
-- API, kept for the next run with the same key: a connector with the same options, or a
-- pipeline step.
CREATE TABLE connector_states (
    key TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    run_id TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
-- The key a run reads its state from and commits it to.
ALTER TABLE runs ADD COLUMN state_key TEXT;
-- Retries: which attempt a run is (1-based), the retry policy it was submitted with (JSON,
-- like limits), the first attempt's id on a later one, the attempt queued after it failed
-- as transient, and when a queued retry may start.
ALTER TABLE runs ADD COLUMN attempt BIGINT NOT NULL DEFAULT 1;
ALTER TABLE runs ADD COLUMN retry TEXT NOT NULL DEFAULT '{}';
ALTER TABLE runs ADD COLUMN retry_of TEXT;
ALTER TABLE runs ADD COLUMN next_attempt TEXT;
ALTER TABLE runs ADD COLUMN not_before TEXT;
