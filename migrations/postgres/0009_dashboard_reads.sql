-- Version 9: what the dashboard's reads need on PostgreSQL.

-- A field of a JSON text, as text; NULL when the text is NULL, not JSON, or has no such field.
-- The dashboard reads a row's category and first reason out of `reasons` this way
-- (core::sql::Engine::json_text). PostgreSQL 15 has no `IS JSON`, and a cast of text that is
-- not JSON fails the whole statement, so the cast is caught here. Texts that cannot be a JSON
-- object (an imported note, an error message) never enter the exception block, which costs a
-- subtransaction. It is not parallel safe: a parallel query cannot start subtransactions, so
-- statements that call it are planned without parallel workers.
CREATE FUNCTION aegis_json_text(document text, path text[]) RETURNS text
LANGUAGE plpgsql IMMUTABLE PARALLEL UNSAFE AS $$
BEGIN
    IF document IS NULL OR left(ltrim(document), 1) <> '{' THEN
        RETURN NULL;
    END IF;
    BEGIN
        RETURN document::jsonb #>> path;
    EXCEPTION WHEN invalid_text_representation THEN
        RETURN NULL;
    END;
END $$;

-- The alerts by score, in both of the orders the dashboard sorts them in with SQLite's NULL
-- order (NULLs first going up, last going down): an index kept DESC NULLS LAST gives the one
-- read forwards and the other read backwards. The baseline's ASC index gives neither, so a
-- page of alerts by score had to sort every alert.
DROP INDEX idx_transactions_anomalies;
CREATE INDEX idx_transactions_anomalies ON transaction_scores (anomaly_score DESC NULLS LAST)
    WHERE status = 'ANOMALY';
