-- Version 12: the control sample (core::control). Auditors review a few payments the detector
-- did not flag, drawn at random, so that the share confirmed fraud estimates what it misses.
-- A day (IST event date) is drawn once, after it is over and fully scored: `population` is how
-- many scored, unflagged payments it had then, `size` how many were asked for and `drawn` how
-- many were drawn (fewer only on a day with fewer payments). The estimate weighs each drawn
-- payment by population / drawn, so days drawn at different sizes still add up honestly.
CREATE TABLE control_days (
    day         TEXT PRIMARY KEY,
    population  INTEGER NOT NULL,
    size        INTEGER NOT NULL,
    drawn       INTEGER NOT NULL,
    drawn_by    TEXT NOT NULL,
    drawn_at    INTEGER NOT NULL                -- unix ms
);

-- The payments drawn, with the model that scored each (a scored row never changes, so the
-- estimate per model needs no look-up among the payments). A verdict on one, by whoever
-- records it, is a verdict of the sample.
CREATE TABLE control_draws (
    transaction_id INTEGER PRIMARY KEY,
    day            TEXT NOT NULL REFERENCES control_days (day),
    model_version  TEXT
);
CREATE INDEX idx_control_draws_day ON control_draws (day);
