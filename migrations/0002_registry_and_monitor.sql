-- The beneficiary registry written by `generate` (and read by `simulate`, which pays the same
-- population), and the monitor's durable cursor.
CREATE TABLE beneficiaries (
    beneficiary_id TEXT PRIMARY KEY,
    account_id     TEXT,
    agent_id       TEXT,
    district       TEXT,
    state          TEXT,
    home_latitude  REAL,
    home_longitude REAL,
    schemes        TEXT NOT NULL  -- JSON array of scheme codes the beneficiary is enrolled in
);

CREATE TABLE monitor_state (
    id              INTEGER PRIMARY KEY CHECK (id = 1),
    high_water_mark INTEGER NOT NULL,
    model_version   TEXT,
    updated_at      INTEGER NOT NULL
);

-- The alert queue reads anomalies by score. A partial index: the monitor's updates of the 98 %
-- of rows that are NORMAL do not touch it (a full (status, score) index cost the monitor a
-- third of its throughput).
CREATE INDEX idx_transactions_anomalies ON transactions (anomaly_score) WHERE status = 'ANOMALY';
