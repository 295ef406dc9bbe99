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
    -- Its alerts by latest verdict, kept by the triggers below: the queue's state filter
    -- reads these instead of visiting every alert.
    unreviewed   INTEGER NOT NULL DEFAULT 0,
    field_checks INTEGER NOT NULL DEFAULT 0,
    confirmed    INTEGER NOT NULL DEFAULT 0,
    dismissed    INTEGER NOT NULL DEFAULT 0,
    -- Its highest-scoring alert (the first of equals), and how many distinct beneficiaries,
    -- accounts and agents it involves: what the queue shows of it, without visiting its alerts.
    lead_id       INTEGER NOT NULL,
    beneficiaries INTEGER NOT NULL DEFAULT 0,
    accounts      INTEGER NOT NULL DEFAULT 0,
    agents        INTEGER NOT NULL DEFAULT 0,
    assignee_id  INTEGER REFERENCES users (user_id),
    assigned_at  INTEGER                    -- unix ms
);
CREATE INDEX idx_incidents_score ON incidents (max_score);
CREATE INDEX idx_incidents_assignee ON incidents (assignee_id);

-- One row per linked alert. `verdict` is the alert's latest verdict (NULL: none), kept by the
-- triggers below from any writer. The other columns copy the alert's transaction (written
-- once, when it is linked; a scored row never changes), so the queue's filters scan this
-- small table instead of looking up each alert's row among millions.
CREATE TABLE incident_alerts (
    transaction_id INTEGER PRIMARY KEY,
    incident_id    INTEGER NOT NULL REFERENCES incidents (incident_id),
    verdict        TEXT,
    timestamp      TEXT,
    scheme         TEXT,
    district       TEXT,
    amount_paise   INTEGER,
    category       TEXT,
    beneficiary_id TEXT,
    account_id     TEXT,
    agent_id       TEXT
);
CREATE INDEX idx_incident_alerts_incident ON incident_alerts (incident_id);
-- No index on `verdict`: nearly every alert has none, so the queue scans this table (fast:
-- one row per alert) rather than make 20,000 index lookups for "open".

-- What an incident is known by: each beneficiary, account and agent of its alerts, with the
-- newest event time seen for it. A new anomaly joins a recent incident sharing one of these.
CREATE TABLE incident_keys (
    kind        TEXT NOT NULL CHECK (kind IN ('beneficiary', 'account', 'agent')),
    value       TEXT NOT NULL,
    incident_id INTEGER NOT NULL,
    last_time   INTEGER NOT NULL,
    PRIMARY KEY (kind, value, incident_id)
) WITHOUT ROWID;
-- No secondary index: linking looks keys up by (kind, value), the primary key's prefix, and
-- every index here is paid for on each anomaly the monitor scores.

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

CREATE TRIGGER incident_alerts_counted AFTER INSERT ON incident_alerts
BEGIN
    UPDATE incidents SET
        unreviewed = unreviewed + (NEW.verdict IS NULL),
        field_checks = field_checks + (NEW.verdict IS 'needs_field_check'),
        confirmed = confirmed + (NEW.verdict IS 'confirmed_fraud'),
        dismissed = dismissed + (NEW.verdict IS 'dismissed')
    WHERE incident_id = NEW.incident_id;
END;

CREATE TRIGGER incident_alerts_recounted AFTER UPDATE OF verdict ON incident_alerts
BEGIN
    UPDATE incidents SET
        unreviewed = unreviewed - (OLD.verdict IS NULL) + (NEW.verdict IS NULL),
        field_checks = field_checks - (OLD.verdict IS 'needs_field_check') + (NEW.verdict IS 'needs_field_check'),
        confirmed = confirmed - (OLD.verdict IS 'confirmed_fraud') + (NEW.verdict IS 'confirmed_fraud'),
        dismissed = dismissed - (OLD.verdict IS 'dismissed') + (NEW.verdict IS 'dismissed')
    WHERE incident_id = NEW.incident_id;
END;
