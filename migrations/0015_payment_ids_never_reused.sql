-- Version 15: a payment id is never handed out twice. Without AUTOINCREMENT, SQLite gives a new
-- row the largest id in the table plus one, so after an operator deletes the newest payments
-- (a bad import taken out) the next ones reuse their ids: ids at or below the monitor's mark,
-- which the monitor has passed and never scores. AUTOINCREMENT remembers the largest id ever
-- used, in `sqlite_sequence`.
--
-- AUTOINCREMENT changes how new ids are chosen, not how rows are stored, so the table's
-- definition is edited in place, the way SQLite's documentation describes for changes that
-- leave the stored content as it is (lang_altertable.html, "making other kinds of table
-- schema changes"): instant at any size, and everything an auditor added to the table (a
-- column, an index, a trigger, a view over it) stays as it was. A table whose definition
-- does not read as Aegis wrote it is left alone. The migration runner then moves the schema
-- cookie, so that every connection reads the new definition. `sqlite_sequence` exists once
-- any table has used AUTOINCREMENT; a table made and dropped at once makes it.
CREATE TABLE aegis_sequence_maker (id INTEGER PRIMARY KEY AUTOINCREMENT);
DROP TABLE aegis_sequence_maker;

PRAGMA writable_schema = ON;
UPDATE sqlite_master
    SET sql = replace(sql, 'transaction_id  INTEGER PRIMARY KEY,',
                           'transaction_id  INTEGER PRIMARY KEY AUTOINCREMENT,')
    WHERE type = 'table' AND name = 'transactions'
      AND instr(sql, 'transaction_id  INTEGER PRIMARY KEY,') > 0;
PRAGMA writable_schema = OFF;

-- Ids already used by rows deleted before this version are known only where something kept
-- them: the monitor's mark, the incidents' links, verdicts and registered refs. The next id is
-- past all of them.
INSERT INTO sqlite_sequence (name, seq) SELECT 'transactions', max(
    (SELECT coalesce(max(transaction_id), 0) FROM transactions),
    (SELECT coalesce(max(high_water_mark), 0) FROM monitor_state),
    (SELECT coalesce(max(linked_up_to), 0) FROM incident_state),
    (SELECT coalesce(max(transaction_id), 0) FROM verdicts),
    (SELECT coalesce(max(transaction_id), 0) FROM payment_refs)
);

-- Deleting payments changes what the dashboard's cached figures counted, but none of what it
-- reads to know the data changed (the newest id, the monitor's mark, the newest verdict):
-- after an operator took out a bad import, the overview went on counting it until the next
-- payment arrived. A counter of deletions, moved by every delete, is read with them.
CREATE TABLE payment_deletions (
    singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
    deleted   INTEGER NOT NULL
);
INSERT INTO payment_deletions (singleton, deleted) VALUES (1, 0);
CREATE TRIGGER transactions_count_deletions AFTER DELETE ON transactions
BEGIN
    UPDATE payment_deletions SET deleted = deleted + 1;
END;

-- A deleted payment leaves the case queue: its alert goes, and its incident is counted again
-- from the alerts it keeps (alerts, verdicts, amount, people, highest score and lead alert,
-- time span), or goes too when none is left. Before, an operator taking out a bad import the
-- monitor had already alerted on left incidents counting payments nobody could open. Counted
-- before the alert goes (the trigger has no variables to remember its incident by), then the
-- alert, then an incident left with none, with its keys (found through a partial index of the
-- incidents without alerts, which is empty but for that moment).
CREATE INDEX idx_incidents_empty ON incidents (incident_id) WHERE alerts = 0;
CREATE TRIGGER transactions_leave_incident BEFORE DELETE ON transactions
    WHEN EXISTS (SELECT 1 FROM incident_alerts WHERE transaction_id = OLD.transaction_id)
BEGIN
    UPDATE incidents SET
        alerts = (SELECT count(*) FROM incident_alerts a
                  WHERE a.incident_id = incidents.incident_id AND a.transaction_id <> OLD.transaction_id),
        unreviewed = (SELECT count(*) FROM incident_alerts a
                      WHERE a.incident_id = incidents.incident_id AND a.transaction_id <> OLD.transaction_id
                        AND a.verdict IS NULL),
        field_checks = (SELECT count(*) FROM incident_alerts a
                        WHERE a.incident_id = incidents.incident_id AND a.transaction_id <> OLD.transaction_id
                          AND a.verdict = 'needs_field_check'),
        confirmed = (SELECT count(*) FROM incident_alerts a
                     WHERE a.incident_id = incidents.incident_id AND a.transaction_id <> OLD.transaction_id
                       AND a.verdict = 'confirmed_fraud'),
        dismissed = (SELECT count(*) FROM incident_alerts a
                     WHERE a.incident_id = incidents.incident_id AND a.transaction_id <> OLD.transaction_id
                       AND a.verdict = 'dismissed'),
        total_paise = (SELECT coalesce(sum(a.amount_paise), 0) FROM incident_alerts a
                       WHERE a.incident_id = incidents.incident_id AND a.transaction_id <> OLD.transaction_id),
        beneficiaries = (SELECT count(DISTINCT a.beneficiary_id) FROM incident_alerts a
                         WHERE a.incident_id = incidents.incident_id AND a.transaction_id <> OLD.transaction_id),
        accounts = (SELECT count(DISTINCT a.account_id) FROM incident_alerts a
                    WHERE a.incident_id = incidents.incident_id AND a.transaction_id <> OLD.transaction_id),
        agents = (SELECT count(DISTINCT a.agent_id) FROM incident_alerts a
                  WHERE a.incident_id = incidents.incident_id AND a.transaction_id <> OLD.transaction_id),
        max_score = coalesce((SELECT max(t.anomaly_score) FROM incident_alerts a
                              JOIN transactions t ON t.transaction_id = a.transaction_id
                              WHERE a.incident_id = incidents.incident_id
                                AND a.transaction_id <> OLD.transaction_id), 0),
        lead_id = coalesce((SELECT a.transaction_id FROM incident_alerts a
                            JOIN transactions t ON t.transaction_id = a.transaction_id
                            WHERE a.incident_id = incidents.incident_id
                              AND a.transaction_id <> OLD.transaction_id
                            ORDER BY t.anomaly_score DESC, a.transaction_id LIMIT 1), lead_id),
        first_time = coalesce((SELECT min(unixepoch(a.timestamp)) - 19800 FROM incident_alerts a
                               WHERE a.incident_id = incidents.incident_id
                                 AND a.transaction_id <> OLD.transaction_id), first_time),
        last_time = coalesce((SELECT max(unixepoch(a.timestamp)) - 19800 FROM incident_alerts a
                              WHERE a.incident_id = incidents.incident_id
                                AND a.transaction_id <> OLD.transaction_id), last_time)
    WHERE incident_id = (SELECT incident_id FROM incident_alerts WHERE transaction_id = OLD.transaction_id);
    DELETE FROM incident_alerts WHERE transaction_id = OLD.transaction_id;
    DELETE FROM incident_keys WHERE incident_id IN (SELECT incident_id FROM incidents WHERE alerts = 0);
    DELETE FROM incidents WHERE alerts = 0;
END;
