-- Version 8 adds, on PostgreSQL, a notice to the monitor whenever payments are committed
-- (migrations/postgres/0008_payment_notices.sql), so that it sleeps instead of polling.
-- SQLite has no such notices and needs nothing: its monitor polls the file, which costs a
-- few microseconds a poll in the same process's page cache. The file exists so that both
-- engines go through the same numbered versions.
SELECT 1;
