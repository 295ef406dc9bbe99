-- An appending import (`generate --from-csv FILE --append`) skips payments whose
-- transaction_ref is already stored; this index answers that per row. Not UNIQUE: databases
-- imported before this migration may hold repeated refs, and a migration must never refuse to
-- open an auditor's data.
CREATE INDEX IF NOT EXISTS idx_transactions_ref ON transactions (transaction_ref);
