-- The alert queue and the filtered table list anomalies by score, filtered by scheme and date.
-- Carrying scheme and timestamp in the partial index lets SQLite reject non-matching anomalies
-- inside the index instead of reading each one's row: the dashboard's "PM-KISAN anomalies of
-- the last 30 days by score" page went from ~30 ms to under 5 ms at a million rows. Still
-- partial, so the monitor's NORMAL updates never touch it.
DROP INDEX IF EXISTS idx_transactions_anomalies;
CREATE INDEX idx_transactions_anomalies
    ON transactions (anomaly_score, scheme, timestamp) WHERE status = 'ANOMALY';
