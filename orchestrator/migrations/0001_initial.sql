CREATE TABLE connector_versions (
    code        TEXT    NOT NULL,
    version     INTEGER NOT NULL,
    manifest    TEXT    NOT NULL,
    digest      TEXT    NOT NULL,
    created_at  TEXT    NOT NULL,
    PRIMARY KEY (code, version)
);

CREATE TABLE runs (
    id                 TEXT    PRIMARY KEY,
    connector_code     TEXT    NOT NULL,
    connector_version  INTEGER NOT NULL,
    status             TEXT    NOT NULL,
    reason             TEXT,
    exit_code          INTEGER,
    config             TEXT    NOT NULL,
    run_dir            TEXT    NOT NULL,
    output_rows        INTEGER,
    created_at         TEXT    NOT NULL,
    started_at         TEXT,
    finished_at        TEXT,
    FOREIGN KEY (connector_code, connector_version) REFERENCES connector_versions (code, version)
);
CREATE INDEX runs_by_created ON runs (created_at);

CREATE TABLE run_logs (
    run_id   TEXT    NOT NULL REFERENCES runs (id),
    seq      INTEGER NOT NULL,
    at       TEXT    NOT NULL,
    source   TEXT    NOT NULL,
    level    TEXT    NOT NULL,
    message  TEXT    NOT NULL,
    context  TEXT,
    PRIMARY KEY (run_id, seq)
);
