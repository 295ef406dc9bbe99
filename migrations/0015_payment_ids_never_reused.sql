-- Version 15: a payment id is never handed out twice. Without AUTOINCREMENT, SQLite gives a new
-- row the largest id in the table plus one, so after an operator deletes the newest payments
-- (a bad import taken out) the next ones reuse their ids: ids at or below the monitor's mark,
-- which the monitor has passed and never scores. AUTOINCREMENT remembers the largest id ever
-- used, in `sqlite_sequence`.
--
-- SQLite cannot add AUTOINCREMENT to a table, so the table is rebuilt with its rows and ids
-- (a copy: seconds at a million rows, once), the way SQLite's documentation says to change a
-- table: a new table, the rows copied, the old one dropped and the new one renamed, with
-- foreign keys off (the migrations run with them off, and check before committing that no
-- reference was broken). Its indexes and triggers go with the old table, and its two views
-- would stop the rename; all are made again as the earlier migrations left them.
DROP VIEW flagged;
DROP VIEW anomalies;

CREATE TABLE transactions_0015 (
    transaction_id  INTEGER PRIMARY KEY AUTOINCREMENT,
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

-- In id order, so that the copy appends to the new table's b-tree.
INSERT INTO transactions_0015 SELECT * FROM transactions ORDER BY transaction_id;
DROP TABLE transactions;
ALTER TABLE transactions_0015 RENAME TO transactions;

CREATE VIEW flagged AS SELECT * FROM transactions WHERE status <> 'NORMAL';
CREATE VIEW anomalies AS SELECT * FROM transactions WHERE status = 'ANOMALY';

CREATE INDEX idx_transactions_timestamp ON transactions (timestamp);
CREATE INDEX idx_transactions_beneficiary ON transactions (beneficiary_id, timestamp);
CREATE INDEX idx_transactions_account ON transactions (account_id, timestamp);
CREATE INDEX idx_transactions_agent ON transactions (agent_id, timestamp);
CREATE INDEX idx_transactions_anomalies
    ON transactions (anomaly_score, scheme, timestamp) WHERE status = 'ANOMALY';
CREATE INDEX idx_transactions_ref ON transactions (transaction_ref);

CREATE TRIGGER transactions_register_ref AFTER INSERT ON transactions
    WHEN NEW.transaction_ref IS NOT NULL
BEGIN
    INSERT INTO payment_refs (transaction_ref, transaction_id)
        VALUES (NEW.transaction_ref, NEW.transaction_id);
END;

CREATE TRIGGER transactions_release_ref AFTER DELETE ON transactions
    WHEN OLD.transaction_ref IS NOT NULL
BEGIN
    DELETE FROM payment_refs
        WHERE transaction_ref = OLD.transaction_ref AND transaction_id = OLD.transaction_id;
END;

-- Ids already used by rows deleted before this version are known only where something kept
-- them: the monitor's mark, the incidents' links, verdicts and registered refs. The next id is
-- past all of them.
DELETE FROM sqlite_sequence WHERE name = 'transactions';
INSERT INTO sqlite_sequence (name, seq) SELECT 'transactions', max(
    (SELECT coalesce(max(transaction_id), 0) FROM transactions),
    (SELECT coalesce(max(high_water_mark), 0) FROM monitor_state),
    (SELECT coalesce(max(linked_up_to), 0) FROM incident_state),
    (SELECT coalesce(max(transaction_id), 0) FROM verdicts),
    (SELECT coalesce(max(transaction_id), 0) FROM payment_refs)
);
