-- Immutable, versioned datasets: the output of successful runs and pipeline steps.
CREATE TABLE datasets (
    name        TEXT   NOT NULL,
    version     BIGINT NOT NULL,
    run_id      TEXT,
    path        TEXT   NOT NULL,
    rows_count  BIGINT NOT NULL,
    columns     TEXT   NOT NULL,
    created_at  TEXT   NOT NULL,
    PRIMARY KEY (name, version)
);

CREATE TABLE pipelines (
    name        TEXT PRIMARY KEY,
    definition  TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);

CREATE TABLE pipeline_runs (
    id               TEXT PRIMARY KEY,
    pipeline         TEXT   NOT NULL REFERENCES pipelines (name),
    status           TEXT   NOT NULL,
    reason           TEXT,
    trigger_kind     TEXT   NOT NULL,
    dataset_version  BIGINT,
    created_at       TEXT   NOT NULL,
    finished_at      TEXT
);
CREATE INDEX pipeline_runs_by_pipeline ON pipeline_runs (pipeline, created_at);

CREATE TABLE pipeline_steps (
    pipeline_run_id  TEXT   NOT NULL REFERENCES pipeline_runs (id),
    position         BIGINT NOT NULL,
    kind             TEXT   NOT NULL,
    connector        TEXT   NOT NULL,
    run_id           TEXT,
    status           TEXT   NOT NULL,
    reason           TEXT,
    rows_in          BIGINT,
    rows_out         BIGINT,
    PRIMARY KEY (pipeline_run_id, position)
);

-- What each export of a pipeline last exported successfully: the export-delta baseline.
CREATE TABLE export_snapshots (
    pipeline    TEXT NOT NULL,
    export_key  TEXT NOT NULL,
    path        TEXT NOT NULL,
    run_id      TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    PRIMARY KEY (pipeline, export_key)
);

-- Never two runs of one pipeline at once.
CREATE UNIQUE INDEX pipeline_runs_one_running ON pipeline_runs (pipeline) WHERE status = 'running';
