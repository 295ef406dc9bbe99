-- Version 17: a session also ends after a spell of no use (see the SQLite migration of the
-- same name). Sessions open at the upgrade keep their 8-hour end.
ALTER TABLE sessions ADD COLUMN idle_until bigint NOT NULL DEFAULT 0;
UPDATE sessions SET idle_until = expires_at;
-- Moving a session's idle end (once a minute per session in use) is not news to the other
-- servers: told, each would drop every session it remembers. A server that remembers an
-- older end reads the session again once that end has passed; ends only move forward.
DROP TRIGGER sessions_notify ON sessions;
CREATE TRIGGER sessions_notify
    AFTER UPDATE OF token_hash, user_id, csrf_token, created_at, expires_at OR DELETE OR TRUNCATE
    ON sessions
    FOR EACH STATEMENT EXECUTE FUNCTION aegis_notify_change('accounts');
