-- Version 15 on PostgreSQL. SQLite's twin makes payment ids never reused; here the identity
-- column never handed one out twice. What this version adds is what SQLite does on its own when
-- an operator deletes payments, or what it would, had it partitions to retire:
--
-- 1. A payment with verdicts cannot be deleted: SQLite's foreign key from `verdicts` refuses
--    it, and a partitioned table cannot be the target of one here. An auditor's verdict on a
--    payment that no longer exists would count in the case queue and teach the model about a
--    row nobody can see.
CREATE FUNCTION aegis_refuse_judged_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
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

-- 3. Deleting payments tells the dashboards, whose cached figures counted them.
CREATE TRIGGER transaction_events_deleted_notify AFTER DELETE OR TRUNCATE ON transaction_events
    FOR EACH STATEMENT EXECUTE FUNCTION aegis_notify_change('data');

-- 4. Retiring a month: `SELECT aegis_retire_month('2025-01')` detaches that month's partition,
--    renamed `transaction_events_2025_01_retired` (to be archived with pg_dump and dropped; a
--    payment of that month arriving later gets a new partition), and removes what refers to
--    its payments from the tables that stay: their scores, and the registrations of their
--    refs, so that a ref of the retired month is a new payment again (as after a delete on
--    either engine) instead of a stored payment that cannot be found.
--    A plain DETACH keeps both: a retried old ref then failed, and so did an import meeting one.
--    Verdicts stay, as the audit record they are. Returns the number of payments retired.
CREATE FUNCTION aegis_retire_month(which text) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    partition text := 'transaction_events_' || replace(which, '-', '_');
    archive text := partition || '_retired';
    retired bigint;
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
    EXECUTE format('SELECT count(*) FROM %I', partition) INTO retired;
    EXECUTE format('DELETE FROM payment_refs r USING %I e '
                   'WHERE r.transaction_ref = e.transaction_ref AND r.transaction_id = e.transaction_id',
                   partition);
    EXECUTE format('DELETE FROM transaction_scores s USING %I e WHERE s.transaction_id = e.transaction_id',
                   partition);
    EXECUTE format('ALTER TABLE transaction_events DETACH PARTITION %I', partition);
    EXECUTE format('ALTER TABLE %I RENAME TO %I', partition, archive);
    PERFORM pg_notify('aegis_changes', 'data');
    RETURN retired;
END $$;
