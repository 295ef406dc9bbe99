-- Every statement that adds payments tells the monitor, which waits on `LISTEN aegis_payments`
-- instead of polling the server. PostgreSQL delivers a notice when the writer commits (never
-- for a rolled-back insert) and folds repeats within one transaction into one. COPY fires
-- statement triggers too, so bulk loads and the live feed both wake it.
CREATE FUNCTION aegis_notify_payments() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('aegis_payments', '');
    RETURN NULL;
END $$;
CREATE TRIGGER transaction_events_notify AFTER INSERT ON transaction_events
    FOR EACH STATEMENT EXECUTE FUNCTION aegis_notify_payments();
