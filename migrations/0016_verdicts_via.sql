-- Version 16: a verdict keeps what recorded it on the auditor's behalf. An API key with the
-- verdicts scope may name any active user as the auditor; the verdict history then showed that
-- user alone, as if they had decided it in the dashboard, and "via api:KEY" only in the audit
-- log. `via` is empty for a verdict a person recorded in the dashboard, `api:KEY` for one an
-- API key recorded, `import` for one `dashboard verdicts import` read from a file. Verdicts
-- recorded before this version keep an empty `via` (the audit log still names their key).
ALTER TABLE verdicts ADD COLUMN via TEXT NOT NULL DEFAULT '';
