-- Version 16: a verdict keeps what recorded it on the auditor's behalf (see the SQLite
-- migration of the same name): empty for a person in the dashboard, `api:KEY` for an API key,
-- `import` for `dashboard verdicts import`. A constant default adds the column without
-- rewriting the table.
ALTER TABLE verdicts ADD COLUMN via text NOT NULL DEFAULT '';
