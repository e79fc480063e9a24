-- Webhook listeners: each one's secret (sealed like a pipeline definition), and what each
-- pipeline run read of a listener's event log. A listener's offset is the end of the read
-- of its pipeline's last successful run, so it moves exactly when a run succeeds.
CREATE TABLE listener_secrets (
    pipeline TEXT NOT NULL,
    listener TEXT NOT NULL,
    secret TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (pipeline, listener)
);
CREATE TABLE listener_reads (
    pipeline_run_id TEXT NOT NULL,
    pipeline TEXT NOT NULL,
    listener TEXT NOT NULL,
    start_offset BIGINT NOT NULL,
    end_offset BIGINT NOT NULL,
    events BIGINT NOT NULL,
    PRIMARY KEY (pipeline_run_id, listener)
);
CREATE INDEX listener_reads_by_listener ON listener_reads (pipeline, listener);
