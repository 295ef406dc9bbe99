-- Version 17: a session also ends after a spell of no use. It lasted 8 hours from sign-in
-- whatever happened, so a dashboard left open on an unattended desk stayed signed in for the
-- rest of the shift. `idle_until` is moved forward by use (at most once a minute) and a
-- session past it is over. Sessions open at the upgrade keep their 8-hour end.
ALTER TABLE sessions ADD COLUMN idle_until INTEGER NOT NULL DEFAULT 0;
UPDATE sessions SET idle_until = expires_at;
