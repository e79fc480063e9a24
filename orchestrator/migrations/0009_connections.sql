-- Connections: a connector with the option values an operator saved (sealed whole, like a
-- pipeline definition, since they include passwords), the outcome of its last check and
-- what its last discovery found (JSON).
CREATE TABLE connections (
    name TEXT PRIMARY KEY,
    connector TEXT NOT NULL,
    option_values TEXT NOT NULL,
    last_check TEXT,
    discovery TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
