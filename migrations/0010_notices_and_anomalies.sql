-- Version 10: on PostgreSQL, notices of changes for the dashboard's caches and the scores'
-- event time (migrations/postgres/0010_notices_and_anomalies.sql). SQLite has no notices between
-- processes: its dashboard asks the file what changed at each request, which costs
-- microseconds there. Both engines get the `flagged` (scored, not NORMAL) and `anomalies`
-- views, so that a statement over them is written once: here `anomalies` reads the partial
-- index of anomalies.
CREATE VIEW flagged AS SELECT * FROM transactions WHERE status <> 'NORMAL';
CREATE VIEW anomalies AS SELECT * FROM transactions WHERE status = 'ANOMALY';
