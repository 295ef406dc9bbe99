-- Version 10 is, on PostgreSQL, notices of changes for the dashboard's caches
-- (migrations/postgres/0010_change_notices.sql). SQLite has no notices between processes: its
-- dashboard asks the file what changed at each request, which costs microseconds there. The
-- file exists so that both engines go through the same numbered versions.
SELECT 1;
