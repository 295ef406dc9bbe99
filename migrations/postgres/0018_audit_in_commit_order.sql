-- Version 18 on PostgreSQL: audit entry ids are committed in id order, as verdict ids are
-- (0014). The audit log's pages are anchored at the newest entry when the first page was read
-- and go back from it by offset; an identity column hands out ids at insert, so an entry drawn
-- by a long transaction (an import) that committed after a later one (a login) slid into the
-- pages already anchored and pushed an entry onto the next page, shown twice. Every insert
-- statement into `audit_log` first takes one transaction-scoped advisory lock, before any id
-- is drawn; writers of audit entries take turns. Each writer writes its entry last in its
-- transaction, after every other lock it takes, advisory or row (an API key's use is counted
-- before its verdict). The key is core::pg::AUDIT_LOCK.
CREATE FUNCTION aegis_audit_in_commit_order() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(4702111234474983751);
    RETURN NULL;
END $$;
CREATE TRIGGER audit_in_commit_order BEFORE INSERT ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION aegis_audit_in_commit_order();
