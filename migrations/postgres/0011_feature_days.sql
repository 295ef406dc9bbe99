-- Version 11 on PostgreSQL, as migrations/0011_feature_days.sql: each feature's drift
-- (core::drift). Per model and event day (IST date), how the
-- scored rows' values of every feature fell into the bins `train` cut from the held-out rows
-- (model_config.json `feature_bins`): `counts` is JSON, per feature (model input order) the
-- rows per bin. The monitor adds a batch's counts in the transaction that writes its scores,
-- so each row is counted once however often the monitor restarts.
CREATE TABLE feature_days (
    model_version TEXT NOT NULL,
    day           TEXT NOT NULL,
    counts        TEXT NOT NULL,
    PRIMARY KEY (model_version, day)
);
