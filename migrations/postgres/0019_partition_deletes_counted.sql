-- Version 19 on PostgreSQL: a DELETE (or TRUNCATE) sent to one month's partition, not
-- through `transaction_events`, is counted and announced like one sent to the whole table.
-- Row triggers are cloned onto every partition, so such a delete already refused judged
-- payments and took scores and case-queue alerts along (0015); statement triggers are not,
-- so it moved neither `payment_deletions` nor the dashboards' notice. A monitor scoring those
-- very payments at that moment then failed its commit on an alert of a payment gone, and the
-- dashboards' cached figures went on counting them. Every month gets the two statement
-- triggers: those here now, later ones when `core::pg::ensure_months` creates them.
-- (A statement sent to `transaction_events` fires only its own statement triggers, not the
-- partitions', so nothing is counted twice; a TRUNCATE of the whole table counts once per
-- month it empties, which only moves the counter further.)
DO $$
DECLARE
    month regclass;
    trigger record;
BEGIN
    FOR month IN
        SELECT inhrelid::regclass FROM pg_inherits
        WHERE inhparent = 'transaction_events'::regclass
    LOOP
        FOR trigger IN
            SELECT * FROM (VALUES
                ('month_count_deletions', 'aegis_count_deletions()'),
                ('month_deleted_notify', 'aegis_notify_change(''data'')')) AS t (name, call)
            WHERE NOT EXISTS (SELECT 1 FROM pg_trigger
                              WHERE tgrelid = month AND tgname = t.name)
        LOOP
            EXECUTE format('CREATE TRIGGER %I AFTER DELETE OR TRUNCATE ON %s '
                           'FOR EACH STATEMENT EXECUTE FUNCTION %s',
                           trigger.name, month, trigger.call);
        END LOOP;
    END LOOP;
END $$;
