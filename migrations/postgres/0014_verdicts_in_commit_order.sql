-- Version 14 on PostgreSQL: verdict ids are committed in id order, as payment ids are
-- (the baseline's append lock). A running monitor reads new verdicts as `verdict_id > the
-- last it read`; an identity column hands out ids at insert, not at commit, so a long
-- transaction of simulated reviews holding ids 100-300 could commit after an auditor's
-- verdict 301, and the monitor, already past 301, would never read them (until a restart,
-- which would then score differently). Every insert statement into `verdicts` first takes one
-- transaction-scoped advisory lock, before any id is drawn; writers of verdicts take turns.
-- The key is core::pg::VERDICT_LOCK.
CREATE FUNCTION aegis_verdicts_in_commit_order() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(4702111234474983749);
    RETURN NULL;
END $$;
CREATE TRIGGER verdicts_in_commit_order BEFORE INSERT ON verdicts
    FOR EACH STATEMENT EXECUTE FUNCTION aegis_verdicts_in_commit_order();
