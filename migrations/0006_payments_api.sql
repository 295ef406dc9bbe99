-- The payments API (`POST /api/v1/payments`) and its machine clients.
--
-- payment_refs: one row per transaction_ref, naming the transaction that first carried it. Its
-- primary key is the unique constraint that makes ingest idempotent: a retry of a stored
-- payment finds its original transaction here, and a trigger makes every writer (API, CSV
-- import, an auditor's own SQL) register the refs it inserts, so no second row with a
-- registered ref can be stored. `transactions.transaction_ref` itself cannot be UNIQUE:
-- databases imported before this migration may hold repeated refs, and a migration must never
-- refuse to open an auditor's data; their first row is the one registered.
CREATE TABLE payment_refs (
    transaction_ref TEXT PRIMARY KEY,
    transaction_id  INTEGER NOT NULL
) WITHOUT ROWID;

INSERT INTO payment_refs (transaction_ref, transaction_id)
    SELECT transaction_ref, min(transaction_id) FROM transactions
    WHERE transaction_ref IS NOT NULL GROUP BY transaction_ref;

CREATE TRIGGER transactions_register_ref AFTER INSERT ON transactions
    WHEN NEW.transaction_ref IS NOT NULL
BEGIN
    INSERT INTO payment_refs (transaction_ref, transaction_id)
        VALUES (NEW.transaction_ref, NEW.transaction_id);
END;

-- A deleted payment frees its ref (an operator removing a bad import can load it again).
CREATE TRIGGER transactions_release_ref AFTER DELETE ON transactions
    WHEN OLD.transaction_ref IS NOT NULL
BEGIN
    DELETE FROM payment_refs
        WHERE transaction_ref = OLD.transaction_ref AND transaction_id = OLD.transaction_id;
END;

-- API keys for machine clients, separate from auditors' logins. The key is shown once, when it
-- is created; only the SHA-256 of its secret part is kept. `prefix` is the public part that
-- finds the row (and names the key in lists and logs).
CREATE TABLE api_keys (
    key_id       INTEGER PRIMARY KEY,
    name         TEXT NOT NULL,
    prefix       TEXT NOT NULL UNIQUE,
    secret_hash  TEXT NOT NULL,
    scopes       TEXT NOT NULL,            -- comma-separated: ingest, read, verdicts
    user_id      INTEGER NOT NULL REFERENCES users (user_id),  -- records its verdicts
    created_at   INTEGER NOT NULL,
    revoked_at   INTEGER,
    uses         INTEGER NOT NULL DEFAULT 0,
    last_used_at INTEGER
);
-- A name is taken while its key is live; a revoked key's name may be given to a new one.
CREATE UNIQUE INDEX idx_api_keys_live_name ON api_keys (name) WHERE revoked_at IS NULL;
