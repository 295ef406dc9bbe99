-- Version 12 on PostgreSQL, as migrations/0012_control_sample.sql: the control sample
-- (core::control). Auditors review a few payments the detector did not flag, drawn at random,
-- so that the share confirmed fraud estimates what it misses. A day (IST event date) is drawn
-- once, after it is over and fully scored: `population` is how many scored, unflagged payments
-- it had then, `size` how many were asked for and `drawn` how many were drawn. The estimate
-- weighs each drawn payment by population / drawn.
CREATE TABLE control_days (
    day         text COLLATE "C" PRIMARY KEY,
    population  bigint NOT NULL,
    size        bigint NOT NULL,
    drawn       bigint NOT NULL,
    drawn_by    text NOT NULL,
    drawn_at    bigint NOT NULL
);

-- The payments drawn, with the model that scored each (no foreign key to the payments: they
-- are partitioned by month).
CREATE TABLE control_draws (
    transaction_id bigint PRIMARY KEY,
    day            text COLLATE "C" NOT NULL REFERENCES control_days (day),
    model_version  text
);
CREATE INDEX idx_control_draws_day ON control_draws (day);
