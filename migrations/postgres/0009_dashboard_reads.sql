-- Version 9: what the dashboard's reads need on PostgreSQL.

-- Scores' reasons are JSON (the monitor writes nothing else), and PostgreSQL now says so: a
-- reason that is not JSON is refused when it is written, not met by every reader. (SQLite
-- readers check with json_valid instead; PostgreSQL 15 has no cheap check: a cast inside an
-- exception block costs a subtransaction per row, which made a page of 50 alerts 2 ms slower.)
ALTER TABLE transaction_scores ADD CONSTRAINT transaction_scores_reasons_are_json
    CHECK (reasons IS NULL OR CAST(reasons AS jsonb) IS NOT NULL);

-- A field of a JSON text, as text (NULL when it has no such field). The dashboard reads a row's
-- category and first reason out of `reasons` this way (core::sql::Engine::json_text). A plain
-- SQL function: the planner inlines it.
CREATE FUNCTION aegis_json_text(document text, path text[]) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CAST(document AS jsonb) #>> path
$$;

-- The alerts by score, in both of the orders the dashboard sorts them in with SQLite's NULL
-- order (NULLs first going up, last going down): an index kept DESC NULLS LAST gives the one
-- read forwards and the other read backwards. The baseline's ASC index gives neither, so a
-- page of alerts by score had to sort every alert.
DROP INDEX idx_transactions_anomalies;
CREATE INDEX idx_transactions_anomalies ON transaction_scores (anomaly_score DESC NULLS LAST)
    WHERE status = 'ANOMALY';

-- The payments of one scheme in a date range (the filtered table, the export, the queue's
-- scheme filter). SQLite answers these from its partial index of anomalies, which carries
-- scheme and timestamp (0004); here the anomaly's status lives in another table, so the
-- payments side needs its own way in: 8.4 ms -> 0.7 ms for a page of one scheme's anomalies
-- in a month, at a million rows. Bulk loads drop and rebuild it with the others
-- (core::pg::TRANSACTION_INDEXES).
CREATE INDEX idx_transactions_scheme ON transaction_events (scheme, timestamp);
