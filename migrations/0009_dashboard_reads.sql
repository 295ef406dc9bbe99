-- Version 9 is, on PostgreSQL, what the dashboard's reads need there
-- (migrations/postgres/0009_dashboard_reads.sql): a function for JSON fields, which SQLite has
-- built in (json_extract), and an index order that SQLite's indexes give already. The file
-- exists so that both engines go through the same numbered versions.
SELECT 1;
