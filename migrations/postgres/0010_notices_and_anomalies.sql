-- Notices of changes, so that a dashboard knows when its cached answers are out of date
-- without asking the server at every request (each question is a round trip; the dashboard
-- listens instead). Payments already notify `aegis_payments` (0008). Here `aegis_changes`
-- carries what changed:
--   'data'     the monitor's mark moved, a verdict was written or an incident changed (what
--              the cached overview aggregates and case queue pages show besides the payments);
--   'accounts' a user or a session changed (logins are looked up again after it).
-- Statement triggers: one notice per statement, and PostgreSQL folds repeats within a
-- transaction and sends them only when it commits.
CREATE FUNCTION aegis_notify_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('aegis_changes', TG_ARGV[0]);
    RETURN NULL;
END $$;
CREATE TRIGGER monitor_state_notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON monitor_state
    FOR EACH STATEMENT EXECUTE FUNCTION aegis_notify_change('data');
CREATE TRIGGER verdicts_notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON verdicts
    FOR EACH STATEMENT EXECUTE FUNCTION aegis_notify_change('data');
CREATE TRIGGER incidents_notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON incidents
    FOR EACH STATEMENT EXECUTE FUNCTION aegis_notify_change('data');
CREATE TRIGGER incident_alerts_notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON incident_alerts
    FOR EACH STATEMENT EXECUTE FUNCTION aegis_notify_change('data');
CREATE TRIGGER users_notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON users
    FOR EACH STATEMENT EXECUTE FUNCTION aegis_notify_change('accounts');
CREATE TRIGGER sessions_notify AFTER UPDATE OR DELETE OR TRUNCATE ON sessions
    FOR EACH STATEMENT EXECUTE FUNCTION aegis_notify_change('accounts');

-- Each score carries its payment's event time, so that the anomalies (and scoring errors)
-- of a period are found from the scores, by an index of the few scores that are not NORMAL,
-- each joined to its payment in its own month's partition, instead of joining every payment
-- of the period to its score (a month of a live feed: 100,000 lookups for each refresh of
-- the overview's figures and charts). The monitor writes it with each score; scores written
-- before this version get theirs here. (A score whose payment's month was detached keeps
-- none: it has no payment to join to anyway.)
ALTER TABLE transaction_scores ADD COLUMN timestamp TEXT COLLATE "C";
UPDATE transaction_scores s SET timestamp = e.timestamp
    FROM transaction_events e WHERE e.transaction_id = s.transaction_id;
CREATE INDEX idx_scores_flagged_by_time ON transaction_scores (timestamp)
    WHERE status <> 'NORMAL';
-- The scored payments that are not NORMAL, and the anomalies among them, with the columns of
-- `transactions`: a statement written once over `flagged` or `anomalies` reads the index
-- above here (and SQLite's partial index of anomalies there).
CREATE VIEW flagged AS
SELECT e.transaction_id, e.transaction_ref, e.beneficiary_id, e.account_id, e.agent_id,
       e.scheme, e.amount_paise, s.timestamp, e.latitude, e.longitude, e.district,
       e.is_anomaly, e.fraud_type, e.inserted_at,
       s.status, s.anomaly_score, s.reasons, s.model_version, s.scored_at
FROM transaction_scores s
JOIN transaction_events e ON e.transaction_id = s.transaction_id AND e.timestamp = s.timestamp
WHERE s.status <> 'NORMAL';
CREATE VIEW anomalies AS SELECT * FROM flagged WHERE status = 'ANOMALY';
