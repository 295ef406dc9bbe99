-- Version 17: a session also ends after a spell of no use (see the SQLite migration of the
-- same name). Sessions open at the upgrade keep their 8-hour end.
ALTER TABLE sessions ADD COLUMN idle_until bigint NOT NULL DEFAULT 0;
UPDATE sessions SET idle_until = expires_at;
