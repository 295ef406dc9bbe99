-- Version 15 on PostgreSQL. SQLite's twin makes payment ids never reused; here the identity
-- column never handed one out twice. What this version adds is what SQLite does on its own when
-- an operator deletes payments, or what it would, had it partitions to retire:
--
-- 1. A payment with verdicts cannot be deleted: SQLite's foreign key from `verdicts` refuses
--    it, and a partitioned table cannot be the target of one here. An auditor's verdict on a
--    payment that no longer exists would count in the case queue and teach the model about a
--    row nobody can see.
--    The check takes the verdict lock (core::pg::VERDICT_LOCK) first, as every verdict writer
--    does before it checks that its payment exists: a verdict and a delete of its payment
--    cannot both pass their checks. Then the scores' lock (core::pg::SCORES_LOCK), which the
--    monitor takes before it writes a batch: a batch that read the payment before the delete
--    either commits first (and the delete takes its score, below) or sees the payment gone
--    and writes neither score nor alert for it.
CREATE FUNCTION aegis_refuse_judged_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(4702111234474983749);
    PERFORM pg_advisory_xact_lock(4702111234474983750);
    IF EXISTS (SELECT 1 FROM verdicts WHERE transaction_id = OLD.transaction_id) THEN
        RAISE EXCEPTION 'payment % has verdicts and cannot be deleted', OLD.transaction_id
            USING ERRCODE = 'foreign_key_violation',
                  HINT = 'auditors'' verdicts are kept; delete only payments nobody judged';
    END IF;
    RETURN OLD;
END $$;
CREATE TRIGGER transaction_events_judged BEFORE DELETE ON transaction_events
    FOR EACH ROW EXECUTE FUNCTION aegis_refuse_judged_delete();

-- 2. A deleted payment takes its score with it (on SQLite the score is in the payment's row).
--    Left behind, it counted in the Model page's drift and alert rate.
CREATE FUNCTION aegis_drop_score() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM transaction_scores WHERE transaction_id = OLD.transaction_id;
    RETURN NULL;
END $$;
CREATE TRIGGER transaction_events_drop_score AFTER DELETE ON transaction_events
    FOR EACH ROW EXECUTE FUNCTION aegis_drop_score();

-- 2b. A deleted payment leaves the case queue: its alert goes, and its incident is counted
--    again from the alerts it keeps (alerts, verdicts, amount, people, highest score and lead
--    alert, time span), or goes too when none is left. Before, an operator taking out a bad import
--    the monitor had already alerted on left incidents counting payments nobody could open.
--    aegis_recount_incidents is the one recount, which retiring a month (below) uses too.
CREATE FUNCTION aegis_recount_incidents(touched bigint[]) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    time_pattern constant text := '^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}$';
BEGIN
    DELETE FROM incident_keys k
        WHERE k.incident_id = ANY (touched)
          AND NOT EXISTS (SELECT 1 FROM incident_alerts a WHERE a.incident_id = k.incident_id);
    DELETE FROM incidents i
        WHERE i.incident_id = ANY (touched)
          AND NOT EXISTS (SELECT 1 FROM incident_alerts a WHERE a.incident_id = i.incident_id);
    UPDATE incidents i SET
        alerts = c.alerts, unreviewed = c.unreviewed, field_checks = c.field_checks,
        confirmed = c.confirmed, dismissed = c.dismissed, total_paise = c.total_paise,
        max_score = c.max_score, lead_id = c.lead_id,
        beneficiaries = c.beneficiaries, accounts = c.accounts, agents = c.agents,
        first_time = coalesce(c.first_time, i.first_time), last_time = coalesce(c.last_time, i.last_time)
    FROM (
        SELECT a.incident_id, count(*) AS alerts,
               count(DISTINCT a.beneficiary_id) AS beneficiaries,
               count(DISTINCT a.account_id) AS accounts,
               count(DISTINCT a.agent_id) AS agents,
               count(*) FILTER (WHERE a.verdict IS NULL) AS unreviewed,
               count(*) FILTER (WHERE a.verdict = 'needs_field_check') AS field_checks,
               count(*) FILTER (WHERE a.verdict = 'confirmed_fraud') AS confirmed,
               count(*) FILTER (WHERE a.verdict = 'dismissed') AS dismissed,
               coalesce(sum(a.amount_paise), 0)::bigint AS total_paise,
               coalesce(max(s.anomaly_score), 0) AS max_score,
               (array_agg(a.transaction_id ORDER BY s.anomaly_score DESC NULLS LAST, a.transaction_id))[1]
                   AS lead_id,
               min(CASE WHEN a.timestamp ~ time_pattern
                        THEN extract(epoch FROM a.timestamp::timestamp)::bigint - 19800 END) AS first_time,
               max(CASE WHEN a.timestamp ~ time_pattern
                        THEN extract(epoch FROM a.timestamp::timestamp)::bigint - 19800 END) AS last_time
        FROM incident_alerts a
        LEFT JOIN transaction_scores s USING (transaction_id)
        WHERE a.incident_id = ANY (touched)
        GROUP BY a.incident_id
    ) c
    WHERE i.incident_id = c.incident_id;
END $$;
CREATE FUNCTION aegis_leave_incident() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    incident bigint;
BEGIN
    DELETE FROM incident_alerts WHERE transaction_id = OLD.transaction_id
        RETURNING incident_id INTO incident;
    IF incident IS NOT NULL THEN
        PERFORM aegis_recount_incidents(ARRAY[incident]);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER transaction_events_leave_incident AFTER DELETE ON transaction_events
    FOR EACH ROW EXECUTE FUNCTION aegis_leave_incident();

-- 3. Deleting payments tells the dashboards, whose cached figures counted them: a notice to
--    those listening, and the counter SQLite's twin adds, for those asking the database (one
--    not listening yet, or any more).
CREATE TRIGGER transaction_events_deleted_notify AFTER DELETE OR TRUNCATE ON transaction_events
    FOR EACH STATEMENT EXECUTE FUNCTION aegis_notify_change('data');
