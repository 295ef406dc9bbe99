-- Version 13 on PostgreSQL: the scores by model and event time. The Model page's drift asks,
-- of one model, for the newest event day it scored and for its scores' counts per day over
-- the newest weeks. Through the `transactions` view that is a join whose plan hangs on the
-- statistics of `model_version`; a model newer than the last ANALYZE (every model, for the
-- days after its first scores) is estimated at a row or two, and the planner then reads every
-- score and looks each up in every month's partition: 0.3 s at a million rows with 20,000
-- scores of the new model, over a second with a live feed across many months. This index
-- answers both questions from the scores alone, whatever the statistics say; it carries the
-- status and score so that the counts need not visit the table.
CREATE INDEX idx_scores_by_model_and_time ON transaction_scores (model_version, timestamp)
    INCLUDE (status, anomaly_score);
