-- The transactions table is the contract between the five programs and the auditors' own SQL.
-- `timestamp` is the event time as text 'YYYY-MM-DD HH:MM:SS' in Indian Standard Time (UTC+05:30).
-- Money is integer paise, never a float. Ground-truth labels (`is_anomaly`, `fraud_type`) are
-- written once by whoever inserts the row and never overwritten; the monitor owns only the last
-- five columns.
CREATE TABLE transactions (
    transaction_id  INTEGER PRIMARY KEY,
    transaction_ref TEXT,
    beneficiary_id  TEXT NOT NULL,
    account_id      TEXT,
    agent_id        TEXT,
    scheme          TEXT NOT NULL,
    amount_paise    INTEGER,
    timestamp       TEXT,
    latitude        REAL,
    longitude       REAL,
    district        TEXT,
    is_anomaly      INTEGER CHECK (is_anomaly IN (0, 1)),
    fraud_type      TEXT,
    inserted_at     INTEGER NOT NULL DEFAULT (CAST(unixepoch('subsec') * 1000 AS INTEGER)),
    status          TEXT CHECK (status IN ('NORMAL', 'ANOMALY', 'ERROR')),
    anomaly_score   REAL,
    reasons         TEXT,
    model_version   TEXT,
    scored_at       INTEGER
);

CREATE INDEX idx_transactions_timestamp ON transactions (timestamp);
CREATE INDEX idx_transactions_beneficiary ON transactions (beneficiary_id, timestamp);
CREATE INDEX idx_transactions_account ON transactions (account_id, timestamp);
CREATE INDEX idx_transactions_agent ON transactions (agent_id, timestamp);
