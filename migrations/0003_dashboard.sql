-- Dashboard users, sessions, verdicts and the audit log.
CREATE TABLE users (
    user_id         INTEGER PRIMARY KEY,
    username        TEXT NOT NULL UNIQUE,
    password_hash   TEXT NOT NULL,            -- argon2id PHC string
    role            TEXT NOT NULL CHECK (role IN ('auditor', 'admin')),
    disabled        INTEGER NOT NULL DEFAULT 0,
    failed_logins   INTEGER NOT NULL DEFAULT 0,
    locked_until    INTEGER,                  -- unix ms
    created_at      INTEGER NOT NULL
);

CREATE TABLE sessions (
    token_hash  TEXT PRIMARY KEY,             -- SHA-256 of the cookie token, hex
    user_id     INTEGER NOT NULL REFERENCES users (user_id),
    csrf_token  TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
);

CREATE TABLE verdicts (
    verdict_id     INTEGER PRIMARY KEY,
    transaction_id INTEGER NOT NULL REFERENCES transactions (transaction_id),
    verdict        TEXT NOT NULL CHECK (verdict IN ('confirmed_fraud', 'dismissed', 'needs_field_check')),
    note           TEXT NOT NULL DEFAULT '',
    user_id        INTEGER NOT NULL REFERENCES users (user_id),
    created_at     INTEGER NOT NULL
);
CREATE INDEX idx_verdicts_transaction ON verdicts (transaction_id, created_at);

CREATE TABLE audit_log (
    audit_id   INTEGER PRIMARY KEY,
    at         INTEGER NOT NULL,
    username   TEXT,
    action     TEXT NOT NULL,
    detail     TEXT NOT NULL DEFAULT ''
);
