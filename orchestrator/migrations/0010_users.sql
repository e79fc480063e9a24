-- Console users other than the API token's holder: a name and an Argon2id hash of the
-- password (a PHC string, salt included). The password itself is never stored.
CREATE TABLE users (
    name TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    created_at TEXT NOT NULL
);
