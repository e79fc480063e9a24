-- Portable between SQLite and PostgreSQL: TEXT, BIGINT, timestamps as RFC 3339 text (UTC).

-- One row: this installation's id, carried by its containers as the `cde.instance` label.
CREATE TABLE instance (
    id  TEXT PRIMARY KEY
);

CREATE TABLE connector_versions (
    code        TEXT   NOT NULL,
    version     BIGINT NOT NULL,
    manifest    TEXT   NOT NULL,
    digest      TEXT   NOT NULL,
    created_at  TEXT   NOT NULL,
    PRIMARY KEY (code, version)
);

CREATE TABLE runs (
    id                 TEXT   PRIMARY KEY,
    connector_code     TEXT   NOT NULL,
    connector_version  BIGINT NOT NULL,
    status             TEXT   NOT NULL,
    reason             TEXT,
    exit_code          BIGINT,
    -- option values as given to the container (secrets included; never served)
    config             TEXT   NOT NULL,
    -- option values with passwords masked, for answers and output
    options            TEXT   NOT NULL,
    limits             TEXT   NOT NULL,
    run_dir            TEXT   NOT NULL,
    output_rows        BIGINT,
    cancel_requested   BIGINT NOT NULL DEFAULT 0,
    -- bytes of logs.jsonl already copied into run_logs
    log_offset         BIGINT NOT NULL DEFAULT 0,
    created_at         TEXT   NOT NULL,
    started_at         TEXT,
    running_at         TEXT,
    finished_at        TEXT,
    FOREIGN KEY (connector_code, connector_version) REFERENCES connector_versions (code, version)
);
CREATE INDEX runs_by_status ON runs (status, created_at);
CREATE INDEX runs_by_created ON runs (created_at);

CREATE TABLE run_logs (
    run_id   TEXT   NOT NULL REFERENCES runs (id),
    seq      BIGINT NOT NULL,
    at       TEXT   NOT NULL,
    source   TEXT   NOT NULL,
    level    TEXT   NOT NULL,
    message  TEXT   NOT NULL,
    context  TEXT,
    PRIMARY KEY (run_id, seq)
);
