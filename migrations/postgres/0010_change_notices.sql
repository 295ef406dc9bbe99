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
