-- Cases: anomalies grouped into incidents, assignment, and verdict revision.
--
-- An incident gathers the alerts that one investigation should settle together: the same
-- beneficiary or account within 7 days, or the same counter (agent) within 2 hours. The monitor
-- links each batch's anomalies in the transaction that scores them (core::incidents), so an
-- alert never exists without its incident; anomalies scored before this migration are linked
-- once, by the first program that links after it (`linked_up_to` starts at 0).
CREATE TABLE incidents (
    incident_id  INTEGER PRIMARY KEY,
    first_time   INTEGER NOT NULL,          -- event time of its first alert, unix seconds
    last_time    INTEGER NOT NULL,          -- event time of its latest alert
    alerts       INTEGER NOT NULL,
    max_score    REAL NOT NULL,
    total_paise  INTEGER NOT NULL,
    assignee_id  INTEGER REFERENCES users (user_id),
    assigned_at  INTEGER                    -- unix ms
);
CREATE INDEX idx_incidents_score ON incidents (max_score);
CREATE INDEX idx_incidents_assignee ON incidents (assignee_id);

-- One row per linked alert. `verdict` is the alert's latest verdict (NULL: none), kept by the
-- triggers below from any writer, so the queue filters on it without a subquery per alert.
CREATE TABLE incident_alerts (
    transaction_id INTEGER PRIMARY KEY,
    incident_id    INTEGER NOT NULL REFERENCES incidents (incident_id),
    verdict        TEXT
);
CREATE INDEX idx_incident_alerts_incident ON incident_alerts (incident_id, verdict);
CREATE INDEX idx_incident_alerts_verdict ON incident_alerts (verdict);

-- What an incident is known by: each beneficiary, account and agent of its alerts, with the
-- newest event time seen for it. A new anomaly joins a recent incident sharing one of these.
CREATE TABLE incident_keys (
    kind        TEXT NOT NULL CHECK (kind IN ('beneficiary', 'account', 'agent')),
    value       TEXT NOT NULL,
    incident_id INTEGER NOT NULL,
    last_time   INTEGER NOT NULL,
    PRIMARY KEY (kind, value, incident_id)
) WITHOUT ROWID;
CREATE INDEX idx_incident_keys_recent ON incident_keys (kind, value, last_time);
CREATE INDEX idx_incident_keys_incident ON incident_keys (incident_id, kind);

-- The transaction id up to which anomalies have been linked (never above the monitor's mark).
CREATE TABLE incident_state (
    singleton     INTEGER PRIMARY KEY CHECK (singleton = 1),
    linked_up_to  INTEGER NOT NULL
);
INSERT INTO incident_state (singleton, linked_up_to) VALUES (1, 0);

-- A verdict that replaces a final one (confirmed fraud or dismissed) names it and says why.
ALTER TABLE verdicts ADD COLUMN revises INTEGER REFERENCES verdicts (verdict_id);
ALTER TABLE verdicts ADD COLUMN reason TEXT NOT NULL DEFAULT '';

CREATE TRIGGER verdicts_latest_on_incident AFTER INSERT ON verdicts
BEGIN
    UPDATE incident_alerts SET verdict = (
        SELECT v.verdict FROM verdicts v WHERE v.transaction_id = NEW.transaction_id
        ORDER BY v.created_at DESC, v.verdict_id DESC LIMIT 1
    ) WHERE transaction_id = NEW.transaction_id;
END;
