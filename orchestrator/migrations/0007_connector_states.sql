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