CREATE TABLE payment_deletions (
    singleton integer PRIMARY KEY CHECK (singleton = 1),
    deleted   bigint NOT NULL
);
INSERT INTO payment_deletions (singleton, deleted) VALUES (1, 0);
CREATE FUNCTION aegis_count_deletions() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE payment_deletions SET deleted = deleted + 1;
    RETURN NULL;
END $$;
CREATE TRIGGER transaction_events_count_deletions AFTER DELETE OR TRUNCATE ON transaction_events
    FOR EACH STATEMENT EXECUTE FUNCTION aegis_count_deletions();

-- 4. Retiring a month: `SELECT aegis_retire_month('2025-01')` detaches that month's partition,
--    renamed `transaction_events_2025_01_retired` (to be archived with pg_dump and dropped; a
--    payment of that month arriving later gets a new partition), and takes out of the tables
--    that stay what refers to its payments, so that what is left agrees with itself:
--    - the registrations of their refs: a ref of the retired month is a new payment again
--      (as after a delete on either engine), not a stored payment that cannot be found (a
--      plain DETACH left them: a retried old ref then failed, and so did an import meeting one);
--    - their scores (the Model page's drift counted them) and control draws;
--    - their alerts in the case queue: an incident left with none goes, one that spanned the
--      month's end is counted again from the alerts it keeps (alerts, verdicts, amount, highest
--      score and lead alert, time span).
--    Verdicts stay, as the audit record they are. It refuses a month the monitor has not
--    scored to the end, and one with verdicts still inside the 28 days in which a verdict is
--    evidence about later payments of the same counter, account or beneficiary
--    (core::feedback::EVIDENCE_WINDOW): a monitor restarted after the month left would no
--    longer see them, and would score the next payments differently from the running one.
--    (A restart that replays all history, with no checkpoint, also no longer sees the retired
--    payments in the features' history; one from a checkpoint does.)
--    Writers of payments, verdicts and scores wait while it works (the advisory locks of
--    core::pg, in their order), so no payment joins the month and nothing lands on it; readers
--    go on until the DETACH at the end, which waits at most 10 s for them (a long export) and
--    otherwise gives up with nothing retired. Returns the number of payments retired.
CREATE FUNCTION aegis_retire_month(which text) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    partition text := 'transaction_events_' || replace(which, '-', '_');
    archive text := partition || '_retired';
    time_pattern constant text := '^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}$';
    retired bigint;
    unscored bigint;
    evidence bigint;
    newest text;
    touched bigint[];
BEGIN
    IF which IS NULL OR which !~ '^[0-9]{4}-(0[1-9]|1[0-2])$' THEN
        RAISE EXCEPTION 'month % is not a month', coalesce(which, 'NULL')
            USING ERRCODE = 'invalid_parameter_value', HINT = 'write it as YYYY-MM, e.g. 2025-01';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_inherits
                   WHERE inhrelid = to_regclass(partition)
                     AND inhparent = 'transaction_events'::regclass) THEN
        RAISE EXCEPTION 'month % has no attached partition (%)', which, partition
            USING ERRCODE = 'undefined_table',
                  HINT = 'the months attached are listed by \d+ transaction_events';
    END IF;
    IF to_regclass(archive) IS NOT NULL THEN
        RAISE EXCEPTION 'month % was retired before and % is still there', which, archive
            USING ERRCODE = 'duplicate_table',
                  HINT = 'archive it (pg_dump -t ' || archive || ') and drop it first';
    END IF;
    PERFORM pg_advisory_xact_lock(4702111234474983745);  -- core::pg::APPEND_LOCK
    PERFORM pg_advisory_xact_lock(4702111234474983749);  -- core::pg::VERDICT_LOCK
    PERFORM pg_advisory_xact_lock(4702111234474983750);  -- core::pg::SCORES_LOCK
    EXECUTE format('CREATE TEMP TABLE aegis_retired ON COMMIT DROP AS '
                   'SELECT transaction_id, transaction_ref FROM %I', partition);
    SELECT count(*) INTO retired FROM aegis_retired;
    SELECT count(*) INTO unscored FROM aegis_retired
        WHERE transaction_id > (SELECT coalesce(max(high_water_mark), 0) FROM monitor_state);
    IF unscored > 0 THEN
        RAISE EXCEPTION 'month % has % payments the monitor has not scored yet', which, unscored
            USING ERRCODE = 'object_in_use', HINT = 'retire a month once the monitor has passed it';
    END IF;
    -- "Now" in the data's calendar: the newest payment, this month's included.
    SELECT max(timestamp) INTO newest FROM transaction_events WHERE timestamp ~ time_pattern;
    SELECT count(*) INTO evidence FROM verdicts v JOIN aegis_retired r USING (transaction_id)
        WHERE v.created_at > (extract(epoch FROM newest::timestamp) - 19800 - 28 * 86400) * 1000;
    IF evidence > 0 THEN
        RAISE EXCEPTION 'month % has % verdicts decided within 28 days of the newest payment (%)',
                which, evidence, newest
            USING ERRCODE = 'object_in_use',
                  HINT = 'they are still evidence about new payments; retire the month 28 days after its last verdict';
    END IF;

    DELETE FROM payment_refs p USING aegis_retired r
        WHERE p.transaction_ref = r.transaction_ref AND p.transaction_id = r.transaction_id;
    DELETE FROM transaction_scores s USING aegis_retired r WHERE s.transaction_id = r.transaction_id;
    DELETE FROM control_draws d USING aegis_retired r WHERE d.transaction_id = r.transaction_id;

    touched := ARRAY(SELECT DISTINCT a.incident_id
                     FROM incident_alerts a JOIN aegis_retired r USING (transaction_id));
    DELETE FROM incident_alerts a USING aegis_retired r WHERE a.transaction_id = r.transaction_id;
    PERFORM aegis_recount_incidents(touched);

    SET LOCAL lock_timeout = '10s';
    BEGIN
        EXECUTE format('ALTER TABLE transaction_events DETACH PARTITION %I', partition);
    EXCEPTION WHEN lock_not_available THEN
        RAISE EXCEPTION 'month % is being read (an export or a long query holds the payments): nothing was retired', which
            USING ERRCODE = 'lock_not_available', HINT = 'try again when it has finished';
    END;
    EXECUTE format('ALTER TABLE %I RENAME TO %I', partition, archive);
    UPDATE payment_deletions SET deleted = deleted + 1;
    PERFORM pg_notify('aegis_changes', 'data');
    RETURN retired;
END $$;
